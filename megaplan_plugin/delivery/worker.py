"""The RQ workers that run the plugin's jobs inside the cabinet's app context, and the
decorator that makes a job refuse to run anywhere else.

Neither forks per job: building the cabinet app and its database pool costs far more than a
job, so the app is built once per worker and every job runs in an app context of it.
"""
from __future__ import annotations

import functools
import logging
import os

from flask import Flask, has_app_context
from flask.cli import ScriptInfo
from rq import SimpleWorker
from rq.timeouts import TimerDeathPenalty

from megaplan_plugin.config import ConfigError
from megaplan_plugin.delivery.outbox import DatabaseDown
from megaplan_plugin.megaplan import MegaplanError

_process_app: Flask | None = None


def app_factory_path() -> str:
    """The cabinet's app ("module:factory", or anything Flask's ``--app`` takes), which only
    the cabinet can name: ``CABINET_APP``, else Flask's own ``FLASK_APP``."""
    path = (os.environ.get("CABINET_APP") or os.environ.get("FLASK_APP") or "").strip()
    if not path:
        raise ConfigError(
            "Не задана переменная CABINET_APP (или FLASK_APP): укажите приложение кабинета, например "
            "CABINET_APP=cabinet.app:create_app. / Neither CABINET_APP nor FLASK_APP is set: name the "
            "cabinet's app, e.g. CABINET_APP=cabinet.app:create_app.")
    return path


def process_app() -> Flask:
    """One app per worker process, built on first use; never at import time. Loaded the way
    ``flask --app`` loads it (a factory is called, an app object taken as it is)."""
    global _process_app
    if _process_app is None:
        _process_app = ScriptInfo(app_import_path=app_factory_path()).load_app()
    return _process_app


WRONG_WORKER = (
    "Задания интеграции с Мегаплан выполняет только её воркер: запустите "
    "`rq worker -w megaplan_plugin.delivery.worker.CabinetWorker megaplan-live megaplan` "
    "(a plain `rq worker` would build the whole cabinet app inside every job: popups seconds late).")


class WrongWorker(RuntimeError):
    pass


def with_app_context(func):
    """Jobs run inside the app context their worker gives them (``CabinetWorker``). A plain
    ``rq worker`` gives none (building the app per forked job would make popups seconds late):
    the job refuses loudly, naming the right command; the calls wait in the outbox."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if not has_app_context():
            logging.getLogger(__name__).error(WRONG_WORKER)
            raise WrongWorker(WRONG_WORKER)
        return func(*args, **kwargs)
    return wrapper


PUBSUB_WAIT_SECONDS = 1.0
EXPECTED = (MegaplanError, DatabaseDown)


class CabinetWorker(SimpleWorker):
    """``rq worker -w megaplan_plugin.delivery.worker.CabinetWorker``: production, real Redis.

    Builds the cabinet app (``CABINET_APP``) once, in the worker process, and runs jobs in
    that process (RQ's job timeout still applies: SIGALRM in the main thread).
    """

    def __init__(self, *args, flask_app: Flask | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # Built at start, not at the first job: the first popup must not wait for it.
        self.flask_app = flask_app or process_app()

    def perform_job(self, job, queue, *args):
        with self.flask_app.app_context():
            return super().perform_job(job, queue, *args)

    def handle_exception(self, job, *exc_info):
        """Megaplan's errors and our database's outages are expected and retried: one WARNING
        line with the job and what is left of its retries. Tracebacks are for defects."""
        exc = exc_info[1]
        if not isinstance(exc, EXPECTED):
            return super().handle_exception(job, *exc_info)
        self.log.warning("megaplan: job %s (%s) failed, %s retries left: %s: %s", job.id,
                         job.func_name.rsplit(".", 1)[-1], job.retries_left or 0, type(exc).__name__, exc)
        # `rq worker --exception-handler …` handlers still see it (RQ has no public caller)
        for handler in self._exc_handlers:
            answer = handler(job, *exc_info)
            if answer is not None and not answer:
                break

    def subscribe(self):
        """RQ's command channel, read in one-second waits instead of RQ's sixty: redis-py 8's
        ``stop()`` waits out the current wait, so every worker's shutdown (and every burst
        run's end) took up to a minute."""
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=PUBSUB_WAIT_SECONDS, daemon=True, exception_handler=self._pubsub_exception_handler)


class ThreadWorker(CabinetWorker):
    """A worker in a thread of the app's own process (the embedded mode)."""

    # A thread can neither install signal handlers nor use SIGALRM-based timeouts.
    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self):
        pass


def thread_worker(app: Flask, connection, queue_names) -> ThreadWorker:
    from megaplan_plugin.delivery.queues import queue
    return ThreadWorker([queue(name, connection) for name in queue_names], connection=connection,
                        flask_app=app)
