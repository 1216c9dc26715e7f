"""The plugin's pages inside the cabinet: the settings page (``/plugins/megaplan/``)."""
from __future__ import annotations

from flask import Blueprint, current_app, g, render_template

bp = Blueprint("megaplan", __name__, url_prefix="/plugins/megaplan",
               template_folder="templates", static_folder="static",
               static_url_path="/static")


def _host():
    return current_app.extensions["cabinet"]


@bp.before_request
def require_account():
    """Every page here belongs to the logged-in account, and only when the plugin is on."""
    host = _host()
    account_id = host.current_account_id()
    if account_id is None:
        return host.account_required(lambda: None)()
    if "megaplan" not in host.enabled_plugins(account_id):
        return render_template("megaplan/disabled.html"), 404
    g.account_id = account_id


@bp.route("/")
def settings():
    return render_template("megaplan/settings.html")
