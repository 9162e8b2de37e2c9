"""The AWS clients of the corridors built on one Settings, all from one botocore session.

A botocore session reads its data (endpoints, partitions, retry rules) and each service's model once; a
second session reads them again. Creating a client from a new session cost about five times as much as
from one that had created another client already, so a corridor creates every client it needs, and each
pynamodb model its DynamoDB client (grantwatch.adapters.tables), from the session `clients_for` gives.
Nothing here imports boto3 (it would add s3transfer and its multiprocessing imports to every cold start).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

if TYPE_CHECKING:
    from botocore.session import Session

    from grantwatch.settings import Settings


class Clients:
    """One botocore session and the clients created from it. A botocore session may not create clients
    in two threads at once (pynamodb gives each thread its own for that reason): this one creates them
    one at a time."""

    def __init__(self, region: str | None = None) -> None:
        self._session: Session | None = None
        self._lock = threading.Lock()
        self.region = region  # the Settings' (AWS_REGION, or --region): every client's unless told
        self.created = 0  # clients created so far

    def client(self, service: str, **options: Any) -> Any:
        """A new client of `service`, created as `botocore.session.Session.create_client` does with
        `options`; the region, when not given, is this one's, else the configured one (AWS_DEFAULT_REGION),
        as boto3's."""
        if self.region and not options.get("region_name"):
            options["region_name"] = self.region
        with self._lock:
            if self._session is None:
                from botocore.session import get_session

                self._session = get_session()
            client = self._session.create_client(service, **options)
            self.created += 1
            return client


_CLIENTS: WeakKeyDictionary[Settings, Clients] = WeakKeyDictionary()
_CLIENTS_LOCK = threading.Lock()


def clients_for(settings: Settings) -> Clients:
    """The clients of whatever is built on `settings` (or on settings equal to it): a Lambda function's
    corridor is built on its one Settings, so its clients share one session."""
    with _CLIENTS_LOCK:
        found = _CLIENTS.get(settings)
        if found is None:
            found = _CLIENTS[settings] = Clients(settings.region)
        return found


def create_client(service: str, clients: Clients | None, **options: Any) -> Any:
    """A client of `service` from `clients`' session; without one, from boto3's default session, as the
    adapters created theirs before (the CLI and the tests build adapters without a corridor)."""
    if clients is not None:
        return clients.client(service, **options)
    import boto3

    return boto3.client(service, **options)  # type: ignore[call-overload]
