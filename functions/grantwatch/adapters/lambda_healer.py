"""What self-healing asks AWS: the function's configuration and tags (Lambda), its key's state and grants
(KMS), and the writes of the documented reset: UpdateFunctionConfiguration of KMSKeyArn or Role, each with
the RevisionId just read, so a change someone else made in between is never overwritten (Lambda refuses
the update instead).

The remediation role may read and update only functions tagged for self-healing (an aws:ResourceTag
condition), so for any other function (untagged, tagged false, deleted, in another account) Lambda
answers AccessDeniedException: that means "not opted in", not a failure. Any other refusal, or no answer,
is raised as the port's ServiceError (saying whether the call may have been applied). Clients use
adaptive retries,
and the endpoints follow the standard configuration (AWS_ENDPOINT_URL_LAMBDA, AWS_ENDPOINT_URL_KMS).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from grantwatch.adapters.aws_errors import code_of, service_error
from grantwatch.adapters.readers import RETRIES, KmsGrantReader
from grantwatch.domain.fixes import KMS_KEY_SETTING, ROLE_SETTING
from grantwatch.domain.healing import FunctionDenied, LiveFunction, LiveKey
from grantwatch.domain.reconcile import ListedGrant

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_lambda.client import LambdaClient

_DENIED = frozenset({"AccessDeniedException", "AccessDenied"})


class AwsFunctionHealer:
    def __init__(
        self,
        lambda_client: LambdaClient | None = None,
        kms_client: KMSClient | None = None,
        region: str | None = None,
    ) -> None:
        if lambda_client is None or kms_client is None:
            import boto3

            lambda_client = lambda_client or boto3.client("lambda", region_name=region, config=RETRIES)
            kms_client = kms_client or boto3.client("kms", region_name=region, config=RETRIES)
        self.lambda_: LambdaClient = lambda_client
        self.kms: KMSClient = kms_client
        self.grant_reader = KmsGrantReader(kms_client)

    def function(self, function_arn: str) -> LiveFunction | FunctionDenied | None:
        """The function's configuration and tags; None if it does not exist; FunctionDenied if Lambda
        refuses to show it (the tag condition of the remediation policy)."""
        operation = "lambda:GetFunctionConfiguration"
        try:
            configuration = self.lambda_.get_function_configuration(FunctionName=function_arn)
            operation = "lambda:ListTags"
            tags = self.lambda_.list_tags(Resource=function_arn).get("Tags", {})
        except ClientError as error:
            if code_of(error) == "ResourceNotFoundException":
                return None
            if code_of(error) in _DENIED:
                return FunctionDenied(operation)
            raise service_error(error) from None
        except BotoCoreError as error:
            raise service_error(error) from None
        return _live(function_arn, configuration, dict(tags))

    def configuration(self, function_arn: str) -> LiveFunction:
        """The configuration alone (no tags): what a wait for an update polls."""
        try:
            configuration = self.lambda_.get_function_configuration(FunctionName=function_arn)
        except (ClientError, BotoCoreError) as error:
            raise service_error(error) from None
        return _live(function_arn, configuration, {})

    def key(self, key_arn: str) -> LiveKey | None:
        """DescribeKey's ARN, KeyState and KeyManager; None if the key is not found or not ours to
        describe."""
        try:
            metadata = self.kms.describe_key(KeyId=key_arn)["KeyMetadata"]
        except ClientError as error:
            if code_of(error) in {"NotFoundException", *_DENIED}:
                return None
            raise service_error(error) from None
        except BotoCoreError as error:
            raise service_error(error) from None
        return LiveKey(
            arn=metadata.get("Arn", key_arn),
            state=metadata.get("KeyState"),
            aws_managed=metadata.get("KeyManager") == "AWS",
        )

    def grants(self, key_arn: str) -> Iterator[ListedGrant]:
        return self.grant_reader.list_grants(key_arn)

    def update(self, function_arn: str, setting: str, value: str, revision_id: str | None) -> None:
        """UpdateFunctionConfiguration of one setting (KMSKeyArn or Role), nothing else, guarded by the
        RevisionId just read."""
        if setting not in (KMS_KEY_SETTING, ROLE_SETTING):
            raise ValueError(f"self-healing updates only {KMS_KEY_SETTING} or {ROLE_SETTING}, not {setting}")
        request: dict[str, Any] = {"FunctionName": function_arn, setting: value}
        if revision_id:
            request["RevisionId"] = revision_id
        try:
            self.lambda_.update_function_configuration(**request)
        except (ClientError, BotoCoreError) as error:
            raise service_error(error) from None


def _live(function_arn: str, configuration: Any, tags: dict[str, str]) -> LiveFunction:
    return LiveFunction(
        function_arn=configuration.get("FunctionArn", function_arn),
        role=configuration.get("Role"),
        kms_key_arn=configuration.get("KMSKeyArn") or None,
        tags=tags,
        revision_id=configuration.get("RevisionId"),
        last_update_status=configuration.get("LastUpdateStatus"),
        last_update_reason=configuration.get("LastUpdateStatusReason"),
    )
