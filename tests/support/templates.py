"""CloudFormation templates read once per test process: parsing template.yaml with the YAML loader that knows
CloudFormation's short forms takes about 0.3 s, and dozens of tests read it. Each call still returns a copy
of its own, which the test may change, and a file whose bytes changed is parsed again."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

from grantwatch import template


@cache
def _parsed(path: Path, content: bytes) -> dict[str, Any]:
    return template.load_template(path)


def load_template(path: Path) -> dict[str, Any]:
    """grantwatch.template.load_template's document, from the one parse of the file as it is now."""
    path = path.resolve()
    return copy.deepcopy(_parsed(path, path.read_bytes()))
