"""Every record shape in the design brief, normalised into a grant fact (or ignored, or rejected)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from grantwatch.domain.facts import (
    KEY_VALUE_LIMITS,
    MAX_KEY_PREFIX_BYTES,
    MAX_SORT_KEY_BYTES,
    FactKind,
    GrantFact,
    Ignored,
    KeyRefStrength,
    dependent_resource,
    normalise,
)
from grantwatch.domain.records import CloudTrailRecord, EvaluationRequest, FieldError
from grantwatch.recorder import EventOutcome, Outcome, Recorder, parse_event
from tests.support.facts import fact_of
from tests.support.samples import ACCOUNT, FUNCTION_ARN, KEY_ARN, KEY_ID, load_event


def test_lambda_create_grant_names_the_function_and_its_terms() -> None:
    fact = fact_of(load_event("kms-create-grant-lambda.json"))
    assert fact.kind is FactKind.CREATED
    assert fact.grant_id == "abfc6dbbc686122cb75763f3007e5aa9c67f9d9caafa2dd4320bbf61b393fd9a"
    assert (fact.key_ref, fact.key_ref_strength) == (KEY_ARN, KeyRefStrength.ARN)
    assert (fact.account, fact.region) == (ACCOUNT, "eu-central-1")
    assert fact.actor.principal == f"arn:aws:sts::{ACCOUNT}:assumed-role/platform-deployer/ci-pipeline"
    assert fact.actor.identity_type == "AssumedRole"
    assert fact.actor.via == "lambda.amazonaws.com"
    terms = fact.terms
    assert terms is not None
    assert terms.function_arn == FUNCTION_ARN
    assert (terms.service, terms.resource) == ("lambda", FUNCTION_ARN)
    assert terms.grantee_principal.endswith(":assumed-role/invoice-renderer-role/invoice-renderer")
    assert terms.retiring_principal == terms.grantee_principal
    assert terms.operations == ("Decrypt", "RetireGrant")
    assert terms.constraints == {"encryptionContextEquals": {"aws:lambda:FunctionArn": FUNCTION_ARN}}


def test_retire_grant_with_null_request_parameters_reads_additional_event_data_and_resources() -> None:
    event = load_event("kms-retire-grant-by-admin.json")
    assert event["detail"]["requestParameters"] is None
    fact = fact_of(event)
    assert fact.kind is FactKind.RETIRED
    assert fact.grant_id == event["detail"]["additionalEventData"]["grantId"]
    assert fact.key_ref == KEY_ARN
    assert fact.actor.principal == f"arn:aws:sts::{ACCOUNT}:assumed-role/kms-administrators/dana"
    assert fact.actor.via is None
    assert fact.terms is None


def test_retire_grant_by_a_service_names_the_service() -> None:
    fact = fact_of(load_event("kms-retire-grant-by-lambda-service.json"))
    assert fact.actor.principal == "lambda.amazonaws.com"
    assert fact.actor.identity_type == "AWSService"
    assert fact.actor.via == "lambda.amazonaws.com"


def test_revoke_grant_with_bare_key_id_becomes_a_key_arn() -> None:
    event = load_event("kms-revoke-grant-bare-key-id.json")
    event["detail"]["resources"] = []
    fact = fact_of(event)
    assert fact.kind is FactKind.REVOKED
    assert (fact.key_ref, fact.key_ref_strength) == (KEY_ARN, KeyRefStrength.ARN)


def test_revoke_grant_by_alias_keeps_the_alias_as_seen() -> None:
    event = load_event("kms-revoke-grant-bare-key-id.json")
    event["detail"]["resources"] = None
    event["detail"]["requestParameters"]["keyId"] = "alias/batch-data"
    fact = fact_of(event)
    assert (fact.key_ref, fact.key_ref_strength) == ("alias/batch-data", KeyRefStrength.AS_SEEN)
    assert fact.account == ACCOUNT


def test_resources_arn_wins_over_an_alias_typed_by_the_caller() -> None:
    event = load_event("kms-revoke-grant-bare-key-id.json")
    event["detail"]["requestParameters"]["keyId"] = "alias/batch-data"
    assert fact_of(event).key_ref == KEY_ARN


def test_ebs_grant_with_a_non_arn_grantee() -> None:
    fact = fact_of(load_event("kms-create-grant-ebs-volume.json"))
    assert fact.terms is not None
    assert fact.terms.grantee_principal == f"{ACCOUNT}:aws:ec2-infrastructure:i-0a1b2c3d4e5f60718"
    assert (fact.terms.service, fact.terms.resource) == ("ebs", "vol-0123456789abcdef0")
    assert fact.terms.function_arn is None
    assert fact.key_ref == KEY_ARN


def test_dynamodb_grant_names_the_table_not_the_subscriber() -> None:
    event = load_event("kms-create-grant-dynamodb-service-principal.json")
    assert "keyId" not in event["detail"]["responseElements"]
    fact = fact_of(event)
    assert fact.terms is not None
    assert fact.terms.grantee_principal == "dynamodb.eu-central-1.amazonaws.com"
    assert (fact.terms.service, fact.terms.resource) == ("dynamodb", "orders")
    assert fact.key_ref == KEY_ARN


@pytest.mark.parametrize(
    ("constraints", "grantee", "via", "expected"),
    [
        ({}, "dynamodb.us-west-2.amazonaws.com", None, ("dynamodb", None, None)),
        ({}, "111122223333:aws:ec2-infrastructure:i-0abc", None, ("ec2", None, None)),
        ({}, "arn:aws:iam::111122223333:role/app", "ecs.amazonaws.com", ("ecs", None, None)),
        ({}, "AROAEXAMPLE1234567890:session", None, (None, None, None)),
        ({"encryptionContextEquals": {"SecretARN": "arn:s"}}, "x", None, ("secretsmanager", "arn:s", None)),
        (
            {"encryptionContextSubset": {"aws:s3:arn": "arn:aws:s3:::b"}},
            "x",
            None,
            ("s3", "arn:aws:s3:::b", None),
        ),
    ],
)
def test_dependent_resource(
    constraints: dict[str, Any], grantee: str, via: str | None, expected: tuple[str | None, ...]
) -> None:
    assert dependent_resource(constraints, grantee, via) == expected


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("kms-create-grant-dry-run.json", "dry run"),
        ("kms-create-grant-access-denied.json", "failed call: AccessDenied"),
    ],
)
def test_dry_runs_and_failed_calls_are_ignored(name: str, reason: str) -> None:
    event = load_event(name)
    assert normalise(CloudTrailRecord.parse(event["detail"])) == Ignored(reason)
    assert parse_event(event) == Ignored(reason)  # told before the record is read strictly


def test_a_dry_run_without_an_error_code_is_still_ignored() -> None:
    event = load_event("kms-create-grant-dry-run.json")
    del event["detail"]["errorCode"]
    assert normalise(CloudTrailRecord.parse(event["detail"])) == Ignored("dry run")
    assert parse_event(event) == Ignored("dry run")


def test_fields_aws_adds_later_are_ignored_and_the_response_key_arn_wins_over_an_alias() -> None:
    fact = fact_of(load_event("kms-create-grant-newer-fields.json"))
    assert fact.key_ref == KEY_ARN
    assert fact.terms is not None
    assert fact.terms.name == "batch-worker-data"
    assert fact.terms.constraints == {"encryptionContextEquals": {"department": "finance"}}


def test_newer_constraint_kinds_are_kept_and_grantee_service_principal_accepted() -> None:
    event = load_event("kms-create-grant-lambda.json")
    params = event["detail"]["requestParameters"]
    del params["granteePrincipal"]
    params["granteeServicePrincipal"] = "logs.eu-central-1.amazonaws.com"
    params["constraints"]["sourceArn"] = "arn:aws:logs:eu-central-1:210987654321:log-group:x"
    fact = fact_of(event)
    assert fact.terms is not None
    assert fact.terms.grantee_principal == "logs.eu-central-1.amazonaws.com"
    assert fact.terms.constraints["sourceArn"] == "arn:aws:logs:eu-central-1:210987654321:log-group:x"


def test_not_a_grant_event_is_ignored() -> None:
    event = load_event("kms-create-grant-lambda.json")
    event["detail"]["eventName"] = "ListGrants"
    record = CloudTrailRecord.parse(event["detail"])
    assert normalise(record) == Ignored("not a grant event: kms.amazonaws.com ListGrants")
    assert parse_event(event) == Ignored("not an event grantwatch acts on: kms.amazonaws.com ListGrants")


def test_cross_account_records_of_one_call_share_a_dedup_key() -> None:
    event = load_event("kms-create-grant-lambda.json")
    event["detail"]["sharedEventID"] = "0b1c2d3e-0000-4000-8000-000000000001"
    fact = fact_of(event)
    assert fact.dedup_keys == (event["detail"]["eventID"], "shared:0b1c2d3e-0000-4000-8000-000000000001")
    assert fact_of(load_event("kms-create-grant-lambda.json")).dedup_keys == (event["detail"]["eventID"],)


class _Untouchable:
    """Stands for the stores and the scheduler: a rejected or ignored event must reach none of them."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a rejected or ignored event must not reach the store ({name})")


