"""The canary's three CloudTrail records (events/canary/), and the same calls as a member account's canary
makes them."""

from __future__ import annotations

import json
from typing import Any

from grantwatch.domain.canary import MEMBER_ROLE_PREFIX, CanaryPath
from tests.support.samples import ACCOUNT, REGION

CANARY_EVENTS = {
    CanaryPath.CREATE_GRANT: "canary/canary-create-grant.json",
    CanaryPath.RETIRE_GRANT: "canary/canary-retire-grant.json",
    CanaryPath.DECRYPT: "canary/canary-decrypt-access-denied.json",
}
# The central stack's canary key and role in the samples' account and region.
CANARY_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
CANARY_ROLE_NAME = "grantwatch-CanaryRole-Q2W3E4R5T6Y7"
MEMBER_ACCOUNT = "111122223333"


def as_member(event: dict[str, Any], region: str = REGION, role_region: str | None = None) -> dict[str, Any]:
    """The same call by a member account's canary in `region`: its own key, its role named for its region
    (or for `role_region`)."""
    text = json.dumps(event).replace(ACCOUNT, MEMBER_ACCOUNT).replace("9a8b7c6d-", "1f2e3d4c-")
    text = text.replace(REGION, region)
    text = text.replace(CANARY_ROLE_NAME, f"{MEMBER_ROLE_PREFIX}{role_region or region}")
    changed: dict[str, Any] = json.loads(text)
    return changed
