"""`grantwatch incidents INCIDENT_ID`, the command every alert e-mail ends with, against DynamoDB Local:
the e-mail's last line, run as printed, shows the whole alert; and every notice's last command line is a
grantwatch command that runs."""

from __future__ import annotations

import json
import shlex
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer._click.exceptions import UsageError
from typer.core import TyperGroup
from typer.main import get_command
from typer.testing import CliRunner

from grantwatch.adapters.accounts import DynamoCoverageStore
from grantwatch.adapters.functions import DynamoFunctionStore, DynamoHealRecords
from grantwatch.cli import app
from grantwatch.domain.alerts import Incident, fix_target
from grantwatch.domain.coverage import Coverage, Target
from grantwatch.domain.delivery import ChannelState
from grantwatch.domain.facts import Actor
from grantwatch.domain.fixes import reset
from grantwatch.domain.healing import HealOutcome
from grantwatch.domain.notices import (
    Notice,
    NoticeKind,
    heal_notice,
    stale_notice,
    trial_notice,
)
from grantwatch.domain.risk import Cause, Evidence
from grantwatch.incidents import FunctionIncidents, find_incident
from grantwatch.pipeline import LocalPipeline
from grantwatch.settings import Settings
from grantwatch.wiring import local_pipeline
from tests.support.resource_scenarios import service_grant
from tests.support.samples import KEY_ARN
from tests.support.scenarios import (
    create_grant,
    decrypt_failed,
    disable_key,
    enable_key,
    function_arn,
    put_key_policy,
    replay,
    retire_grant,
)

runner = CliRunner()


@pytest.fixture
def where(table_settings: Settings) -> list[str]:
    return ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]


@pytest.fixture
def pipeline(table_settings: Settings) -> LocalPipeline:
    return local_pipeline(table_settings)


def alert_of(pipeline: LocalPipeline) -> Notice:
    [alert] = replay(
        pipeline,
        [create_grant("billing", "b1", "2026-11-01T10:00:00Z"), retire_grant("b1", "2026-11-03T10:00:00Z")],
    )
    assert alert.kind is NoticeKind.ALERT
    return alert


def last_command(notice: Notice) -> list[str]:
    """The e-mail's last line, split as a shell would: it must be the notice's `command`."""
    line = notice.email.rstrip().splitlines()[-1].strip()
    assert line == notice.command
    words = shlex.split(line)
    assert words[0] == "grantwatch"
    return words[1:]


def run(where: list[str], words: list[str]) -> Any:
    return runner.invoke(app, [*words, *where])


def test_the_command_an_alert_email_ends_with_shows_the_whole_alert(
    pipeline: LocalPipeline, where: list[str]
) -> None:
    alert = alert_of(pipeline)
    words = last_command(alert)
    assert words == ["incidents", alert.incident_id]
    shown = run(where, words)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith(alert.message + "\n")  # the alert as sent, fixes and JSON included
    block = shown.stdout[len(alert.message) :]
    assert f"\n{alert.incident_id}  OPEN  grant-retired\n" in block
    assert f"  function  {function_arn('billing')}\n" in block
    assert "  cause     retired at 2026-11-03T10:00:00Z by " in block
    assert "  alerted   2026-11-03T10:02:00Z (detected 2026-11-03T10:02:00Z)\n" in block
    assert "  alert via sns: delivered 2026-11-03T10:02:00Z\n" in block


def test_json_is_one_object_with_the_alert_its_fixes_and_its_deliveries(
    pipeline: LocalPipeline, where: list[str]
) -> None:
    alert = alert_of(pipeline)
    shown = run(where, [*last_command(alert), "--json"])
    assert shown.exit_code == 0, shown.output
    found = json.loads(shown.stdout)
    assert found["kind"] == "function"
    assert found["alert"] == {
        "subject": alert.subject,
        "message": alert.message,
        "email": alert.email,
        "command": alert.command,
    }
    assert found["fix"] == alert.details["fix"] and found["fix"]
    assert (found["incidentId"], found["status"], found["functionName"]) == (
        alert.incident_id,
        "open",
        "billing",
    )
    assert found["evidence"] == alert.details["evidence"]
    assert found["deliveries"] == {"alert": {"sns": {"deliveredAt": "2026-11-03T10:02:00Z"}}, "resolved": {}}
    assert found["resolvedAt"] is None and found["heal"] is None


def test_a_resolved_incident_shows_its_resolution_and_the_resolved_notice(
    pipeline: LocalPipeline, where: list[str]
) -> None:
    alert = alert_of(pipeline)
    [resolved] = replay(pipeline, [create_grant("billing", "b2", "2026-11-05T10:00:00Z")])
    assert resolved.kind is NoticeKind.RESOLVED and last_command(resolved) == last_command(alert)
    shown = run(where, last_command(resolved))
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith(alert.message + "\n")  # still the alert, as it was sent
    assert f"\n{alert.incident_id}  RESOLVED  grant-retired\n" in shown.stdout
    assert "  resolved  2026-11-05T10:02:00Z: can decrypt again\n" in shown.stdout
    assert "  resolved via sns: delivered 2026-11-05T10:02:00Z\n" in shown.stdout


