"""The checkout's paths and the sample events in events/, with the identities they name."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
TEMPLATE = ROOT / "template.yaml"

# What the samples name: their account and region, the customer managed key, the function of
# kms-create-grant-lambda.json and the grant it creates.
ACCOUNT = "210987654321"
REGION = "eu-central-1"
KEY_ID = "5f1e2d3c-4b5a-4968-8776-a1b2c3d4e5f6"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:invoice-renderer"
SEED_GRANT = "abfc6dbbc686122cb75763f3007e5aa9c67f9d9caafa2dd4320bbf61b393fd9a"


def load_event(name: str) -> dict[str, Any]:
    """A sample EventBridge event from events/, as a fresh copy the test may change."""
    event: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return copy.deepcopy(event)


def sample_event_files() -> list[Path]:
    return sorted(EVENTS.glob("*.json"))
