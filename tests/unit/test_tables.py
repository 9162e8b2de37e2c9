"""How the adapters read DynamoDB's answers: a call that got no answer is never taken for a refusal."""

from __future__ import annotations

from pathlib import Path

from botocore.exceptions import ClientError, ReadTimeoutError
from pynamodb.exceptions import UpdateError

from grantwatch.adapters.tables import error_code
from tests.support.samples import ROOT


def test_a_timed_out_call_has_no_error_code() -> None:
    timeout = ReadTimeoutError(endpoint_url="http://127.0.0.1:8000/")
    assert error_code(UpdateError("Failed to update item", timeout)) is None


def test_a_refused_condition_has_its_code() -> None:
    refused = ClientError({"Error": {"Code": "ConditionalCheckFailedException"}}, "UpdateItem")
    assert error_code(UpdateError("Failed to update item", refused)) == "ConditionalCheckFailedException"


def test_no_adapter_reads_pynamodbs_cause_response_code_which_crashes_on_a_timeout() -> None:
    sources = (ROOT / "functions" / "grantwatch").rglob("*.py")
    users = [str(p.relative_to(ROOT)) for p in sources if ".cause_response_code" in Path(p).read_text()]
    assert users == []
