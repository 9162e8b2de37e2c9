"""Readers of what AWS says now: KMS ListGrants and Lambda ListFunctions / GetFunctionConfiguration.

Clients use botocore's adaptive retry mode: throttling (ListGrants allows 100 requests a second per
account) is retried with exponential backoff, and the client slows its own request rate after one.
Endpoints follow the standard configuration (AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL_LAMBDA), which is how
`grantwatch reconcile` is pointed at a local stand-in.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from grantwatch.adapters.aws_errors import code_of, service_error
from grantwatch.domain.reconcile import ListedFunction, ListedGrant
from grantwatch.ports import KeyNotFound

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_lambda.client import LambdaClient

RETRIES = Config(retries={"mode": "adaptive", "max_attempts": 10}, connect_timeout=5, read_timeout=30)
PAGE_SIZE = 100  # the most ListGrants returns at once


class KmsGrantReader:
    def __init__(self, client: KMSClient | None = None, region: str | None = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("kms", region_name=region, config=RETRIES)
        self.client: KMSClient = client

    def list_grants(self, key_arn: str) -> Iterator[ListedGrant]:
        """Every grant on the key, a page of up to 100 at a time (Marker / NextMarker). KeyNotFound: KMS
        does not know the key; ServiceError: any other refusal, or no answer."""
        pages = self.client.get_paginator("list_grants").paginate(
            KeyId=key_arn, PaginationConfig={"PageSize": PAGE_SIZE}
        )
        try:
            for page in pages:
                for grant in page.get("Grants", []):
                    yield ListedGrant.from_api(key_arn, grant)
        except (ClientError, BotoCoreError) as error:
            found = service_error(error)
            if isinstance(error, ClientError) and code_of(error) == "NotFoundException":
                raise KeyNotFound(str(found)) from None
            raise found from None

    def list_keys(self) -> Iterator[str]:
        try:
            for page in self.client.get_paginator("list_keys").paginate():
                for key in page.get("Keys", []):
                    yield key["KeyArn"]
        except (ClientError, BotoCoreError) as error:
            raise service_error(error) from None


class LambdaFunctionReader:
    def __init__(self, client: LambdaClient | None = None, region: str | None = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("lambda", region_name=region, config=RETRIES)
        self.client: LambdaClient = client

    def list_functions(self) -> Iterator[ListedFunction]:
        """Every function of the account in the region. ServiceError: a refusal, or no answer."""
        try:
            for page in self.client.get_paginator("list_functions").paginate():
                for configuration in page.get("Functions", []):
                    yield ListedFunction.from_api(configuration)
        except (ClientError, BotoCoreError) as error:
            raise service_error(error) from None

    def get_function(self, function_arn: str) -> ListedFunction | None:
        """The function's configuration, or None if it does not exist. ServiceError: any other refusal."""
        try:
            configuration = self.client.get_function_configuration(FunctionName=function_arn)
        except ClientError as error:
            if code_of(error) == "ResourceNotFoundException":
                return None
            raise service_error(error) from None
        except BotoCoreError as error:
            raise service_error(error) from None
        return ListedFunction.from_api(configuration)
