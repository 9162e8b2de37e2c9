"""The canary's heartbeats: the latest of each path (CreateGrant, RetireGrant, Decrypt) heard from each
account-region, their keys and model here and nowhere else.

Heartbeat items share one partition, ``HEARTBEAT``, sorted by
``ACCOUNT#<account>#REGION#<region>#PATH#<path>``: every heartbeat is one Query. One UpdateItem per canary
event, conditioned on being newer than the stored one, so a redelivered or late event changes nothing. They
are in no index: they carry no `entity`, `keyArn`, `functionArn` or `granteePrincipal`.
"""

from __future__ import annotations

from datetime import datetime

from pynamodb.attributes import UnicodeAttribute
from pynamodb.exceptions import UpdateError
from pynamodb.models import Model

from grantwatch.adapters.tables import error_code
from grantwatch.domain.canary import Heartbeat
from grantwatch.domain.facts import parse_utc_iso, utc_iso
from grantwatch.settings import Settings

HEARTBEAT_PK = "HEARTBEAT"


def heartbeat_sk(account: str, region: str, path: str) -> str:
    return f"ACCOUNT#{account}#REGION#{region}#PATH#{path}"


class HeartbeatItem(Model):
    class Meta:
        table_name = "grantwatch-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    account = UnicodeAttribute()
    region = UnicodeAttribute()
    path = UnicodeAttribute()
    at = UnicodeAttribute()

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(self.account, self.region, self.path, parse_utc_iso(self.at))


class DynamoHeartbeatStore:
    def __init__(self, settings: Settings) -> None:
        from grantwatch.adapters.tables import bind

        self.items = bind(HeartbeatItem, settings)

    def record(self, account: str, region: str, path: str, at: datetime) -> None:
        """Keeps `at` if it is the path's latest heartbeat in the account-region; else changes nothing."""
        items = self.items
        stamp = utc_iso(at)
        item = items(HEARTBEAT_PK, heartbeat_sk(account, region, path))
        try:
            item.update(
                actions=[
                    items.account.set(account),
                    items.region.set(region),
                    items.path.set(path),
                    items.at.set(stamp),
                ],
                condition=items.at.does_not_exist() | (items.at < stamp),
            )
        except UpdateError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise

    def latest(self) -> list[Heartbeat]:
        """Every account-region's latest heartbeat of each path, in key order."""
        return [item.heartbeat() for item in self.items.query(HEARTBEAT_PK, consistent_read=True)]
