"""Security Hub outside the commercial partition: the finding's product ARN and Id take the partition of the
configured product ARN (GovCloud, China), each resource the partition of its own ARN, and the finding still
matches schemas/asff-finding.schema.json."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from grantwatch.adapters.channels import SecurityHub
from grantwatch.domain.channels import finding, product_arn
from grantwatch.domain.notices import alert_notice, trial_notice
from grantwatch.domain.risk import Cause
from tests.support.channels import schema
from tests.support.incidents import incident


class Hub:
    """What BatchImportFindings was sent."""

    def __init__(self) -> None:
        self.findings: list[dict[str, Any]] = []

    def batch_import_findings(self, Findings: list[dict[str, Any]]) -> dict[str, Any]:
        self.findings += Findings
        return {"FailedCount": 0, "SuccessCount": len(Findings), "FailedFindings": []}


def _in(partition: str, region: str, arn: str) -> str:
    """The sample ARN moved to another partition and region."""
    parts = arn.split(":")
    parts[1], parts[3] = partition, region if parts[3] else ""
    return ":".join(parts)


@pytest.mark.parametrize(
    ("partition", "region", "account"),
    [("aws-us-gov", "us-gov-west-1", "123456789012"), ("aws-cn", "cn-north-1", "210987654321")],
    ids=["GovCloud", "China"],
)
def test_a_finding_is_imported_in_the_partition_of_the_product_arn(
    partition: str, region: str, account: str
) -> None:
    sample = incident(Cause.KEY_DISABLED)
    there = dataclasses.replace(
        sample,
        function_arn=_in(partition, region, sample.function_arn),
        key_arn=_in(partition, region, sample.key_arn),
        role=_in(partition, region, sample.role or ""),
        evidence=dataclasses.replace(
            sample.evidence,
            actor=dataclasses.replace(
                sample.evidence.actor, principal=_in(partition, region, sample.evidence.actor.principal)
            ),
        ),
    )
    product = f"arn:{partition}:securityhub:{region}:{account}:product/{account}/default"
    hub = Hub()
    SecurityHub(product, hub).publish(alert_notice(there))  # type: ignore[arg-type]

    [found] = hub.findings
    assert found["ProductArn"] == product == product_arn(region, account, partition)
    assert found["Id"].startswith(f"arn:{partition}:securityhub:{region}:{account}:")
    assert [(r["Id"], r["Partition"]) for r in found["Resources"]] == [
        (there.function_arn, partition),
        (there.key_arn, partition),
    ]
    assert "arn:aws:" not in str(found)
    assert [e.message for e in schema("asff-finding").iter_errors(found)] == []


def test_each_resource_keeps_the_partition_of_its_own_arn() -> None:
    """A resource ARN is never rewritten to the hub's partition, and the schema refuses unknown ones."""
    found = finding(
        alert_notice(incident()), region="us-gov-east-1", account="123456789012", partition="aws-us-gov"
    )
    assert found is not None
    assert found["ProductArn"].startswith("arn:aws-us-gov:securityhub:us-gov-east-1:")
    assert {r["Partition"] for r in found["Resources"]} == {"aws"}  # the sample's ARNs are commercial
    wrong = found | {"Resources": [found["Resources"][0] | {"Partition": "aws-mars"}]}
    assert list(schema("asff-finding").iter_errors(wrong))


def test_the_test_notice_names_resources_in_the_partition_of_its_region() -> None:
    notice = trial_notice(datetime(2026, 11, 30, 12, tzinfo=UTC), account="123456789012", region="cn-north-1")
    found = finding(notice, region="cn-north-1", account="123456789012", partition="aws-cn")
    assert found is not None
    assert notice.details["functionArn"].startswith("arn:aws-cn:lambda:cn-north-1:")
    assert notice.details["keyArn"].startswith("arn:aws-cn:kms:cn-north-1:")
    assert "arn:aws:" not in str(found)
    assert [e.message for e in schema("asff-finding").iter_errors(found)] == []
