"""Lambda's own events: a function's key, role and existence, whatever the API-version suffix."""

from __future__ import annotations

import pytest

from grantwatch.domain.facts import Ignored, RejectedRecord
from grantwatch.domain.functions import (
    FunctionChange,
    FunctionFact,
    is_lambda_function_event,
    normalise_function_event,
    role_name,
)
from grantwatch.domain.records import CloudTrailRecord
from grantwatch.recorder import parse_event
from tests.support.samples import KEY_ARN, load_event
from tests.support.scenarios import function_arn


def change_of(event: dict[str, object]) -> FunctionFact | Ignored:
    record = parse_event(event)
    assert isinstance(record, CloudTrailRecord)
    assert is_lambda_function_event(record)
    return normalise_function_event(record)


def fact_of(event: dict[str, object]) -> FunctionFact:
    fact = change_of(event)
    assert isinstance(fact, FunctionFact), fact
    return fact


def test_create_function_gives_the_key_and_role_but_no_environment_value() -> None:
    fact = fact_of(load_event("lambda-create-function.json"))
    assert fact.change is FunctionChange.CONFIGURED
    assert fact.function_arn == function_arn("invoice-renderer")
    assert fact.kms_key_arn == KEY_ARN
    assert fact.role == "arn:aws:iam::210987654321:role/invoice-renderer-role"
    assert fact.has_environment is True
    assert "HIDDEN" not in repr(fact)


def test_update_configuration_with_a_versioned_name_and_pascal_case_key_field() -> None:
    event = load_event("lambda-update-function-configuration.json")
    response = event["detail"]["responseElements"]
    response["KMSKeyArn"] = response.pop("kMSKeyArn")
    event["detail"]["eventName"] = "UpdateFunctionConfiguration20150331v3"
    fact = fact_of(event)
    assert (fact.change, fact.kms_key_arn) == (FunctionChange.CONFIGURED, KEY_ARN)
    assert fact.function_arn == function_arn("report-mailer")


@pytest.mark.parametrize(
    "reference",
    [
        "legacy-exporter",
        "210987654321:function:legacy-exporter",
        "arn:aws:lambda:eu-central-1:210987654321:function:legacy-exporter",
    ],
)
def test_delete_function_by_any_name_form_is_the_unqualified_arn(reference: str) -> None:
    event = load_event("lambda-delete-function.json")
    event["detail"]["requestParameters"]["functionName"] = reference
    fact = fact_of(event)
    assert (fact.change, fact.function_arn) == (FunctionChange.DELETED, function_arn("legacy-exporter"))


@pytest.mark.parametrize(
    ("reference", "qualifier"),
    [
        ("legacy-exporter:7", None),
        ("210987654321:function:legacy-exporter:7", None),
        ("arn:aws:lambda:eu-central-1:210987654321:function:legacy-exporter:7", None),
        ("legacy-exporter", "7"),
    ],
)
def test_deleting_one_version_is_not_deleting_the_function(reference: str, qualifier: str | None) -> None:
    event = load_event("lambda-delete-function.json")
    event["detail"]["requestParameters"]["functionName"] = reference
    if qualifier:
        event["detail"]["requestParameters"]["qualifier"] = qualifier
    assert change_of(event) == Ignored("deletes one version, not the function")


def test_a_function_name_that_cannot_be_one_is_rejected() -> None:
    event = load_event("lambda-delete-function.json")
    event["detail"]["requestParameters"]["functionName"] = "no spaces/or slashes"
    with pytest.raises(RejectedRecord, match="cannot make a function ARN"):
        fact_of(event)


@pytest.mark.parametrize(
    "event_name",
    [
        "UpdateFunctionCode20150331v2",
        "DeleteFunctionConcurrency20171031",
        "DeleteFunctionUrlConfig20211031",
        "CreateFunctionUrlConfig20211031",
        "DeleteFunctionEventInvokeConfig20190925",
    ],
)
def test_other_lambda_calls_are_not_function_changes(event_name: str) -> None:
    event = load_event("lambda-update-function-configuration.json")
    event["detail"]["eventName"] = event_name
    expected = f"not an event grantwatch acts on: lambda.amazonaws.com {event_name}"
    assert parse_event(event) == Ignored(expected)
    assert not is_lambda_function_event(CloudTrailRecord.parse(event["detail"]))


@pytest.mark.parametrize(
    ("principal", "role"),
    [
        ("arn:aws:sts::210987654321:assumed-role/app-role/app", "app-role"),
        ("arn:aws:iam::210987654321:role/service-role/app-role", "app-role"),
        ("arn:aws:iam::210987654321:role/app-role", "app-role"),
        ("AROAEXAMPLE1234567890:app", None),
        ("dynamodb.eu-central-1.amazonaws.com", None),
        (None, None),
    ],
)
def test_role_name(principal: str | None, role: str | None) -> None:
    assert role_name(principal) == role
