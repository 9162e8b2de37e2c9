"""The canary's three calls as the recorder meets them: recognised by the canary key (or a member canary's
role), a heartbeat each, and never a grant, a function's loss or an evaluation."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from grantwatch import canary
from grantwatch.cli.output import report_event
from grantwatch.domain.canary import (
    CANARY_CONTEXT_KEY,
    CANARY_CONTEXT_VALUE,
    CanaryPath,
    canary_path,
    heartbeat_of,
)
from grantwatch.domain.records import CloudTrailRecord
from grantwatch.handlers import recorder as handler
from grantwatch.recorder import Outcome, Recorder
from tests.support.canary import CANARY_KEY, MEMBER_ACCOUNT, as_member, canary_event
from tests.support.lambda_context import FakeLambdaContext
from tests.support.samples import ACCOUNT, REGION, load_event


def _record(event: dict[str, Any]) -> CloudTrailRecord:
    return CloudTrailRecord.parse(event["detail"])


class Untouchable:
    """A store or scheduler a canary's event must never reach."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a canary event reached {name}")


class Heartbeats:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str, str, datetime]] = []

    def record(self, account: str, region: str, path: str, at: datetime) -> None:
        self.recorded.append((account, region, path, at))


def _recorder(heartbeats: Heartbeats | None, key: str | None = CANARY_KEY) -> Recorder:
    never: Any = Untouchable()
    return Recorder(never, never, never, never, canary_key_arn=key, heartbeats=heartbeats)


@pytest.mark.parametrize("path", list(CanaryPath))
def test_each_canary_call_is_known_by_the_canary_key(path: CanaryPath) -> None:
    record = _record(canary_event(path))
    assert canary_path(record, CANARY_KEY) is path
    assert canary_path(record, None) is None  # without the key: a stranger's role, an ordinary call
    assert canary_path(record, CANARY_KEY.replace("9a8b7c6d", "00000000")) is None


@pytest.mark.parametrize("path", list(CanaryPath))
def test_a_member_canarys_call_is_known_by_its_role_named_for_its_region(path: CanaryPath) -> None:
    event = as_member(canary_event(path))
    assert canary_path(_record(event), CANARY_KEY) is path
    elsewhere = as_member(canary_event(path), role_region="us-west-2")
    assert canary_path(_record(elsewhere), CANARY_KEY) is None  # a role of that name from another region


def test_only_the_calls_the_canary_makes_as_the_rules_deliver_them_are_heartbeats() -> None:
    failed_grant = canary_event(CanaryPath.CREATE_GRANT)
    failed_grant["detail"]["errorCode"] = "AccessDeniedException"
    assert canary_path(_record(failed_grant), CANARY_KEY) is None
    decrypted = canary_event(CanaryPath.DECRYPT)
    del decrypted["detail"]["errorCode"], decrypted["detail"]["errorMessage"]
    assert canary_path(_record(decrypted), CANARY_KEY) is None
    revoked = canary_event(CanaryPath.RETIRE_GRANT)
    revoked["detail"]["eventName"] = "RevokeGrant"  # someone else ending the canary's grant
    assert canary_path(_record(revoked), CANARY_KEY) is None
    lambdas = load_event("kms-create-grant-lambda.json")
    assert canary_path(_record(lambdas), CANARY_KEY) is None


def test_a_failed_decrypt_that_names_no_key_is_known_by_the_canarys_encryption_context() -> None:
    event = canary_event(CanaryPath.DECRYPT)
    detail = event["detail"]
    del detail["resources"], detail["requestParameters"]["keyId"]
    assert canary_path(_record(event), CANARY_KEY) is CanaryPath.DECRYPT
    detail["requestParameters"]["encryptionContext"] = {"aws:lambda:FunctionArn": "arn:aws:lambda:x"}
    assert canary_path(_record(event), CANARY_KEY) is None


def test_the_canary_and_the_recorder_share_one_encryption_context() -> None:
    assert canary.CONTEXT == {CANARY_CONTEXT_KEY: CANARY_CONTEXT_VALUE}


