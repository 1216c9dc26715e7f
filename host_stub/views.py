"""The cabinet shell: login, the account page and the plugin list."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, session, url_for

from .host import account_required
from .forms import LoginForm, PluginToggleForm

bp = Blueprint("cabinet", __name__)


def _host():
    return current_app.extensions["cabinet"]


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        account = _host().account(form.login.data.strip())
        if account is not None and account.check_password(form.password.data):
            session.clear()
            session["account"] = account.name
            target = request.args.get("next", "")
            # Only local paths: an open redirect would make the login page a phishing tool.
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("cabinet.index")
            return redirect(target)
        form.password.errors.append("Неверный логин или пароль")
    return render_template("cabinet/login.html", form=form), 200 if not form.errors else 401


@bp.post("/logout")
def logout():
    session.clear()
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
    return render_template("cabinet/index.html", account=account, push_url=push_url)


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
