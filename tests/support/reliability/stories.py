"""Generated scenario streams: a few functions living through phases of deploys, configuration churn, role
changes, retires, revokes, deletions and moves off the key. Within a phase every event falls inside one
minute; phases are two days apart, far beyond the settle window."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from tests.support.scenarios import create_grant, delete_function, retire_grant, revoke_grant, update_function

FUNCTIONS = ("alpha", "beta", "gamma")
ACTIONS = (
    "deploy",
    "churn",
    "role-change",
    "retire",
    "revoke",
    "add-grant",
    "delete",
    "move-off-key",
    "idle",
)
PHASE_SPAN = timedelta(seconds=60)


@dataclass
class _Function:
    name: str
    role: str
    active: list[str] = field(default_factory=list)
    grants: int = 0
    roles: int = 0

    def new_grant(self) -> str:
        self.grants += 1
        label = f"{self.name}-g{self.grants}"
        self.active.append(label)
        return label


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _act(fn: _Function, action: str, start: datetime) -> list[dict[str, Any]]:
    def t(seconds: int) -> str:
        return _at(start + timedelta(seconds=seconds))

    def retire_active(seconds: int, keep: str | None = None) -> list[dict[str, Any]]:
        ended = [g for g in fn.active if g != keep]
        fn.active = [keep] if keep else []
        return [retire_grant(g, t(seconds), by_lambda=True) for g in ended]

    match action:
        case "deploy" | "add-grant":
            events = [update_function(fn.name, t(0), role=fn.role)] if action == "deploy" else []
            return [*events, create_grant(fn.name, fn.new_grant(), t(1), role=fn.role)]
        case "churn" | "role-change":
            if action == "role-change":
                fn.roles += 1
                fn.role = f"{fn.name}-role-v{fn.roles}"
            update = update_function(fn.name, t(0), role=fn.role)
            new = fn.new_grant()
            return [update, create_grant(fn.name, new, t(1), role=fn.role), *retire_active(3, keep=new)]
        case "retire" | "revoke":
            if not fn.active:
                return []
            grant = fn.active.pop()
            return [retire_grant(grant, t(0)) if action == "retire" else revoke_grant(grant, t(0))]
        case "delete":
            return [delete_function(fn.name, t(0)), *retire_active(2)]
        case "move-off-key":
            return [update_function(fn.name, t(0), role=fn.role, key=None), *retire_active(2)]
        case _:
            return []


@st.composite
def stories(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """A scenario as its phases, each the events of that phase in eventTime order."""
    names = draw(st.lists(st.sampled_from(FUNCTIONS), min_size=1, max_size=3, unique=True))
    functions = [_Function(name, f"{name}-role") for name in names]
    phases: list[list[dict[str, Any]]] = []
    for number in range(draw(st.integers(min_value=2, max_value=4))):
        start = datetime(2026, 11, 1, 10, tzinfo=UTC) + timedelta(days=2 * number)
        events: list[dict[str, Any]] = []
        for fn in functions:
            action = draw(st.sampled_from(ACTIONS)) if number else "deploy"
            offset = timedelta(seconds=draw(st.integers(min_value=0, max_value=50)))
            events += _act(fn, action, start + offset)
        phases.append(sorted(events, key=lambda e: str(e["detail"]["eventTime"])))
    return phases
