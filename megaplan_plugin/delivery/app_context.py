"""The application context jobs run in, also under a plain ``rq worker`` process."""
from __future__ import annotations

import functools
import importlib
import logging
import os

from flask import Flask, has_app_context

from megaplan_plugin.config import ConfigError

_process_app: Flask | None = None


def app_factory_path() -> str:
    """The cabinet's app factory ("module:function"), which only the cabinet can name."""
    path = os.environ.get("CABINET_APP", "").strip()
    if not path:
        raise ConfigError(
            "Не задана переменная CABINET_APP: укажите фабрику приложения кабинета, например "
            "CABINET_APP=cabinet.app:create_app. / CABINET_APP is not set: name the cabinet's "
            "app factory, e.g. CABINET_APP=cabinet.app:create_app.")
    return path


def process_app() -> Flask:
    """One app per worker process, built on first use; never at import time."""
    global _process_app
    if _process_app is None:
        module, _, name = app_factory_path().partition(":")
        _process_app = getattr(importlib.import_module(module), name or "create_app")()
    return _process_app


WRONG_WORKER = (
    "Задания интеграции с Мегаплан выполняет только её воркер: запустите "
    "`rq worker -w megaplan_plugin.delivery.worker.CabinetWorker --with-scheduler megaplan-live megaplan` "
    "(a plain `rq worker` would build the whole cabinet app inside every job: popups seconds late).")


class WrongWorker(RuntimeError):
    pass


def with_app_context(func):
    """Jobs run inside the app context their worker gives them (``CabinetWorker``).

    A plain ``rq worker`` gives none; building the cabinet app per forked job would make every
    popup seconds late, so the job refuses loudly instead, naming the right command (RQ keeps
    it for a retry, so nothing is lost once the worker is started right).
    """
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if not has_app_context():
            logging.getLogger(__name__).error(WRONG_WORKER)
            raise WrongWorker(WRONG_WORKER)
        return func(*args, **kwargs)
    return wrapper

