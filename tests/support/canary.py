"""The canary's three CloudTrail records (tests/support/canary-events/, apart from events/, which the
replay tests take whole), and the same calls as a member account's canary makes them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from grantwatch.domain.canary import MEMBER_ROLE_PREFIX, CanaryPath
from tests.support.samples import ACCOUNT, REGION

CANARY_EVENTS = {
    CanaryPath.CREATE_GRANT: "canary-create-grant.json",
    CanaryPath.RETIRE_GRANT: "canary-retire-grant.json",
    CanaryPath.DECRYPT: "canary-decrypt-access-denied.json",
}
EVENTS = Path(__file__).resolve().parent / "canary-events"
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


def canary_event(path: CanaryPath) -> dict[str, Any]:
    """The canary's EventBridge event of `path`, as a fresh copy the test may change."""
    event: dict[str, Any] = json.loads((EVENTS / CANARY_EVENTS[path]).read_text(encoding="utf-8"))
    return copy.deepcopy(event)
