"""What self-healing asks AWS: the function's configuration and tags (Lambda), its key's state and grants
(KMS), and the one write it makes, UpdateFunctionConfiguration re-applying the function's own KMSKeyArn.

The update carries the RevisionId just read, so a change someone else made in between is never
overwritten (Lambda refuses the update instead). Clients use adaptive retries, and the endpoints follow
the standard configuration (AWS_ENDPOINT_URL_LAMBDA, AWS_ENDPOINT_URL_KMS).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from grantwatch.adapters.readers import RETRIES, KmsGrantReader
from grantwatch.domain.healing import LiveFunction
from grantwatch.domain.reconcile import ListedGrant

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_lambda.client import LambdaClient


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

    def function(self, function_arn: str) -> LiveFunction | None:
        """The function's configuration and tags, or None if it does not exist."""
        try:
            configuration = self.lambda_.get_function_configuration(FunctionName=function_arn)
            tags = self.lambda_.list_tags(Resource=function_arn).get("Tags", {})
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise
        return LiveFunction(
            function_arn=configuration.get("FunctionArn", function_arn),
            role=configuration.get("Role"),
            kms_key_arn=configuration.get("KMSKeyArn") or None,
            tags=dict(tags),
            revision_id=configuration.get("RevisionId"),
            last_update_status=configuration.get("LastUpdateStatus"),
        )

    def key_state(self, key_arn: str) -> str | None:
        """DescribeKey's KeyState (Enabled, Disabled, PendingDeletion, …), or None if it is not found."""
        try:
            return self.kms.describe_key(KeyId=key_arn)["KeyMetadata"].get("KeyState")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "NotFoundException":
                return None
            raise

    def grants(self, key_arn: str) -> Iterator[ListedGrant]:
        return self.grant_reader.list_grants(key_arn)

    def reapply_key(self, function: LiveFunction) -> None:
        """UpdateFunctionConfiguration with the function's own KMSKeyArn: Lambda creates a new grant."""
        if function.kms_key_arn is None:
            raise ValueError("a function without a customer managed key has no grant to re-create")
        if function.revision_id:
            self.lambda_.update_function_configuration(
                FunctionName=function.function_arn,
                KMSKeyArn=function.kms_key_arn,
                RevisionId=function.revision_id,
            )
        else:
            self.lambda_.update_function_configuration(
                FunctionName=function.function_arn, KMSKeyArn=function.kms_key_arn
            )
