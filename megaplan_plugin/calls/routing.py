"""«Переадресация на персонального менеджера»: whom the PBX should ring for an incoming number.

The PBX holds the caller while it waits, so answers come from local data only (CONTRACT §2):
memory, then the table of known clients (filled by every synced call and by ``callRoute``),
then the local index of Megaplan clients by phone. Nothing here waits on the network or
commits; a number none of them knows is asked of Megaplan (``callRoute``) in the background,
so that the next call from it routes.
"""
from __future__ import annotations

import logging
import threading
import time

from cachetools import TLRUCache, TTLCache
from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import select

from megaplan_plugin.calls import client_index, contractors
from megaplan_plugin.delivery import queues
from megaplan_plugin.cabinet import Route
from megaplan_plugin.megaplan import unconfirmed
from megaplan_plugin.models import KnownClient, MegaplanEmployee

log = logging.getLogger(__name__)
HIT_SECONDS = 300.0     # a client's manager rarely changes within minutes
MISS_SECONDS = 30.0     # an unknown number may become a client with the next synced call
USERS_SECONDS = 60.0
MAX_ENTRIES = 200_000
_NOBODY = object()


class RouteCache:
    """Per app: (account, phone) → Route or nobody; account → {extension: PBX login}.

    Least recently used entries go first when full, never the whole cache at once.
    """

    def __init__(self):
        self._routes = TLRUCache(maxsize=MAX_ENTRIES, timer=time.monotonic,
                                 ttu=lambda _key, value, now: now + (MISS_SECONDS if value is _NOBODY
                                                                     else HIT_SECONDS))
        self._logins = TTLCache(maxsize=MAX_ENTRIES, ttl=USERS_SECONDS, timer=time.monotonic)
        self._lock = threading.Lock()

    def get(self, account_id: str, phone: str):
        with self._lock:
            return self._routes.get((account_id, phone))

    def put(self, account_id: str, phone: str, route: Route | None) -> None:
        with self._lock:
            self._routes[(account_id, phone)] = route or _NOBODY

    def forget(self, account_id: str) -> None:
        with self._lock:
            for key in [k for k in self._routes if k[0] == account_id]:
                self._routes.pop(key, None)
            self._logins.pop(account_id, None)

    def logins(self, host, account_id: str) -> dict[str, str]:
        with self._lock:
            hit = self._logins.get(account_id)
        if hit is not None:
            return hit
        by_ext = {u.ext: u.login for u in host.pbx.users(account_id) if u.ext}
        with self._lock:
            self._logins[account_id] = by_ext
        return by_ext


def route_for(host, event) -> Route | None:
    state = current_app.extensions["megaplan"]
    settings = state.hook_settings.get(host.db, event.account_id)
    if not settings.route_to_manager or not settings.wants(event.virtual_number):
        return None
    cached = state.routes.get(event.account_id, event.client_phone)
    if cached is not None:
        return None if cached is _NOBODY else cached
    route, known = _from_table(host, settings.credential_id, event.account_id, event.client_phone)
    if not known:
        route, known = _from_index(host, settings.credential_id, event.account_id, event.client_phone)
    if known:
        state.routes.put(event.account_id, event.client_phone, route)
    else:
        _refresh_later(event.account_id, event.client_phone)
    return route


def _from_table(host, credential_id: int, account_id: str, phone: str) -> tuple[Route | None, bool]:
    row = host.db.session.execute(
        select(KnownClient.contractor_id, KnownClient.name, MegaplanEmployee.internal_number)
        .outerjoin(MegaplanEmployee, (MegaplanEmployee.credential_id == credential_id)
                   & (MegaplanEmployee.megaplan_id == KnownClient.responsible_id))
        .where(KnownClient.account_id == account_id, KnownClient.phone == phone)).one_or_none()
    if row is None:
        return None, False
    return _route(host, account_id, row.internal_number, row.name if row.contractor_id else None), True


def _route(host, account_id: str, internal_number: str | None, name: str | None) -> Route | None:
    login = current_app.extensions["megaplan"].routes.logins(host, account_id).get(internal_number or "")
    return Route(login, name) if login else None


def _from_index(host, credential_id: int, account_id: str, phone: str) -> tuple[Route | None, bool]:
    match = client_index.lookup(credential_id, phone, session=host.db.session)
    if match is None:
        return None, False
    internal_number = host.db.session.execute(select(MegaplanEmployee.internal_number).where(
        MegaplanEmployee.credential_id == credential_id,
        MegaplanEmployee.megaplan_id == match.responsible_id)).scalar_one_or_none() \
        if match.responsible_id else None
    return _route(host, account_id, internal_number, match.name or None), True


def remember_route(host, credential_id: int, account_id: str, phone: str, answer: dict):
    """Keep what callRoute said in the known-clients table; returns (internal number, client)."""
    contractor = next((u for u in answer.get("users") or [] if isinstance(u, dict)
                       and u.get("contentType") in ("ContractorHuman", "ContractorCompany")), None)
    employee = next(iter(unconfirmed.route_employees(answer.get("employees"))), None)
    internal_number = None
    if isinstance(employee, dict):
        internal_number = employee.get(unconfirmed.CALL_ROUTE_INTERNAL_NUMBER_FIELD)
        if not internal_number and employee.get("id"):
            internal_number = host.db.session.execute(select(MegaplanEmployee.internal_number).where(
                MegaplanEmployee.credential_id == credential_id,
                MegaplanEmployee.megaplan_id == str(employee["id"]))).scalar_one_or_none()
        if contractor is not None and not contractors.responsible_of(contractor):
            contractor = {**contractor, "responsibles": [{"contentType": "Employee", "id": str(employee["id"])}]}
    contractors.remember(account_id, phone, contractor)
    return (str(internal_number) if internal_number else None), contractor


def _refresh_later(account_id: str, phone: str) -> None:
    try:
        queues.enqueue_route_refresh(account_id, phone)
    except RedisError:
        pass  # the next synced call of this number fills the table
