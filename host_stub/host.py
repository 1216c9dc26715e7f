"""The host services object handed to plugins (CONTRACT §3), and hook dispatch per account."""
from __future__ import annotations

import functools
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout

import pluggy
from flask import Flask, abort, g, redirect, request, session, url_for

from .db import db
from .models import Account, EnabledPlugin
from .pbx import Pbx
from .types import CallEvent, PluginInfo, Route

CALL_HOOKS = ("call_started", "call_answered", "call_transferred", "call_ended", "call_rated", "route_request")
# How long a per-account list of enabled plugins may be served from memory; toggling in this
# process clears it at once, other processes see the change within this time.
ENABLED_CACHE_SECONDS = 5.0


# What an account's name can be: the stub issues no other (and the PBX push path checks it).
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

class Host:
    def __init__(self, app: Flask, pm: pluggy.PluginManager):
        self.app = app
        self.pm = pm
        self.db = db
        self.pbx = Pbx(self)
        self._enabled: dict[str, tuple[float, frozenset[str]]] = {}
        self._callers: dict[tuple[str, frozenset], object] = {}
        self._lock = threading.Lock()
        self._route_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="route")
        self.plugin_tables: list = []
        self.plugins: dict[str, tuple[object, PluginInfo]] = {}
        for impl in pm.hook.cabinet_plugin_info.get_hookimpls():
            info = impl.function()
            self.plugins[info.key] = (impl.plugin, info)

    def add_tables(self, metadata) -> None:
        """A plugin's own SQLAlchemy ``MetaData``; created by the host with its own tables."""
        self.plugin_tables.append(metadata)

    # -- accounts -----------------------------------------------------------------------------
    @staticmethod
    def current_account_id() -> str | None:
        """The logged-in account while its session is current: logout ends older sessions."""
        account_id = session.get("account")
        if account_id is None:
            return None
        key = (account_id, session.get("epoch"))
        checked = g.get("_cabinet_session")
        if checked is not None and checked[0] == key:
            return checked[1]
        epoch = db.session.execute(db.select(Account.session_epoch)
                                   .filter_by(name=account_id)).scalar_one_or_none()
        valid = epoch is not None and key[1] == epoch
        if not valid:
            session.clear()
        g._cabinet_session = (key, account_id if valid else None)
        return account_id if valid else None

    @staticmethod
    def account_required(view):
        return account_required(view)

    def account(self, account_id: str) -> Account | None:
        # A name the cabinet could never have issued (a NUL, a lone surrogate: PostgreSQL and
        # the driver refuse those) is no account, not a database error.
        if not ACCOUNT_NAME.fullmatch(account_id or ""):
            return None
        return db.session.execute(
            db.select(Account).filter_by(name=account_id)).scalar_one_or_none()

    # -- plugins per account ------------------------------------------------------------------
    def enabled_plugins(self, account_id: str) -> frozenset[str]:
        now = time.monotonic()
        cached = self._enabled.get(account_id)
        if cached and cached[0] > now:
            return cached[1]
        keys = frozenset(db.session.execute(
            db.select(EnabledPlugin.plugin_key).join(Account)
            .where(Account.name == account_id)).scalars())
        self._enabled[account_id] = (now + ENABLED_CACHE_SECONDS, keys)
        return keys

    def set_plugin_enabled(self, account_id: str, key: str, enabled: bool) -> None:
        account = self.account(account_id)
        row = db.session.execute(db.select(EnabledPlugin).filter_by(
            account_id=account.id, plugin_key=key)).scalar_one_or_none()
        if enabled and row is None:
            db.session.add(EnabledPlugin(account_id=account.id, plugin_key=key))
        elif not enabled and row is not None:
            db.session.delete(row)
        db.session.commit()
        self._enabled.pop(account_id, None)

    def _hook_caller(self, account_id: str, name: str):
        """The hook restricted to the plugins enabled on the account (never another tenant's)."""
        disabled = frozenset(key for key in self.plugins if key not in self.enabled_plugins(account_id))
        cache_key = (name, disabled)
        caller = self._callers.get(cache_key)
        if caller is None:
            remove = [self.plugins[key][0] for key in disabled]
            caller = self.pm.subset_hook_caller(name, remove_plugins=remove)
            with self._lock:
                self._callers[cache_key] = caller
        return caller

    def call_hook(self, account_id: str, name: str, **kwargs):
        assert name in CALL_HOOKS
        return self._hook_caller(account_id, name)(host=self, **kwargs)

    def route(self, account_id: str, event: CallEvent) -> Route | None:
        """Ask the plugins whom to ring, waiting at most ``CABINET_ROUTE_TIMEOUT_MS``."""
        caller = self._hook_caller(account_id, "route_request")
        if not caller.get_hookimpls():
            return None
        app = self.app

        def ask():
            with app.app_context():
                return caller(host=self, event=event)

        future = self._route_pool.submit(ask)
        try:
            return future.result(timeout=app.config["CABINET_ROUTE_TIMEOUT_MS"] / 1000)
        except FutureTimeout:
            app.logger.warning("route_request for %s call %s timed out", account_id, event.call_id)
            return None


def account_required(view):
    """Redirect to login; 403 when a view's ``account_id`` is not the logged-in account."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        account_id = Host.current_account_id()
        if account_id is None:
            # full_path ends in «?» when there is no query string: the page's own path then
            where = request.full_path if request.query_string else request.path
            return redirect(url_for("cabinet.login", next=where))
        if kwargs.get("account_id", account_id) != account_id:
            abort(403)
        g.account_id = account_id
        return view(*args, **kwargs)
    return wrapper
