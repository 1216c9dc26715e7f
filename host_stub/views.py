"""The cabinet shell: login, the account page and the plugin list."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from werkzeug.urls import iri_to_uri

from .db import db
from .forms import LoginForm, PluginToggleForm
from .host import account_required
from .models import Account, verify_password
from .ratelimit import minutes

bp = Blueprint("cabinet", __name__)


def _host():
    return current_app.extensions["cabinet"]


# Browsers drop tabs and newlines anywhere in a URL and trim C0 controls and spaces around it.
_URL_JUNK = re.compile(r"[\x00-\x1f\x7f]")


def safe_next(target: str | None) -> str | None:
    r"""``target`` when it is a path on this host, else None.

    Only local paths: an open redirect would make the login page a phishing tool. The check
    runs on what a browser would see: ``/\t/evil.com`` and ``/\evil.com`` are ``//evil.com``.
    """
    cleaned = _URL_JUNK.sub("", target or "").strip(" ")
    if not cleaned or "\\" in cleaned:
        return None
    try:
        parts = urlsplit(cleaned)
    except ValueError:
        return None
    if parts.scheme or parts.netloc or not cleaned.startswith("/") or cleaned.startswith("//"):
        return None
    return iri_to_uri(cleaned)


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    status, refusal = 200, None
    if form.validate_on_submit():
        name = form.login.data.strip()
        limiter = current_app.extensions["cabinet_ratelimit"]
        address = request.remote_addr
        wait = limiter.blocked_for(name, address)
        if wait:
            # Even the right password: the counter must not become a password oracle.
            refusal = f"Слишком много попыток входа. Попробуйте через {minutes(wait)}."
            status = 429
        else:
            account = _host().account(name)
            if verify_password(account, form.password.data):
                limiter.succeeded(name)
                session.clear()
                session["account"] = account.name
                session["epoch"] = account.session_epoch
                return redirect(safe_next(request.args.get("next")) or url_for("cabinet.index"))
            limiter.failed(name, address)
            form.password.errors.append("Неверный логин или пароль")
            status = 401
    elif form.errors:
        status = 401
    response = current_app.make_response(
        (render_template("cabinet/login.html", form=form, refusal=refusal), status))
    if status == 429:
        response.headers["Retry-After"] = str(wait)
    return response


@bp.post("/logout")
def logout():
    account_id = _host().current_account_id()
    if account_id is not None:
        # Every session cookie issued for the account before this moment stops working.
        db.session.execute(db.update(Account).where(Account.name == account_id)
                           .values(session_epoch=Account.session_epoch + 1))
        db.session.commit()
    session.clear()
    flash("Вы вышли из кабинета.", "info")
    return redirect(url_for("cabinet.login"))


@bp.route("/")
@account_required
def index():
    return redirect(url_for("cabinet.account", account_id=g.account_id))


@bp.route("/accounts/<account_id>/")
@account_required
def account(account_id: str):
    account = _host().account(account_id)
    push_url = url_for("pbx.push", account_id=account.name, _external=True)
    pbx = _host().pbx  # what the PBX side holds: the token it pushes with, employees, numbers
    return render_template("cabinet/index.html", account=account, push_url=push_url,
                           crm_token=pbx.store.crm_token(account.name), users=pbx.users(account.name),
                           numbers=pbx.virtual_numbers(account.name))


@bp.route("/plugins/", methods=["GET", "POST"])
@account_required
def plugins():
    host = _host()
    form = PluginToggleForm()
    if request.method == "POST":
        if not form.validate_on_submit() or form.key.data not in host.plugins:
            abort(400)
        host.set_plugin_enabled(g.account_id, form.key.data, form.enable.data)
        title = host.plugins[form.key.data][1].title
        flash(f"«{title}» {'подключена' if form.enable.data else 'отключена'}.", "success")
        return redirect(url_for("cabinet.plugins"))
    enabled = host.enabled_plugins(g.account_id)
    items = [(info, key in enabled) for key, (_, info) in sorted(host.plugins.items())]
    return render_template("cabinet/plugins.html", items=items, form=form)
