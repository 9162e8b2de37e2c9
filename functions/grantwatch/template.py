"""Read the table definition from template.yaml, the single source of truth for the table's schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

TABLE_LOGICAL_ID = "GrantsTable"
TEMPLATE_NAME = "template.yaml"


class _CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short forms (!Ref, !Sub, !GetAtt …) as their long forms."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        scalar = loader.construct_scalar(node)
        value = scalar.split(".", 1) if tag_suffix == "GetAtt" else scalar
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


# The copy of template.yaml a built package carries (setup.py puts it there); a checkout has none.
PACKAGED_TEMPLATE = Path(__file__).resolve().with_name(TEMPLATE_NAME)


def find_template(start: Path | None = None) -> Path:
    """template.yaml in `start` or the nearest folder above it, else beside this package's checkout, else
    the copy an installed package carries."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents, Path(__file__).resolve().parents[2]):
        candidate = folder / TEMPLATE_NAME
        if candidate.is_file():
            return candidate
    if PACKAGED_TEMPLATE.is_file():
        return PACKAGED_TEMPLATE
    raise FileNotFoundError(f"no {TEMPLATE_NAME} in {here} or above it; pass --template")


def load_template(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as stream:
        document = yaml.load(stream, Loader=_CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(document, dict) or "Resources" not in document:
        raise ValueError(f"{path} is not a CloudFormation template")
    return document


def table_properties(template: dict[str, Any], logical_id: str = TABLE_LOGICAL_ID) -> dict[str, Any]:
    resource = template["Resources"].get(logical_id)
    if not resource or resource.get("Type") != "AWS::DynamoDB::Table":
        raise ValueError(f"template has no AWS::DynamoDB::Table named {logical_id}")
    properties: dict[str, Any] = resource["Properties"]
    return properties


def create_table_request(properties: dict[str, Any], table_name: str) -> dict[str, Any]:
    """The CreateTable request for a table with the template's keys and indexes, under another name."""
    request: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": properties.get("BillingMode", "PAY_PER_REQUEST"),
    }
    indexes = properties.get("GlobalSecondaryIndexes")
    if indexes:
        request["GlobalSecondaryIndexes"] = [
            {"IndexName": i["IndexName"], "KeySchema": i["KeySchema"], "Projection": i["Projection"]}
            for i in indexes
        ]
    return request