@pytest.mark.parametrize("path", list(CanaryPath))
def test_the_recorder_keeps_a_heartbeat_and_touches_no_grant_function_or_evaluation(path: CanaryPath) -> None:
    event = canary_event(path)
    heartbeats = Heartbeats()
    outcome = _recorder(heartbeats).record(event)
    assert outcome.outcome is Outcome.HEARTBEAT
    assert outcome.as_json()["canaryPath"] == path.value
    assert outcome.function_arn is None and outcome.grant_id is None
    at = datetime.fromisoformat(event["detail"]["eventTime"])
    assert heartbeats.recorded == [(ACCOUNT, REGION, path.value, at.astimezone(UTC))]


def test_a_member_canarys_heartbeat_is_its_accounts() -> None:
    event = as_member(canary_event(CanaryPath.RETIRE_GRANT))
    beat = heartbeat_of(_record(event), CanaryPath.RETIRE_GRANT)
    assert (beat.account, beat.region, beat.path) == (MEMBER_ACCOUNT, REGION, "RetireGrant")


def test_without_a_heartbeat_store_a_canary_call_is_still_never_a_loss() -> None:
    outcome = _recorder(None).record(canary_event(CanaryPath.DECRYPT))
    assert outcome.outcome is Outcome.HEARTBEAT


def _metric_documents(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


@pytest.mark.parametrize("path", list(CanaryPath))
def test_the_handler_emits_one_heartbeat_by_service_and_path(
    path: CanaryPath, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    heartbeats = Heartbeats()
    monkeypatch.setattr(handler, "recorder", lambda: _recorder(heartbeats))
    monkeypatch.setattr(handler.logger.registered_handler, "stream", io.StringIO())
    monkeypatch.setattr(handler.metrics, "service", "grantwatch-recorder")
    monkeypatch.setattr(handler.metrics, "namespace", "grantwatch")
    capsys.readouterr()
    result = handler.lambda_handler(canary_event(path), FakeLambdaContext("grantwatch-recorder"))
    assert result["outcome"] == "heartbeat"
    documents = _metric_documents(capsys.readouterr().out)
    beats = [d for d in documents if "CanaryHeartbeat" in d]
    assert len(beats) == 1
    [beat] = beats
    [directive] = beat["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "grantwatch"
    assert directive["Dimensions"] == [["service", "path"]]
    assert directive["Metrics"] == [{"Name": "CanaryHeartbeat", "Unit": "Count"}]
    assert (beat["service"], beat["path"]) == ("grantwatch-recorder", path.value)
    assert beat["CanaryHeartbeat"] in (1.0, [1.0])  # one value, as Powertools writes it
    others = [d for d in documents if d is not beat]
    assert others and all("path" not in d for d in others)  # the event metrics keep their one dimension
    assert any("EventsHeartbeat" in d for d in others)
    assert [h[2] for h in heartbeats.recorded] == [path.value]


@pytest.mark.parametrize("path", list(CanaryPath))
def test_a_member_accounts_heartbeat_is_kept_but_never_feeds_the_stacks_alarms(
    path: CanaryPath, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alarms watch this account-region's canary: a member heard must not hide a deaf central path."""
    heartbeats = Heartbeats()
    monkeypatch.setattr(handler, "recorder", lambda: _recorder(heartbeats))
    monkeypatch.setattr(handler.logger.registered_handler, "stream", io.StringIO())
    capsys.readouterr()
    event = as_member(canary_event(path), region="eu-west-1")
    result = handler.lambda_handler(event, FakeLambdaContext("grantwatch-recorder"))
    assert (result["outcome"], result["canaryFrom"]) == ("heartbeat", f"{MEMBER_ACCOUNT}/eu-west-1")
    documents = _metric_documents(capsys.readouterr().out)
    assert not [d for d in documents if "CanaryHeartbeat" in d]
    assert [h[:3] for h in heartbeats.recorded] == [(MEMBER_ACCOUNT, "eu-west-1", path.value)]


def test_a_replay_reports_a_heartbeat_as_the_canarys_path(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = _recorder(None).record(canary_event(CanaryPath.RETIRE_GRANT))
    report_event(outcome, "canary-retire-grant.json", as_json=False)
    line = capsys.readouterr().out.strip()
    assert line.split()[0] == "heartbeat" and line.endswith("canary RetireGrant")
