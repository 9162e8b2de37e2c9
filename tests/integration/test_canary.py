"""The canary end to end on the local stand-ins: its run against moto's KMS (whose missing authorization the
test supplies from moto's own grant state, answering a Decrypt no grant allows in AWS's own error shape),
and its three CloudTrail records through the recorder into DynamoDB Local: heartbeats kept, nothing else
written."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from typer.testing import CliRunner

from grantwatch import canary, wiring
from grantwatch.adapters.accounts import DynamoCoverageStore
from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.heartbeats import DynamoHeartbeatStore
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.cli import app
from grantwatch.domain.canary import CanaryPath
from grantwatch.domain.coverage import Target, reconciled
from grantwatch.domain.records import EvaluationRequest
from grantwatch.handlers import canary as canary_handler
from grantwatch.handlers import recorder as recorder_handler
from grantwatch.parallel import Recorded
from grantwatch.recorder import Outcome, Recorder
from grantwatch.settings import Settings, settings
from tests.support.aws import ACCOUNT as MOTO_ACCOUNT
from tests.support.aws import REGION as MOTO_REGION
from tests.support.canary import CANARY_KEY, MEMBER_ACCOUNT, as_member, canary_event
from tests.support.iam_contract import central_stack, stands_for
from tests.support.lambda_context import FakeLambdaContext
from tests.support.moto_server import moto_server
from tests.support.samples import ACCOUNT, REGION

# --- the canary's run against moto's KMS ------------------------------------------------------------------


class RawBody:
    """An HTTP body as urllib3 hands it to botocore."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


@dataclass
class Kms:
    """moto's KMS, with KMS's authorization of the canary's Decrypt: moto evaluates no grant, so a Decrypt
    the key policy does not allow (the canary key's allows none) is refused unless a grant to the caller
    still exists, answered with the bytes KMS sends (JSON 1.1, HTTP 400, AccessDeniedException)."""

    client: Any
    key_arn: str
    role_arn: str
    grants_seen: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    decrypts: list[str] = field(default_factory=list)
    grant_lingers: int = 0  # Decrypts a retired grant still allows (KMS's eventual consistency)
    refusal: str = "AccessDeniedException"  # what KMS answers (DisabledException for a disabled key)
    retire_unknown: int = 0  # RetireGrants that find no grant by its id yet (KMS's eventual consistency)
    retires: list[str] = field(default_factory=list)

    def watch(self) -> None:
        events = self.client.meta.events
        events.register("after-call.kms.CreateGrant", self._created)
        events.register("before-send.kms.Decrypt", self._authorize_decrypt)
        events.register("before-send.kms.RetireGrant", self._not_yet_known)

    def _not_yet_known(self, request: Any, **_: Any) -> AWSResponse | None:
        if not self.retire_unknown:
            self.retires.append("retired")
            return None
        self.retire_unknown -= 1
        self.retires.append("not found")
        grant_id = json.loads(request.body)["GrantId"]
        body = {"__type": "NotFoundException", "message": f"Grant ID {grant_id} not found"}
        return _json_error(request, body)

    def _grants(self) -> list[dict[str, Any]]:
        reader: Any = boto3.client("kms", region_name=MOTO_REGION)
        grants: list[dict[str, Any]] = reader.list_grants(KeyId=self.key_arn)["Grants"]
        return grants

    def _created(self, parsed: dict[str, Any], **_: Any) -> None:
        self.tokens.append(parsed["GrantToken"])
        self.grants_seen.extend(self._grants())

    def _authorize_decrypt(self, request: Any, **_: Any) -> AWSResponse | None:
        if any(g["GranteePrincipal"] == self.role_arn for g in self._grants()):
            self.decrypts.append("allowed by the grant")
            return None
        if self.grant_lingers:
            self.grant_lingers -= 1
            self.decrypts.append("allowed by a retired grant not yet gone")
            return None
        self.decrypts.append("denied")
        session = f"arn:aws:sts::{MOTO_ACCOUNT}:assumed-role/{self.role_arn.rsplit('/', 1)[-1]}/canary"
        body = {
            "__type": self.refusal,
            "message": f"User: {session} is not authorized to perform: kms:Decrypt on this resource because "
            "the resource does not exist in this Region, no resource-based policies allow access, or a "
            "resource-based policy explicitly denies access",
        }
        return _json_error(request, body)


