"""What a handler's first invocation creates besides its corridor: the AWS clients the corridor calls on.

A corridor may create its clients when it is built or on first use; either way the first invocation pays
for the ones it calls. `create_clients` creates every client a corridor holds (each pynamodb model's
DynamoDB client, each adapter's botocore client), which is the most a first invocation can create, and
says how many distinct clients that was. Imported by the cold-start measurement after its clock started
and only once the corridor is built, so it adds nothing that the handler would not import itself.
"""

from __future__ import annotations

import sys
from functools import cached_property
from typing import Any


def create_clients(corridor: object) -> int:
    """Create every AWS client reachable from `corridor`; the number of distinct clients."""
    from botocore.client import BaseClient

    # only if the corridor imported it: the floor's cold start must not pay for pynamodb here
    model: Any = getattr(sys.modules.get("pynamodb.models"), "Model", None)
    clients: dict[int, Any] = {}
    seen: set[int] = set()

    def visit(value: object) -> None:
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, BaseClient):
            clients[id(value)] = value
        elif isinstance(value, type):
            bound: Any = value
            if model is not None and issubclass(bound, model):
                visit(bound._get_connection().connection.client)
        elif isinstance(value, list | tuple | frozenset | set):
            for item in value:
                visit(item)
        elif type(value).__module__.startswith("grantwatch."):
            if isinstance(getattr(type(value), "client", None), property | cached_property):
                visit(value.client)  # type: ignore[attr-defined]
            for item in _attributes(value):
                visit(item)

    visit(corridor)
    return len(clients)


def _attributes(value: object) -> list[object]:
    found = list(getattr(value, "__dict__", {}).values())
    for cls in type(value).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if hasattr(value, name):
                found.append(getattr(value, name))
    return found
