"""An evaluation's reads, in two requests: one consistent Query of the function's partition (the function
item, a link per grant, its incidents), then one BatchGetItem of the grants the links name together with
the state items of the keys and roles they and the function item name. Each item is read by the model of
the adapter that owns it; this module only decides what to read in one go.

A table that `grantwatch migrate` has not yet given links (the layout item says so) also has the
function's grants looked up through the by-function index, as before links existed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from typing import Any

from grantwatch.adapters.functions import (
    FUNCTION_SK,
    DynamoFunctionStore,
    _record_of,
    _state_of,
    function_pk,
)
from grantwatch.adapters.hazards import KEY_SK, ROLE_SK, DynamoHazardStore, key_pk, role_pk
from grantwatch.adapters.store import GRANT_SK, LINK_PREFIX, DynamoGrantStore, grant_pk, state_of
from grantwatch.domain.functions import FunctionState
from grantwatch.domain.hazards import KeyStatus, RoleStatus, role_key, role_of
from grantwatch.ports import FunctionSnapshot, GrantLink, IncidentRecord, ServiceError

BATCH_GET_LIMIT = 100  # keys per BatchGetItem request
UNPROCESSED_ROUNDS = 5  # then the evaluation fails, and its message is delivered again
BACKOFF_SECONDS = 0.05


class DynamoSnapshotReader:
    def __init__(
        self, grants: DynamoGrantStore, functions: DynamoFunctionStore, hazards: DynamoHazardStore
    ) -> None:
        self.grants = grants
        self.functions = functions
        self.hazards = hazards

    def snapshot(self, function_arn: str) -> FunctionSnapshot:
        function: FunctionState | None = None
        open_id: str | None = None
        links: list[GrantLink] = []
        incidents: dict[str, IncidentRecord] = {}
        for raw in self._partition(function_arn):
            sk = raw["sk"]["S"]
            if sk == FUNCTION_SK:
                item = self.functions.functions.from_raw_data(raw)
                function, open_id = _state_of(item), item.openIncidentId
            elif sk.startswith(LINK_PREFIX):
                links.append(self.grants.links.from_raw_data(raw).link())
            elif sk.startswith("INCIDENT#"):
                record = _record_of(self.functions.incidents.from_raw_data(raw))
                incidents[record.incident.incident_id] = record
        grant_ids = [link.grant_id for link in links]
        if not self.grants.links_complete():
            known = set(grant_ids)
            grant_ids += [g for g in self.grants.ids_by_function_index(function_arn) if g not in known]
        key_arns, roles = _candidates(function, links)
        found = self._batch_get(
            [(grant_pk(g), GRANT_SK) for g in grant_ids]
            + [(key_pk(k), KEY_SK) for k in key_arns]
            + [(role_pk(r), ROLE_SK) for r in roles]
        )
        grants = [state_of(self.grants.model.from_raw_data(raw)) for raw in found.get(GRANT_SK, [])]
        keys: dict[str, KeyStatus] = {}
        for raw in found.get(KEY_SK, []):
            status = self.hazards.key_status_of(self.hazards.keys.from_raw_data(raw))
            keys[status.key_arn] = status
        role_states: dict[str, RoleStatus] = {}
        for raw in found.get(ROLE_SK, []):
            ref = raw["pk"]["S"].removeprefix("ROLE#")
            account, name = roles[ref]
            role = self.hazards.roles.from_raw_data(raw)
            role_states[ref] = self.hazards.role_status_of(role, account, name)
        return FunctionSnapshot(
            function_arn=function_arn,
            function=function,
            open_incident_id=open_id,
            grants=grants,
            incidents=incidents,
            keys=keys,
            roles=role_states,
            looked_up_keys=frozenset(key_arns),
            looked_up_roles=frozenset(roles),
        )

    def _partition(self, function_arn: str) -> Iterator[dict[str, Any]]:
        connection = self.functions.functions._get_connection()
        start: Any = None
        while True:
            page = connection.query(
                function_pk(function_arn), consistent_read=True, exclusive_start_key=start
            )
            yield from page.get("Items", [])
            start = page.get("LastEvaluatedKey")
            if not start:
                return

    def _batch_get(self, keys: list[tuple[str, str]]) -> dict[str, list[dict[str, Any]]]:
        """The items found, grouped by sort key (GRANT, KEY, ROLE); unprocessed keys are asked again."""
        connection = self.grants.model._get_connection()
        table = connection.table_name
        found: dict[str, list[dict[str, Any]]] = {}
        wanted = [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in dict.fromkeys(keys)]
        while wanted:
            page, wanted = wanted[:BATCH_GET_LIMIT], wanted[BATCH_GET_LIMIT:]
            for round_ in range(UNPROCESSED_ROUNDS):
                if round_:  # DynamoDB left keys unprocessed (throttled, or 16 MB): back off, as it asks
                    time.sleep(random.uniform(0, BACKOFF_SECONDS * 2**round_))  # noqa: S311 - jitter
                answer = connection.batch_get_item(page, consistent_read=True)  # type: ignore[arg-type]
                for raw in answer.get("Responses", {}).get(table, []):
                    found.setdefault(raw["sk"]["S"], []).append(raw)
                page = answer.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
                if not page:
                    break
            else:
                raise ServiceError(
                    f"DynamoDB left {len(page)} key(s) unprocessed after {UNPROCESSED_ROUNDS} rounds"
                )
        return found


def _candidates(
    function: FunctionState | None, links: Iterable[GrantLink]
) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """The keys (ARNs) and roles (by `role_key`: account and name as seen) the function may depend on:
    those its item and its grants' links name. An evaluation that needs another reads it on its own."""
    keys: dict[str, None] = {}
    roles: dict[str, tuple[str, str]] = {}

    def add_role(account: str, name: str) -> None:
        roles.setdefault(role_key(account, name), (account, name))

    for link in links:
        if link.key_arn:
            keys[link.key_arn] = None
        if link.role:
            account, _, name = link.role.partition("/")
            add_role(account, name)
    if function is not None:
        for key in (function.kms_key_arn, function.depends_on_key):
            if key:
                keys[key] = None
        if ref := role_of(function.role):
            add_role(*ref)
        if function.depends_on_role:
            account, _, name = function.depends_on_role.partition("/")
            add_role(account, name)
    return list(keys), roles
