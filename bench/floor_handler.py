"""The import-time floor: a Lambda handler module that imports only boto3."""

import boto3


def lambda_handler(event: dict[str, object], context: object) -> str:
    return boto3.__version__
