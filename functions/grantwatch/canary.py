"""grantwatch's canary: a grant to its own role on a key its stack owns, used once to Encrypt, retired,
then one Decrypt that must fail because the grant is gone. The recorder hears each of the three calls back
through CloudTrail and EventBridge and counts a heartbeat per path (grantwatch.domain.canary).

Self-contained, as member/forwarder.yaml inlines this very file: the standard library and the KMS client
it is given. The role has no kms:Decrypt anywhere; only the grant let it Encrypt. No grant token is logged.
"""

import json
import os
import time
from collections.abc import Callable
from typing import Any

CONTEXT = {"grantwatch:canary": "heartbeat"}
PLAINTEXT = b"grantwatch canary"
# Seconds before each Decrypt: a retired grant can stay usable briefly (KMS is eventually consistent).
WAITS = (0, 5, 15, 40, 100)
DENIED = "AccessDeniedException"
# Seconds before each RetireGrant by id: a new grant is known by its id only once KMS is consistent (by its
# token at once), and KMS documents no error for "not yet": a refusal is tried again, then the token is used.
RETIRE_WAITS = (0, 2, 5, 10, 20)
NOT_YET = ("NotFoundException", "AccessDeniedException")


class CanaryError(RuntimeError):
    """A step that did not go as the canary needs: says which, never a token."""


def beat(
    kms: Any, key_arn: str, role_arn: str, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """The three calls the recorder listens for; the grant id and the Decrypt attempts it took."""
    grant = kms.create_grant(
        KeyId=key_arn,
        GranteePrincipal=role_arn,
        RetiringPrincipal=role_arn,
        Operations=["Encrypt", "Decrypt"],
        Constraints={"EncryptionContextEquals": CONTEXT},
        Name="grantwatch-canary",
    )
    grant_id = grant["GrantId"]
    try:
        blob = kms.encrypt(
            KeyId=key_arn,
            Plaintext=PLAINTEXT,
            EncryptionContext=CONTEXT,
            GrantTokens=[grant["GrantToken"]],
        )["CiphertextBlob"]
    finally:
        retire(kms, key_arn, grant, sleep)
    for attempt, wait in enumerate(WAITS, start=1):
        sleep(wait)
        try:
            kms.decrypt(KeyId=key_arn, CiphertextBlob=blob, EncryptionContext=CONTEXT)
        except kms.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") != DENIED:
                raise
            return {"grantId": grant_id, "decrypt": "denied", "attempts": attempt}
    raise CanaryError(f"Decrypt still succeeded {sum(WAITS)} s after the grant was retired")


def retire(kms: Any, key_arn: str, grant: dict[str, Any], sleep: Callable[[float], None]) -> None:
    """RetireGrant by key and id, which the recorder hears as the key's; should KMS not know the new grant
    by its id yet, by its token, which KMS honours at once: a grant left behind would let every later
    Decrypt succeed, and nothing else could retire it (the role may not list or retire grants)."""
    for wait in RETIRE_WAITS:
        sleep(wait)
        try:
            kms.retire_grant(KeyId=key_arn, GrantId=grant["GrantId"])
            return
        except kms.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") not in NOT_YET:
                raise
    kms.retire_grant(GrantToken=grant["GrantToken"])


def lambda_handler(event: object, context: object) -> dict[str, Any]:
    """The member stack's handler (its code is this file); the central one's is grantwatch.handlers.canary."""
    import boto3

    key_arn = os.environ["GRANTWATCH_CANARY_KEY_ARN"]
    role_arn = os.environ["GRANTWATCH_CANARY_ROLE_ARN"]
    result = beat(boto3.client("kms"), key_arn, role_arn)
    # One JSON line on stdout, which Lambda sends to the function's log group (no Powertools: the member
    # stack has no layer), so Logs Insights reads its fields as the other functions' logs.
    print(json.dumps({"level": "INFO", "message": "canary beat", **result}))
    return result
