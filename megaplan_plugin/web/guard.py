"""The door of every plugin page: the logged-in account's, and only while the plugin is
connected for it (``bp.before_request(require_account)`` on each blueprint)."""
from __future__ import annotations

from flask import g, render_template, url_for
from werkzeug.routing import BuildError

from megaplan_plugin import cabinet


def require_account():
    """Every page here belongs to the logged-in account, and only when the plugin is on."""
    host = cabinet.host()
    account_id = host.current_account_id()
    if account_id is None:
        return host.account_required(lambda: None)()
    enabled = getattr(host, "enabled_plugins", None)  # a host without it routes only enabled ones
    if enabled is not None and "megaplan" not in enabled(account_id):
        return render_template("megaplan/disabled.html", plugins_url=_host_page("cabinet.plugins")), 404
    g.account_id = account_id
    return None


def _host_page(endpoint: str) -> str | None:
    """A link into the host's own pages when this host has that page (the stub's names)."""
    try:
        return url_for(endpoint)
    except BuildError:
        return None