def record_event(event: object) -> EventOutcome:
    return Recorder(_Untouchable(), _Untouchable(), _Untouchable(), _Untouchable()).record(event)


def _rejection(event: object) -> str:
    result = record_event(event)
    assert result.outcome is Outcome.REJECTED
    assert result.error
    return result.error


def test_create_grant_without_grant_id_is_rejected_with_its_event_id() -> None:
    event = load_event("kms-create-grant-lambda.json")
    del event["detail"]["responseElements"]["grantId"]
    result = record_event(event)
    assert result.outcome is Outcome.REJECTED
    assert result.event_id == event["detail"]["eventID"]
    assert "grantId is missing" in (result.error or "")


def test_wrong_types_are_rejected_naming_the_field_not_the_value() -> None:
    event = load_event("kms-create-grant-lambda.json")
    event["detail"]["requestParameters"]["operations"] = {"secret": "s3cr3t-value"}
    error = _rejection(event)
    assert "requestParameters.operations" in error
    assert "s3cr3t-value" not in error


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda e: e["detail"].pop("eventTime"), "detail.eventTime"),
        (lambda e: e["detail"].update(eventTime="2026-11-02 09:14"), "ISO 8601 time"),
        (lambda e: e["detail"].update(eventID=None), "detail.eventID"),
        (lambda e: e.update(detail="not an object"), "detail"),
        (lambda e: e["detail"]["additionalEventData"].clear(), "names no grant id"),
        (lambda e: e["detail"].update(resources=None), "names no key"),
    ],
)
def test_malformed_records_are_rejected_with_a_clear_error(mutate: Any, expected: str) -> None:
    event = load_event("kms-retire-grant-by-admin.json")
    mutate(event)
    assert expected in _rejection(event)


