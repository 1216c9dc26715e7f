"""«Переадресация на персонального менеджера»: whom the PBX should ring for an incoming number.

The PBX holds the caller while it waits, so answers come from memory, then from the local
table of known clients (filled by every synced call and by ``callRoute``), and only then from
Megaplan under a hard deadline well inside the host's. What could not be had in time is
fetched in the background so that the next call from that number routes.
"""
from __future__ import annotations

import logging
import threading
import time

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import select

from . import contractors
from .delivery import queues
from .cabinet import Route
from .megaplan import MegaplanError, unconfirmed
from .models import Credential, KnownClient, MegaplanEmployee

log = logging.getLogger(__name__)
HIT_SECONDS = 300.0     # a client's manager rarely changes within minutes
MISS_SECONDS = 30.0     # an unknown number may become a client with the next synced call
USERS_SECONDS = 60.0
MAX_ENTRIES = 200_000
# Share of the host's route deadline we may spend waiting for Megaplan on a cache miss.
MEGAPLAN_SHARE = 0.4
_NOBODY = object()


class RouteCache:
    """Per app: (account, phone) → Route or nobody; account → {extension: PBX login}."""

    def __init__(self):
        self._routes: dict[tuple[str, str], tuple[float, object]] = {}
        self._logins: dict[str, tuple[float, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def get(self, account_id: str, phone: str):
        hit = self._routes.get((account_id, phone))
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, account_id: str, phone: str, route: Route | None) -> None:
        ttl = HIT_SECONDS if route else MISS_SECONDS
        with self._lock:
            if len(self._routes) >= MAX_ENTRIES:
                self._routes.clear()
            self._routes[(account_id, phone)] = (time.monotonic() + ttl, route or _NOBODY)

    def forget(self, account_id: str) -> None:
        with self._lock:
            for key in [k for k in self._routes if k[0] == account_id]:
                del self._routes[key]
            self._logins.pop(account_id, None)

    def logins(self, host, account_id: str) -> dict[str, str]:
        hit = self._logins.get(account_id)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        by_ext = {u.ext: u.login for u in host.pbx.users(account_id) if u.ext}
        with self._lock:
            self._logins[account_id] = (time.monotonic() + USERS_SECONDS, by_ext)
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
        route, known = _from_megaplan(host, settings.credential_id, event.account_id, event.client_phone)
    if known:
        state.routes.put(event.account_id, event.client_phone, route)
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


def _from_megaplan(host, credential_id: int, account_id: str, phone: str) -> tuple[Route | None, bool]:
    from .connection import client_for
    budget = current_app.config.get("CABINET_ROUTE_TIMEOUT_MS", 1000) / 1000 * MEGAPLAN_SHARE
    credential = host.db.session.get(Credential, credential_id)
    try:
        answer = client_for(credential, timeout=(budget / 2, budget)).call_route(phone)
    except MegaplanError as exc:
        log.info("megaplan callRoute for %s not had in time (%s); refreshing in background", phone, exc)
        _refresh_later(account_id, phone)
        return None, False
    internal_number, contractor = remember_route(host, credential_id, account_id, phone, answer)
    host.db.session.commit()
    return _route(host, account_id, internal_number, contractors.display_name(contractor)
                  if contractor else None), True


def remember_route(host, credential_id: int, account_id: str, phone: str, answer: dict):
    """Keep what callRoute said in the known-clients table; returns (internal number, client)."""
    contractor = next((u for u in answer.get("users") or [] if isinstance(u, dict)
                       and u.get("contentType") in ("ContractorHuman", "ContractorCompany")), None)
    employee = next(iter(answer.get("employees") or []), None)
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
