"""«Переадресация на персонального менеджера»: whom the PBX should ring for an incoming number.

The PBX holds the caller while it waits, so answers come from local data only (CONTRACT §2):
memory, then the local index of Megaplan clients by phone (filled on activation, by every
synced call and by ``callRoute``) with the employees and open deals (``who_answers.py`` decides
whom to ring: the deal's manager, the client's responsible, or a fallback when they are away).
A route is kept in memory for ``HIT_SECONDS``, so an absence that begins meanwhile is seen
within that time. Nothing here waits on the network or commits; a number the
index does not know is asked of Megaplan (``callRoute``) in the background, so that the next
call from it routes.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import datetime, timezone

from cachetools import TLRUCache, TTLCache
from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from megaplan_plugin.calls import clients, who_answers
from megaplan_plugin.delivery import queues
from megaplan_plugin.cabinet import Route
from megaplan_plugin.megaplan import unconfirmed
from megaplan_plugin import phones
from megaplan_plugin.engines import own_engine
from megaplan_plugin.models import MegaplanEmployee

log = logging.getLogger(__name__)
HIT_SECONDS = 300.0     # a client's manager rarely changes within minutes
MISS_SECONDS = 30.0     # an unknown number may become a client with the next synced call
USERS_SECONDS = 60.0
MAX_ENTRIES = 200_000
POOL_SIZE = 4             # routing's own connections (and as many more at a peak)
POOL_WAIT_SECONDS = 0.25  # a quarter of the host's default deadline
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
        self._readers: dict = {}

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

    def reader(self, engine):
        """Routing's own engine on the host's database: a small pool of its own, so that a
        host whose pool is taken (every request holding a connection while it waits for the
        route) cannot starve routing, and a checkout that would wait longer than
        ``POOL_WAIT_SECONDS`` gives up. Its connections are opened through the host's engine
        (then detached from the host's pool), so the host's connect arguments, SSL and
        connect events carry over. Autocommit: no BEGIN/ROLLBACK round trips. An in-memory
        SQLite database exists only on the host's own connection: that one is used.
        """
        with self._lock:
            reader = self._readers.get(engine)
            if reader is None:
                reader = own_engine(engine, size=POOL_SIZE, overflow=POOL_SIZE, wait=POOL_WAIT_SECONDS,
                                    isolation_level="AUTOCOMMIT")
                self._readers[engine] = reader
            return reader

    def dispose(self) -> None:
        """Close routing's own connections (an app being torn down, e.g. in tests)."""
        with self._lock:
            readers, self._readers = self._readers, {}
        for engine, reader in readers.items():
            if reader is not engine:
                reader.dispose()

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
    reader = state.routes.reader(host.db.engine)
    try:
        settings = state.hook_settings.get(reader, event.account_id)
        if not settings.route_to_manager or not settings.wants(event.virtual_number):
            return None
        cached = state.routes.get(event.account_id, event.client_phone)
        if cached is not None:
            return None if cached is _NOBODY else cached
        with reader.connect() as conn:  # autocommit: one round trip, no BEGIN/ROLLBACK
            found = who_answers.ask(conn, settings.credential_id, event.client_phone, settings.route,
                                    datetime.now(timezone.utc))
    except (PoolTimeout, OperationalError, InterfaceError) as exc:
        # Every routing connection busy, or the database away: the PBX gets "no opinion" now
        # rather than an answer after its caller hung up.
        log.warning("megaplan: no route for %s call %s: %s", event.account_id, event.call_id,
                    type(exc).__name__)
        return None
    if found is None:
        state.route_refresher.add(event.account_id, event.client_phone)
        return None
    login = state.routes.logins(host, event.account_id).get(found.internal_number or "")
    route = Route(login, found.client_name) if login else None
    state.routes.put(event.account_id, event.client_phone, route)
    return route


def remember_route(session, credential_id: int, phone: str, answer: dict):
    """Keep what callRoute said in the index; returns (internal number, client)."""
    contractor = next((u for u in answer.get("users") or [] if isinstance(u, dict)
                       and u.get("contentType") in ("ContractorHuman", "ContractorCompany")), None)
    employee = next(iter(unconfirmed.route_employees(answer.get("employees"))), None)
    internal_number = None
    if isinstance(employee, dict):
        internal_number = employee.get(unconfirmed.CALL_ROUTE_INTERNAL_NUMBER_FIELD)
        if not internal_number and employee.get("id"):
            internal_number = session.execute(select(MegaplanEmployee.internal_number).where(
                MegaplanEmployee.credential_id == credential_id,
                MegaplanEmployee.megaplan_id == str(employee["id"]))).scalar_one_or_none()
        if contractor is not None and not contractor.get("responsibles"):
            contractor = {**contractor, "responsibles": [{"contentType": "Employee", "id": str(employee["id"])}]}
    national = phones.national(phone)
    if contractor is not None and contractor.get("id") and national:
        clients.remember(session, credential_id, contractor, [national])
    return (str(internal_number) if internal_number else None), contractor


class RouteRefresher:
    """Numbers nothing local knows, handed to the queue by a thread of their own: Redis is
    network too, and the PBX holds the caller while routing runs. When Redis is down or the
    backlog is full the number is dropped; the next synced call of it fills the table."""

    BACKLOG = 10_000

    def __init__(self):
        self._pending: queue.Queue = queue.Queue(self.BACKLOG)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._app = None

    def add(self, account_id: str, phone: str) -> None:
        try:
            self._pending.put_nowait((account_id, phone))
        except queue.Full:
            return
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._app = current_app._get_current_object()
                    self._thread = threading.Thread(target=self._run, name="megaplan-route-refresh",
                                                    daemon=True)
                    self._thread.start()

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every number handed in so far is on the queue (run_jobs in the tests)."""
        deadline = time.monotonic() + timeout
        while self._pending.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    def _run(self) -> None:
        while True:
            account_id, phone = self._pending.get()
            try:
                with self._app.app_context():
                    queues.enqueue_route_refresh(account_id, phone)
            except RedisError:
                pass
            except Exception:  # noqa: BLE001 - the thread must outlive one bad number
                log.exception("could not queue the route refresh of %s", phone)
            finally:
                self._pending.task_done()