def test_confirmation_heal_and_each_channels_delivery_are_shown(
    pipeline: LocalPipeline, table_settings: Settings, where: list[str]
) -> None:
    alert = alert_of(pipeline)
    replay(pipeline, [decrypt_failed("billing", "2026-11-03T11:00:00Z")])
    heals, arn = DynamoHealRecords(table_settings), function_arn("billing")
    at = datetime(2026, 11, 3, 11, 5, tzinfo=UTC)
    assert heals.claim(arn, alert.incident_id, 3, at) == 1
    heals.finish(arn, alert.incident_id, HealOutcome(False, at, 1, 3, error="AccessDeniedException"))
    functions = DynamoFunctionStore(table_settings)
    record = functions.incident(arn, alert.incident_id)
    assert record is not None
    states = {
        "sns": ChannelState(delivered_at="2026-11-03T10:02:00Z"),
        "chat": ChannelState(failures=1, error="ThrottlingException"),
        "securityhub": ChannelState(
            failures=3, error="AccessDeniedException", gave_up_at="2026-11-03T10:04:00Z"
        ),
    }
    functions.record_deliveries(record.incident, resolved=False, states=states, sent_at=None)
    shown = run(where, last_command(alert))
    assert shown.exit_code == 0, shown.output
    block = shown.stdout[len(alert.message) :]
    for line in (
        "  confirmed first failed Decrypt 2026-11-03T11:00:00Z (1 failure(s), lead time 3480 s)",
        "  heal      1 attempt(s), failed: AccessDeniedException",
        "  alert via chat: not delivered yet (1 failure(s), last ThrottlingException)",
        "  alert via securityhub: given up 2026-11-03T10:04:00Z after 3 failure(s), last "
        "AccessDeniedException",
        "  alert via sns: delivered 2026-11-03T10:02:00Z",
    ):
        assert f"\n{line}\n" in block, line
    found = json.loads(run(where, [*last_command(alert), "--json"]).stdout)
    assert (found["confirmed"], found["failures"], found["leadTimeSeconds"]) == (True, 1, 3480)
    assert found["heal"] == {
        "attempts": 1,
        "status": "failed",
        "healedAt": None,
        "error": "AccessDeniedException",
    }
    assert found["deliveries"]["alert"]["securityhub"] == {
        "failures": 3,
        "error": "AccessDeniedException",
        "gaveUpAt": "2026-11-03T10:04:00Z",
    }


def test_an_unknown_incident_exits_4_with_one_line(pipeline: LocalPipeline, where: list[str]) -> None:
    alert_of(pipeline)
    for words in (["incidents", "20261103T100200Z-nosuchincident"], ["incidents", "nope", "--json"]):
        shown = run(where, words)
        assert shown.exit_code == 4, shown.output
        assert shown.stdout == ""
        assert shown.stderr.startswith(f"error: no incident {words[1]} in table ")


def test_an_id_with_the_list_options_is_a_usage_error(pipeline: LocalPipeline, where: list[str]) -> None:
    alert = alert_of(pipeline)
    shown = run(where, ["incidents", alert.incident_id, "--open"])
    assert shown.exit_code == 2 and "give INCIDENT_ID without them" in shown.stderr


def test_the_lookup_is_one_index_query_and_one_get(pipeline: LocalPipeline, table_settings: Settings) -> None:
    alert = alert_of(pipeline)
    replay(pipeline, [create_grant("payroll", "p1", "2026-11-04T10:00:00Z")])
    functions = DynamoFunctionStore(table_settings)
    counted: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        counted[model.name] += 1

    client = functions.incidents._get_connection().connection.client
    client.meta.events.register("provide-client-params.dynamodb.*", count)
    found = find_incident([FunctionIncidents(functions)], alert.incident_id)
    assert found is not None and found.alert.message == alert.message
    assert counted == Counter({"Query": 1, "GetItem": 1})  # no Scan
    counted.clear()
    assert find_incident([FunctionIncidents(functions)], "20261103T100200Z-none") is None
    assert counted == Counter({"Query": 1})


