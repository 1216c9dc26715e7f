"""ACME cabinet: a minimal FOREIGN host of the `cabinet` plugin contract.

Plain Flask + flask-sqlalchemy + flask-wtf (CSRF) + pluggy. Plugins come from installed
distributions only (entry points of ``cabinet.plugins``); nothing of the stub host is imported.
Its endpoints are its own (``acme.*``), as a real cabinet's would be.

    create_app({...}, instance_path=...)      # config keys also from ACME_* environment variables
    POST /login  login=acme password=acme-password    POST /integrations  key=… enable=y|n
    POST /pbx/<account>/events  {"token": …, "hook": "call_ended", "data": {…}}   (the PBX's push)
"""
from __future__ import annotations

import functools
import secrets
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pluggy
from flask import (Blueprint, Flask, abort, current_app, flash, g, has_request_context, jsonify, redirect,
                   render_template_string, request, session, url_for)
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from acme_contract import ENTRY_POINTS, PROJECT, CallEvent, CallRecord, PbxUser, Spec

db = SQLAlchemy()
csrf = CSRFProtect()
bp = Blueprint("acme", __name__)
ACCOUNTS = {"acme": "acme-password"}  # the one account: its login is its id
PUSH_TOKEN = "acme-pbx-token"


class PluginSwitch(db.Model):
    """A plugin is enabled on an account while its row exists."""
    __tablename__ = "acme_plugin_switch"
    account = db.Column(db.String(64), primary_key=True)
    plugin_key = db.Column(db.String(64), primary_key=True)


class Pbx:
    USERS = (PbxUser("ivanov", "Иван Иванов", "101", "74951110001"),
             PbxUser("petrova", "Мария Петрова", "102", "74951110002"),
             PbxUser("sidorov", "Пётр Сидоров", "103"))
    NUMBERS = ("74951110001", "74951110002")

    def __init__(self):
        self.calls: dict[str, dict] = {}  # placed by make_call

    def users(self, account_id):
        return list(self.USERS) if account_id in ACCOUNTS else []

    def virtual_numbers(self, account_id):
        return list(self.NUMBERS) if account_id in ACCOUNTS else []

    def make_call(self, account_id, user_login, phone):
        call_id = uuid.uuid4().hex
        self.calls[call_id] = dict(account_id=account_id, user=user_login, phone=phone, live=True)
        return call_id

    def hangup(self, account_id, call_id):
        call = self.calls.get(call_id)
        if not call or call["account_id"] != account_id or not call["live"]:
            return False
        call["live"] = False
        return True

    def history(self, account_id, since, until):
        return []

    @classmethod
    def user(cls, login):
        return next((u for u in cls.USERS if u.login == login), None)


def account_required(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        account_id = Host.current_account_id()
        if account_id is None:
            return redirect(url_for("acme.login", next=request.path))
        if kwargs.get("account_id", account_id) != account_id:
            abort(403)
        g.acme_account = account_id
        return view(*args, **kwargs)
    return wrapper


class Host:
    """The services object of the contract (also ``app.extensions["cabinet"]``)."""

    def __init__(self, app: Flask, pm: pluggy.PluginManager):
        self.app, self.pm, self.db, self.pbx = app, pm, db, Pbx()
        self.tables = []
        self.plugins = {}  # key -> (plugin object, PluginInfo)
        for impl in pm.hook.cabinet_plugin_info.get_hookimpls():
            info = impl.function()
            self.plugins[info.key] = (impl.plugin, info)

    account_required = staticmethod(account_required)

    def add_tables(self, metadata):
        self.tables.append(metadata)

    @staticmethod
    def current_account_id():
        return session.get("acme_account") if has_request_context() else None

    def enabled_plugins(self, account_id):
        return frozenset(db.session.execute(db.select(PluginSwitch.plugin_key)
                                            .filter_by(account=account_id)).scalars())

    def set_enabled(self, account_id, key, enabled):
        row = db.session.get(PluginSwitch, (account_id, key))
        if enabled and row is None:
            db.session.add(PluginSwitch(account=account_id, plugin_key=key))
        elif not enabled and row is not None:
            db.session.delete(row)
        db.session.commit()

    def hook(self, account_id, name):
        """A call hook of only the plugins enabled on the account."""
        on = self.enabled_plugins(account_id)
        off = [plugin for key, (plugin, _) in self.plugins.items() if key not in on]
        return self.pm.subset_hook_caller(name, remove_plugins=off)

    def fire(self, account_id, name, data: dict):
        """The PBX's news as ACME's own value types, to the enabled plugins."""
        data = {**data, "account_id": account_id, "user": Pbx.user(data.get("user"))}
        if name == "call_ended":
            data["users_rung"] = tuple(Pbx.user(login) for login in data.get("users_rung", ()))
            data["started_at"] = datetime.fromisoformat(data["started_at"])
            return self.hook(account_id, name)(host=self, record=CallRecord(**data))
        if "transferred_from" in data:
            data["transferred_from"] = Pbx.user(data["transferred_from"])
        data["at"] = datetime.fromisoformat(data["at"]) if data.get("at") else datetime.now(timezone.utc)
        return self.hook(account_id, name)(host=self, event=CallEvent(**data))


def _host() -> Host:
    return current_app.extensions["cabinet"]


def page(body: str, **context):
    return render_template_string(
        '{% extends "cabinet/base.html" %}{% block content %}' + body + "{% endblock %}", **context)


@bp.route("/")
@account_required
def home():
    return page("<h1>Кабинет {{ g.acme_account }}</h1>")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        name = request.form.get("login", "")
        if name in ACCOUNTS and secrets.compare_digest(ACCOUNTS[name], request.form.get("password", "")):
            session.clear()
            session["acme_account"] = name
            return redirect(url_for("acme.home"))
        flash("Неверный логин или пароль.", "danger")
    return page('<form method="post"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}">'
                '<input name="login"><input name="password" type="password"><button>Войти</button></form>')


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("acme.login"))