def _json_error(request: Any, body: dict[str, str]) -> AWSResponse:
    """An error as KMS sends it: JSON 1.1, HTTP 400."""
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/x-amz-json-1.1"
    headers["x-amzn-RequestId"] = "0b6a1e9c-3d5f-4a7b-9c1e-2f4a6b8c0d1e"
    return AWSResponse(request.url, 400, headers, RawBody(json.dumps(body).encode()))


@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[Kms]:
    with moto_server(monkeypatch, "KMS"):
        key_arn = boto3.client("kms", region_name=MOTO_REGION).create_key(Description="canary")[
            "KeyMetadata"
        ]["Arn"]
        stands_for("CanaryKey", key_arn)  # the IAM contract checks calls to it as to the stack's CanaryKey
        role_arn = central_stack().attribute("CanaryRole", "Arn")
        monkeypatch.setenv("GRANTWATCH_CANARY_KEY_ARN", key_arn)
        monkeypatch.setenv("GRANTWATCH_CANARY_ROLE_ARN", role_arn)
        settings.cache_clear()
        canary_handler.kms.cache_clear()
        found = Kms(canary_handler.kms(), key_arn, role_arn)
        found.watch()
        yield found
    settings.cache_clear()
    canary_handler.kms.cache_clear()


def test_the_canary_creates_its_grant_retires_it_and_is_refused_its_decrypt(
    kms: Kms, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = io.StringIO()
    monkeypatch.setattr(canary_handler.logger.registered_handler, "stream", logs)
    context: Any = FakeLambdaContext("grantwatch-canary")
    result = canary_handler.lambda_handler({}, context)
    assert result["decrypt"] == "denied" and result["attempts"] == 1
    [grant] = kms.grants_seen
    assert grant["GrantId"] == result["grantId"]
    assert grant["GranteePrincipal"] == grant["RetiringPrincipal"] == kms.role_arn
    assert sorted(grant["Operations"]) == ["Decrypt", "Encrypt"]
    assert grant["Constraints"] == {"EncryptionContextEquals": canary.CONTEXT}
    assert kms._grants() == []  # retired
    assert kms.decrypts == ["denied"]
    [token] = kms.tokens
    assert token not in logs.getvalue() and token not in json.dumps(result)  # no grant token kept anywhere
    assert [json.loads(line)["message"] for line in logs.getvalue().splitlines()] == ["canary beat"]


def test_a_retired_grant_still_usable_for_a_moment_is_waited_out(kms: Kms) -> None:
    kms.grant_lingers = 2
    waited: list[float] = []
    result = canary.beat(kms.client, kms.key_arn, kms.role_arn, sleep=waited.append)
    assert result["attempts"] == 3
    assert waited == [canary.RETIRE_WAITS[0], *canary.WAITS[:3]]
    assert kms.decrypts[-1] == "denied"


def test_a_grant_not_yet_known_by_its_id_is_retired_once_kms_knows_it(kms: Kms) -> None:
    kms.retire_unknown = 2
    waited: list[float] = []
    result = canary.beat(kms.client, kms.key_arn, kms.role_arn, sleep=waited.append)
    assert kms.retires == ["not found", "not found", "retired"]
    assert waited[:3] == list(canary.RETIRE_WAITS[:3])
    assert kms._grants() == [] and result["decrypt"] == "denied"


def test_a_grant_never_known_by_its_id_is_retired_by_its_token(kms: Kms) -> None:
    """Left behind, the grant would let every later Decrypt succeed: the token retires it at once."""
    kms.retire_unknown = len(canary.RETIRE_WAITS)
    result = canary.beat(kms.client, kms.key_arn, kms.role_arn, sleep=lambda _: None)
    assert kms.retires == ["not found"] * len(canary.RETIRE_WAITS) + ["retired"]
    assert kms._grants() == [] and result["decrypt"] == "denied"


def test_a_decrypt_that_never_fails_is_an_error_not_a_heartbeat(kms: Kms) -> None:
    kms.grant_lingers = len(canary.WAITS)
    with pytest.raises(canary.CanaryError, match="after the grant was retired"):
        canary.beat(kms.client, kms.key_arn, kms.role_arn, sleep=lambda _: None)
    assert kms._grants() == []  # the grant is retired all the same


def test_a_call_refused_for_another_reason_is_raised_never_taken_for_a_heartbeat(kms: Kms) -> None:
    kms.refusal = "DisabledException"  # the canary key disabled: not the refusal the canary waits for
    with pytest.raises(kms.client.exceptions.ClientError) as raised:
        canary.beat(kms.client, kms.key_arn, kms.role_arn, sleep=lambda _: None)
    assert raised.value.response["Error"]["Code"] == "DisabledException"
    assert kms.decrypts == ["denied"]  # raised at once, not retried as if the grant lingered


# --- the canary's records through the recorder into DynamoDB Local ----------------------------------------


@dataclass
class Scheduled:
    requests: list[EvaluationRequest] = field(default_factory=list)

    def schedule(self, request: EvaluationRequest) -> None:
        self.requests.append(request)


def _items(table_settings: Settings) -> list[dict[str, Any]]:
    client = boto3.client("dynamodb", endpoint_url=table_settings.endpoint_url, region_name=REGION)
    items: list[dict[str, Any]] = client.scan(TableName=table_settings.table_name)["Items"]
    return items


def _recorder(table_settings: Settings, scheduled: Scheduled) -> Recorder:
    return Recorder(
        DynamoGrantStore(table_settings),
        DynamoFunctionStore(table_settings),
        DynamoHazardStore(table_settings),
        scheduled,
        canary_key_arn=CANARY_KEY,
        heartbeats=DynamoHeartbeatStore(table_settings),
    )


def test_the_canarys_three_calls_leave_heartbeats_and_nothing_else(
    table_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    scheduled = Scheduled()
    monkeypatch.setattr(recorder_handler, "recorder", lambda: _recorder(table_settings, scheduled))
    monkeypatch.setattr(recorder_handler.logger.registered_handler, "stream", io.StringIO())
    before = _items(table_settings)
    capsys.readouterr()
    for path in CanaryPath:
        for _ in range(2):  # delivered twice, as EventBridge may
            event = canary_event(path)
            result = recorder_handler.lambda_handler(event, FakeLambdaContext("grantwatch-recorder"))
            assert (result["outcome"], result["canaryPath"]) == ("heartbeat", path.value)
    emitted = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')
    ]
    assert sorted(d["path"] for d in emitted if "CanaryHeartbeat" in d) == sorted(
        [p.value for p in CanaryPath] * 2
    )
    assert scheduled.requests == []  # no evaluation, so no notice, incident or alert
    assert list(DynamoFunctionStore(table_settings).all_incidents()) == []
    written = [i for i in _items(table_settings) if i not in before]
    assert {i["pk"]["S"] for i in written} == {"HEARTBEAT"}
    beats = DynamoHeartbeatStore(table_settings).latest()
    assert {(b.account, b.region, b.path) for b in beats} == {(ACCOUNT, REGION, p.value) for p in CanaryPath}
    at = {b.path: b.at for b in beats}
    assert at["Decrypt"] == datetime(2026, 11, 20, 18, 0, 3, tzinfo=UTC)


def test_a_heartbeat_keeps_the_latest_of_its_path_whatever_the_order(table_settings: Settings) -> None:
    store = DynamoHeartbeatStore(table_settings)
    later, earlier = datetime(2026, 12, 1, 10, tzinfo=UTC), datetime(2026, 12, 1, 9, tzinfo=UTC)
    store.record(MEMBER_ACCOUNT, "eu-west-1", "CreateGrant", later)
    store.record(MEMBER_ACCOUNT, "eu-west-1", "CreateGrant", earlier)  # late delivery: changes nothing
    store.record(MEMBER_ACCOUNT, "eu-west-1", "CreateGrant", later)  # redelivery: changes nothing
    store.record(MEMBER_ACCOUNT, "eu-west-2", "CreateGrant", earlier)
    latest = {(b.region, b.path): b.at for b in store.latest()}
    assert latest == {("eu-west-1", "CreateGrant"): later, ("eu-west-2", "CreateGrant"): earlier}


def test_a_member_canarys_calls_are_its_accounts_heartbeats(table_settings: Settings) -> None:
    recorder = _recorder(table_settings, Scheduled())
    for path in CanaryPath:
        assert recorder.record(as_member(canary_event(path), region="eu-west-1")).canary_path
    beats = DynamoHeartbeatStore(table_settings).latest()
    assert {(b.account, b.region) for b in beats} == {(MEMBER_ACCOUNT, "eu-west-1")}
    assert len(beats) == 3


# --- grantwatch accounts: each account-region's last heartbeat beside its last reconciliation -------------


def test_accounts_shows_each_account_regions_last_heartbeat_beside_its_last_reconciliation(
    table_settings: Settings,
) -> None:
    reconciled_at = datetime(2026, 12, 1, 12, tzinfo=UTC)
    report = {"keys": 1, "grantsListed": 1, "functionsListed": 1, "evaluationsScheduled": 0}
    heard, deaf = Target(MEMBER_ACCOUNT, "eu-west-1"), Target(MEMBER_ACCOUNT, "eu-west-2")
    for target in (heard, deaf):
        DynamoCoverageStore(table_settings).put(
            reconciled(target, report | {"repairs": {}, "errors": []}, reconciled_at, None)
        )
    beats = DynamoHeartbeatStore(table_settings)
    beats.record(MEMBER_ACCOUNT, "eu-west-1", "CreateGrant", datetime(2026, 12, 1, 11, 0, 1, tzinfo=UTC))
    beats.record(MEMBER_ACCOUNT, "eu-west-1", "RetireGrant", datetime(2026, 12, 1, 11, 0, 2, tzinfo=UTC))
    where = ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]
    runner = CliRunner()
    shown = runner.invoke(app, ["accounts", "--json", *where])
    assert shown.exit_code == 0, shown.output
    rows = {r["region"]: r for r in json.loads(shown.stdout)}
    assert rows["eu-west-1"]["lastReconciledAt"] == "2026-12-01T12:00:00Z"
    assert rows["eu-west-1"]["lastHeartbeatAt"] == "2026-12-01T11:00:02Z"
    assert rows["eu-west-1"]["heartbeats"] == {
        "CreateGrant": "2026-12-01T11:00:01Z",
        "RetireGrant": "2026-12-01T11:00:02Z",
    }
    assert (rows["eu-west-2"]["lastHeartbeatAt"], rows["eu-west-2"]["heartbeats"]) == (None, {})
    table = runner.invoke(app, ["accounts", *where]).stdout.splitlines()
    assert table[1].split()[:7] == ["ACCOUNT", "REGION", "LAST", "RECONCILED", "LAST", "HEARTBEAT", "GRANTS"]
    assert table[2].split()[:4] == [
        MEMBER_ACCOUNT,
        "eu-west-1",
        "2026-12-01T12:00:00Z",
        "2026-12-01T11:00:02Z",
    ]
    assert table[3].split()[:4] == [MEMBER_ACCOUNT, "eu-west-2", "2026-12-01T12:00:00Z", "never"]