@pytest.mark.parametrize("raw", [None, [], "CreateGrant", 42])
def test_non_objects_are_rejected(raw: object) -> None:
    assert "JSON object" in _rejection(raw)


def test_a_bare_cloudtrail_record_is_read_like_an_eventbridge_event() -> None:
    event = load_event("kms-create-grant-lambda.json")
    assert fact_of(event["detail"]) == fact_of(event)


def test_an_eventbridge_event_that_is_not_a_cloudtrail_call_is_ignored() -> None:
    event = {"detail-type": "KMS CMK Rotation", "source": "aws.kms", "detail": {"key-id": KEY_ID}}
    assert isinstance(parse_event(event), Ignored)


@pytest.mark.parametrize(
    ("event_time", "expected"),
    [
        ("0001-01-01T00:00:00+14:00", "between 2000 and 9998"),
        ("9999-12-31T23:00:00-14:00", "between 2000 and 9998"),
        ("0005-01-01T00:00:00Z", "between 2000 and 9998"),
        (1_700_000_000, "ISO 8601 string"),
    ],
)
def test_implausible_event_times_are_rejected_not_crashed_on(event_time: object, expected: str) -> None:
    event = load_event("kms-retire-grant-by-admin.json")
    event["detail"]["eventTime"] = event_time
    assert expected in _rejection(event)


def test_an_offset_event_time_is_kept_in_utc() -> None:
    event = load_event("kms-retire-grant-by-admin.json")
    event["detail"]["eventTime"] = "2026-11-20T18:42:31+02:00"
    assert fact_of(event).event_time == fact_of(load_event("kms-retire-grant-by-admin.json")).event_time


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("responseElements", "grantId"), "f" * 3000),
        (("requestParameters", "granteePrincipal"), "arn:aws:iam::210987654321:role/" + "r" * 3000),
        (
            ("requestParameters", "constraints", "encryptionContextEquals", "aws:lambda:FunctionArn"),
            "a" * 3000,
        ),
    ],
)
def test_values_too_long_for_a_table_key_are_rejected(path: tuple[str, ...], value: str) -> None:
    event = load_event("kms-create-grant-lambda.json")
    target = event["detail"]
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = value
    assert "longer than" in _rejection(event)