@bp.route("/integrations", methods=["GET", "POST"])
@account_required
def integrations():
    host = _host()
    if request.method == "POST":
        if request.form.get("key") not in host.plugins:
            abort(400)
        host.set_enabled(g.acme_account, request.form["key"], request.form.get("enable") == "y")
        return redirect(url_for("acme.integrations"))
    return page("""{% for key, (plugin, info) in host.plugins.items() %}<section><h2>{{ info.title }}</h2>
      <p>{{ info.description }}</p><form method="post"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
      <input type="hidden" name="key" value="{{ key }}">{% if key in on %}<input type="hidden" name="enable" value="n">
      <button>Отключить</button>{% if info.settings_endpoint %} <a href="{{ url_for(info.settings_endpoint) }}">Настройки</a>
      {% endif %}{% else %}<input type="hidden" name="enable" value="y"><button>Подключить</button>{% endif %}</form>
      </section>{% endfor %}""", host=host, on=host.enabled_plugins(g.acme_account))


@bp.post("/pbx/<account_id>/events")
def pbx_events(account_id):
    body = request.get_json(silent=True) or {}
    if account_id not in ACCOUNTS or body.get("token") != PUSH_TOKEN:
        return jsonify(error="unauthorized"), 401
    if body.get("hook") not in ("call_started", "call_answered", "call_transferred", "call_ended",
                                "route_request"):
        return jsonify(error="unknown hook"), 400
    answer = _host().fire(account_id, body["hook"], body.get("data") or {})
    if body["hook"] != "route_request" or answer is None:
        return jsonify(ok=True)
    return jsonify(ok=True, route={"user_login": answer.user_login, "contact_name": answer.contact_name})


def not_found(_exc):
    return page("<h1>ACME: страницы нет</h1>"), 404


def create_app(config: dict | None = None, instance_path: str | None = None) -> Flask:
    app = Flask(__name__, instance_path=instance_path)
    app.config.update(SECRET_KEY=secrets.token_hex(16),
                      SQLALCHEMY_DATABASE_URI=f"sqlite:///{Path(app.instance_path) / 'acme.sqlite3'}")
    app.config.from_prefixed_env("ACME")
    app.config.update(config or {})
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    db.init_app(app)
    csrf.init_app(app)
    csrf.exempt(pbx_events)
    app.register_blueprint(bp)
    app.register_error_handler(404, not_found)

    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(Spec)
    pm.load_setuptools_entrypoints(ENTRY_POINTS)
    pm.check_pending()
    host = app.extensions["cabinet"] = Host(app, pm)
    pm.hook.cabinet_init_app(app=app, host=host)
    with app.app_context():
        db.create_all()
        for metadata in host.tables:
            metadata.create_all(db.engine)
    return app