class Elsewhere:
    """A second kind of incident: asked after the first finds nothing."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def find(self, incident_id: str) -> None:
        self.asked.append(incident_id)


def test_every_kind_is_asked_until_one_has_it(pipeline: LocalPipeline, table_settings: Settings) -> None:
    alert = alert_of(pipeline)
    first, second = FunctionIncidents(DynamoFunctionStore(table_settings)), Elsewhere()
    assert find_incident([first, second], alert.incident_id) is not None
    assert second.asked == []
    assert find_incident([first, second], "other-kind-1") is None
    assert second.asked == ["other-kind-1"]


def parses(words: list[str]) -> None:
    """The words are a valid grantwatch command line for the CLI's own (typer's) click parser: a known
    command, and arguments and options it takes. Raises UsageError otherwise."""
    group = get_command(app)
    assert isinstance(group, TyperGroup)
    context = group.make_context("grantwatch", list(words))
    name, command, rest = group.resolve_command(context, [*context._protected_args, *context.args])
    assert name is not None and command is not None
    command.make_context(name, rest, parent=context)


def test_every_notice_ends_with_a_command_that_runs(
    pipeline: LocalPipeline, table_settings: Settings, where: list[str]
) -> None:
    alert = alert_of(pipeline)
    [policy] = [
        n for n in replay(pipeline, [put_key_policy("2026-11-03T12:00:00Z")]) if n.kind is NoticeKind.INFO
    ]
    record = DynamoFunctionStore(table_settings).find_incident(alert.incident_id)
    assert record is not None
    at = datetime(2026, 11, 3, 10, 5, tzinfo=UTC)
    fix = reset(fix_target(record.incident))[0]
    healed = heal_notice(record.incident, HealOutcome(True, at, 1, 3, grant_id="g-new", fix=fix))
    failed = heal_notice(
        record.incident, HealOutcome(False, at, 3, 3, error="AccessDeniedException", fix=fix)
    )
    late = Target("123456789012", "eu-west-1")
    coverage = Coverage(late.account, late.region, last_run_at=at, last_reconciled_at=None)
    DynamoCoverageStore(table_settings).put(coverage)
    stale = stale_notice([late], [coverage], timedelta(hours=1))
    table_events = [
        service_grant("dynamodb", "orders", "2026-11-20T10:00:00Z", context_key="aws:dynamodb:tableName"),
        disable_key("2026-11-24T09:15:02Z"),
        enable_key("2026-11-24T12:00:00Z"),
    ]
    resource_alert, resource_resolved = [
        n for n in replay(pipeline, table_events) if n.details.get("resourceKind")
    ]
    expected = {
        "alert": (alert, alert.incident_id),
        "resource alert": (resource_alert, "orders"),
        "resource resolved": (resource_resolved, "orders"),
        "heal succeeded": (healed, alert.incident_id),
        "heal failed": (failed, alert.incident_id),
        "key policy": (policy, "billing"),
        "stale reconciliation": (stale, "123456789012"),
    }
    for kind, (notice, shown) in expected.items():
        words = last_command(notice)
        parses(words)
        ran = run(where, words)
        assert ran.exit_code == 0, (kind, ran.output)
        assert shown in ran.stdout, kind
    assert last_command(policy) == ["functions", "--key", KEY_ARN]
    assert last_command(stale) == ["accounts"]
    assert last_command(resource_alert) == ["resources", "--key", KEY_ARN]


def test_the_test_notice_names_no_command_to_run() -> None:
    trial = trial_notice(datetime(2026, 11, 3, tzinfo=UTC), account="123456789012", region="eu-west-1")
    assert trial.command == ""
    assert not any(line.strip().startswith("grantwatch ") for line in trial.email.splitlines())


def test_a_command_line_that_is_not_grantwatchs_does_not_parse() -> None:
    with pytest.raises(UsageError):
        parses(["incidents", "a", "b"])
    with pytest.raises(UsageError):
        parses(["no-such-command"])


def test_the_help_shows_the_optional_id() -> None:
    shown = runner.invoke(app, ["incidents", "--help"], prog_name="grantwatch")
    assert shown.exit_code == 0
    assert "Usage: grantwatch incidents [OPTIONS] [INCIDENT_ID]" in shown.stdout


def test_the_lookup_reads_pages_up_to_the_one_that_holds_the_incident(table_settings: Settings) -> None:
    """Pages of 10 items stand for DynamoDB's 1 MB pages, which DynamoDB counts before the filter (DynamoDB
    Local did not page this filtered query at 1 MB): one Query per page read, none after the page that
    holds the incident."""
    functions = DynamoFunctionStore(table_settings)
    at = datetime(2026, 11, 3, 10, tzinfo=UTC)
    evidence = Evidence(
        "disabled", "DisableKey", "e-1", at, Actor("arn:aws:iam::210987654321:user/x", None, None)
    )
    incidents = [
        Incident(
            incident_id=f"20261103T100000Z-{n:016d}",
            function_arn=function_arn(f"svc-{n:02d}"),  # by-entity's order: svc-00 first, svc-24 last
            key_arn=KEY_ARN,
            role=None,
            cause=Cause.KEY_DISABLED,
            evidence=evidence,
            detected_at=at,
        )
        for n in range(25)
    ]
    with functions.incidents.batch_write() as batch:
        for incident in incidents:
            batch.save(functions._new_incident(incident))
    counted: Counter[str] = Counter()
    client = functions.incidents._get_connection().connection.client
    client.meta.events.register(
        "provide-client-params.dynamodb.*", lambda model, **_: counted.update([model.name])
    )
    for n, pages in ((0, 1), (9, 1), (10, 2), (24, 3)):
        counted.clear()
        record = functions.find_incident(incidents[n].incident_id, page_size=10)
        assert record is not None and record.incident == incidents[n]
        assert counted == Counter({"Query": pages, "GetItem": 1}), n
    counted.clear()
    assert functions.find_incident("20261103T100000Z-unknown", page_size=10) is None
    assert counted == Counter({"Query": 3})