@pytest.mark.parametrize("missing", ["eventID", "eventTime", "awsRegion"])
@pytest.mark.parametrize(
    ("sample", "change", "reason"),
    [
        ("kms-decrypt-access-denied-lambda.json", {"errorCode": None}, "a Decrypt that succeeded"),
        (
            "kms-decrypt-access-denied-no-context.json",
            {"errorCode": "ThrottlingException"},
            "a failed Decrypt that says nothing of access: ThrottlingException",
        ),
        (
            "kms-decrypt-access-denied-no-context.json",
            {"userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/dana"}},
            "a failed Decrypt by a caller that is not an assumed role's session",
        ),
        ("kms-create-grant-lambda.json", {"eventName": "GenerateDataKey"}, "not an event grantwatch acts on"),
        ("kms-create-grant-lambda.json", {"errorCode": "AccessDenied"}, "failed call: AccessDenied"),
    ],
)
def test_a_call_grantwatch_does_not_act_on_is_ignored_before_any_strict_validation(
    sample: str, change: dict[str, Any], reason: str, missing: str
) -> None:
    """A successful Decrypt missing a field is not a rejected event for the dead-letter queue."""
    event = load_event(sample)
    for name, value in change.items():
        if value is None:
            event["detail"].pop(name, None)
        else:
            event["detail"][name] = value
    del event["detail"][missing]
    result = record_event(event)
    assert result.outcome is Outcome.IGNORED, result
    assert (result.reason or "").startswith(reason)
    assert record_event(event["detail"]).outcome is Outcome.IGNORED  # a bare record too


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2025-03-05 21:19:44.000000000", datetime(2025, 3, 5, 21, 19, 44, tzinfo=UTC)),
        ("2026-11-20T16:42:31", datetime(2026, 11, 20, 16, 42, 31, tzinfo=UTC)),
        ("2026-11-20T16:42:31.123456789", datetime(2026, 11, 20, 16, 42, 31, 123456, tzinfo=UTC)),
        ("2026-11-20T18:42:31+0200", datetime(2026, 11, 20, 16, 42, 31, tzinfo=UTC)),
    ],
)
def test_an_event_time_without_a_zone_is_utc_as_cloudtrail_writes_it(
    written: str, expected: datetime
) -> None:
    event = load_event("kms-retire-grant-by-admin.json")
    event["detail"]["eventTime"] = written
    assert fact_of(event).event_time == expected


@pytest.mark.parametrize(
    "written", ["2026-11-20", "2026-11-20T25:00:00Z", "٢٠٢٦-11-20T16:42:31Z", "x" * 5000]
)
def test_an_event_time_that_is_no_time_is_rejected_naming_the_field(written: str) -> None:
    event = load_event("kms-retire-grant-by-admin.json")
    event["detail"]["eventTime"] = written
    error = _rejection(event)
    assert "detail.eventTime" in error and written not in error


_LONG_FUNCTION = f"arn:aws:lambda:eu-central-1:{ACCOUNT}:function:" + "f" * 1400  # 1,450 bytes
_KEY_PREFIX = f"arn:aws:kms:eu-central-1:{ACCOUNT}:key/"


def _set(event: dict[str, Any], path: tuple[str | int, ...], value: str) -> None:
    target: Any = event["detail"]
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = value


_CONTEXT_FUNCTION = ("requestParameters", "constraints", "encryptionContextEquals", "aws:lambda:FunctionArn")


