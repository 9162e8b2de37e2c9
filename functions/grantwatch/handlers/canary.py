"""Canary: on its schedule, a grant created, used, retired and a Decrypt refused on the stack's canary key,
so that the recorder hears each call back (docs/canary.md). A failed run raises, for the Lambda errors
metric; the heartbeat alarms say which path the recorder stopped hearing."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from grantwatch import wiring
from grantwatch.canary import beat
from grantwatch.settings import required, settings

logger = Logger()


@cache
def kms() -> Any:
    return wiring.canary_kms(settings())


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    current = settings()
    result = beat(
        kms(),
        required(current.canary_key_arn, "GRANTWATCH_CANARY_KEY_ARN"),
        required(current.canary_role_arn, "GRANTWATCH_CANARY_ROLE_ARN"),
    )
    logger.info("canary beat", extra=result)
    return result