# --- a replay or backfill of the trail knows the canary's calls too ---------------------------------------


def test_a_replay_knows_the_canarys_calls_by_the_configured_key(table_settings: Settings) -> None:
    configured = dataclasses.replace(table_settings, canary_key_arn=CANARY_KEY)
    before = _items(table_settings)
    serial = wiring.local_pipeline(configured)
    for path in CanaryPath:
        notices, outcome = serial.feed(canary_event(path))
        assert (notices, outcome.outcome, outcome.canary_path) == ([], Outcome.HEARTBEAT, path.value)
    assert serial.drain() == []
    with wiring.parallel_pipeline(configured, workers=2) as parallel:
        steps = [s for path in CanaryPath for s in parallel.feed(canary_event(path), path.value)]
        steps += parallel.drain()
    assert all(isinstance(s, Recorded) for s in steps)  # no notice
    assert [(s.tag, s.outcome.outcome) for s in steps if isinstance(s, Recorded)] == [
        (p.value, Outcome.HEARTBEAT) for p in CanaryPath
    ]
    assert _items(table_settings) == before  # nothing recorded as a grant; a replay keeps no heartbeat


def test_the_member_stacks_inline_handler_beats_and_logs_one_json_line(
    kms: Kms, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """member/forwarder.yaml runs canary.lambda_handler itself (its ZipFile is this module), with no layer."""
    monkeypatch.setattr(boto3, "client", lambda *_, **__: kms.client)  # the watched client, as KMS answers
    capsys.readouterr()
    result = canary.lambda_handler({}, None)
    assert result["decrypt"] == "denied" and kms._grants() == []
    [line] = capsys.readouterr().out.splitlines()
    logged = json.loads(line)
    assert (logged["level"], logged["message"], logged["grantId"]) == (
        "INFO",
        "canary beat",
        result["grantId"],
    )
    [token] = kms.tokens
    assert token not in line