@pytest.mark.parametrize(
    ("sample", "path", "value", "field"),
    [
        # accepted before (under 1,800 or 2,048 bytes), yet too long for `pk`, the sort key of every index
        ("kms-create-grant-lambda.json", _CONTEXT_FUNCTION, _LONG_FUNCTION, "function ARN"),
        (
            "kms-decrypt-access-denied-lambda.json",
            ("requestParameters", "encryptionContext", "aws:lambda:FunctionArn"),
            _LONG_FUNCTION,
            "function ARN",
        ),
        (
            "lambda-update-function-configuration.json",
            ("responseElements", "functionArn"),
            _LONG_FUNCTION,
            "function ARN",
        ),
        ("kms-create-grant-lambda.json", ("responseElements", "grantId"), "a" * 1020, "grant id"),
        ("kms-retire-grant-by-admin.json", ("additionalEventData", "grantId"), "a" * 1020, "grant id"),
        ("kms-disable-key.json", ("resources", 0, "ARN"), _KEY_PREFIX + "k" * 1700, "key"),
        ("kms-revoke-grant-bare-key-id.json", ("resources", 0, "ARN"), _KEY_PREFIX + "k" * 1700, "key"),
        (
            "lambda-update-function-configuration.json",
            ("responseElements", "kMSKeyArn"),
            _KEY_PREFIX + "k" * 1700,
            "key",
        ),
        # beyond AWS's own limits: 128 for a grant id, 256 for a grantee, 140 for a function ARN
        ("kms-create-grant-lambda.json", ("responseElements", "grantId"), "g" * 129, "grant id"),
        (
            "kms-create-grant-lambda.json",
            ("requestParameters", "granteePrincipal"),
            "p" * 257,
            "grantee principal",
        ),
        (
            "kms-create-grant-lambda.json",
            _CONTEXT_FUNCTION,
            f"arn:aws:lambda:eu-central-1:{ACCOUNT}:function:" + "f" * 91,
            "function ARN",
        ),
        ("kms-create-grant-lambda.json", ("responseElements", "grantId"), "é" * 65, "grant id"),  # 130 bytes
    ],
)
def test_a_value_too_long_for_a_key_is_rejected_once_naming_the_field(
    sample: str, path: tuple[str | int, ...], value: str, field: str
) -> None:
    event = load_event(sample)
    _set(event, path, value)
    error = _rejection(event)
    assert f"the {field} is longer than" in error
    assert value not in error and value[:40] not in error


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("responseElements", "grantId"), "g" * 128),
        (("requestParameters", "granteePrincipal"), "p" * 256),
        (_CONTEXT_FUNCTION, f"arn:aws:lambda:eu-central-1:{ACCOUNT}:function:" + "f" * 90),
    ],
)
def test_a_value_at_its_limit_is_accepted(path: tuple[str | int, ...], value: str) -> None:
    event = load_event("kms-create-grant-lambda.json")
    _set(event, path, value)
    assert isinstance(fact_of(event), GrantFact)


def test_every_limit_leaves_room_for_the_longest_key_prefix_in_a_sort_key() -> None:
    assert all(limit + MAX_KEY_PREFIX_BYTES <= MAX_SORT_KEY_BYTES for limit in KEY_VALUE_LIMITS.values())


@pytest.mark.parametrize(
    "request_",
    [
        EvaluationRequest.about(FUNCTION_ARN, "e1", datetime(2026, 11, 3, 10, 0, tzinfo=UTC), immediate=True),
        EvaluationRequest.about_key(KEY_ARN, "e2", "DisableKey", datetime(2026, 11, 3, 10, 0, 0, 5, UTC)),
        EvaluationRequest.about_role(f"{ACCOUNT}/billing-role", "e3", datetime(2026, 11, 3, tzinfo=UTC)),
    ],
)
def test_an_evaluation_request_reads_back_from_its_message_body(request_: EvaluationRequest) -> None:
    assert EvaluationRequest.from_body(request_.body()) == request_


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ('{"functionArn": "f", "eventID": 5, "eventTime": "2026-11-03T10:00:00Z"}', "eventID"),
        ('{"functionArn": "f", "eventID": "e", "eventTime": "secret-when"}', "eventTime"),
        (
            '{"functionArn": "f", "keyArn": "k", "eventID": "e", "eventTime": "2026-11-03T10:00:00Z"}',
            "one of",
        ),
        ('{"role": "', "not JSON"),
        ('["secret-list"]', "JSON object"),
    ],
)
def test_a_bad_evaluation_request_names_the_field_not_the_value(body: str, named: str) -> None:
    with pytest.raises(FieldError, match=named) as raised:
        EvaluationRequest.from_body(body)
    assert "secret" not in str(raised.value)


def test_a_wrong_encryption_context_value_is_named_by_a_bounded_key_not_by_its_value() -> None:
    event = load_event("kms-create-grant-lambda.json")
    event["detail"]["requestParameters"]["constraints"] = {"encryptionContextSubset": {"k" * 5000: 7}}
    error = _rejection(event)
    assert "requestParameters.constraints.encryptionContextSubset." in error
    assert len(error) < 400 and "7" not in error.split(":")[-1]
