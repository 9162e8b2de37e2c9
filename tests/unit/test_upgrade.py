"""A stack deployed from the last release updates in place: CloudFormation refuses to change a resource's
type under the same logical id ("Update of resource type is not permitted"), so a resource that becomes
another type takes a new logical id. tests/support/released-0.1.0-resources.json holds the released
template's logical ids and types."""

from __future__ import annotations

import json

from tests.support.samples import ROOT, TEMPLATE
from tests.support.templates import load_template

RELEASED = json.loads((ROOT / "tests" / "support" / "released-0.1.0-resources.json").read_text())


def test_no_resource_of_the_last_release_changes_its_type_under_the_same_logical_id() -> None:
    now = {name: resource["Type"] for name, resource in load_template(TEMPLATE)["Resources"].items()}
    kept = set(RELEASED["resources"]) & set(now)
    assert len(kept) > 20  # most of the release's resources are still there: the check checks something
    changed = {name: (RELEASED["resources"][name], now[name]) for name in kept}
    assert {name: types for name, types in changed.items() if types[0] != types[1]} == {}
