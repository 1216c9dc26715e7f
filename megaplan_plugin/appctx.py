"""The application context jobs run in, also under a plain ``rq worker`` process."""
from __future__ import annotations

import functools
import importlib
import os

from flask import Flask, current_app, has_app_context

_process_app: Flask | None = None


def app_factory_path() -> str:
    # The cabinet names its factory; the stub host's is the default for demos and CI.
    return os.environ.get("CABINET_APP", "host_stub:create_app")


def process_app() -> Flask:
    """One app per worker process, built on first use; never at import time."""
    global _process_app
    if _process_app is None:
        module, _, name = app_factory_path().partition(":")
        _process_app = getattr(importlib.import_module(module), name or "create_app")()
    return _process_app


def with_app_context(func):
    """Run a job inside ``current_app`` when there is one, else in the process's own app."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if has_app_context():
            return func(*args, **kwargs)
        with process_app().app_context():
            return func(*args, **kwargs)
    return wrapper


def plugin_state():
    return current_app.extensions["megaplan"]
