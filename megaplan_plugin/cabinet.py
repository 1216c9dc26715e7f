"""What the plugin needs of the cabinet's contract, without importing the host.

The wheel ships without ``host_stub``: a real cabinet has its own implementation of the
contract. So the plugin marks its hooks with the project name alone and answers with values
that have the same fields as the host's ``PluginInfo`` and ``Route`` (the host reads attributes).
"""
from __future__ import annotations

from dataclasses import dataclass

import pluggy
from flask import current_app

hookimpl = pluggy.HookimplMarker("cabinet")


@dataclass(frozen=True)
class PluginInfo:
    key: str
    title: str
    description: str
    settings_endpoint: str | None = None


@dataclass(frozen=True)
class Route:
    user_login: str
    contact_name: str | None = None


def host():
    """The cabinet's host services object of the current app (CONTRACT §3)."""
    return current_app.extensions["cabinet"]


def db():
    """The cabinet's flask-sqlalchemy ``db``: the plugin's tables live in the host's database."""
    return current_app.extensions["cabinet"].db
