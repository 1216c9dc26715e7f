"""RQ workers that run the plugin's jobs with a fresh app context per job."""
from __future__ import annotations

import logging
import os
import threading

from flask import Flask
from rq import SimpleWorker, Worker
from rq.timeouts import TimerDeathPenalty

from . import queue as queues
from .appctx import process_app

log = logging.getLogger(__name__)


class AppWorker(SimpleWorker):
    """Runs jobs in-process; each job gets its own app context, so its own DB session."""

    # A thread cannot install signal handlers nor use SIGALRM-based timeouts.
    death_penalty_class = TimerDeathPenalty
    flask_app: Flask | None = None

    def _install_signal_handlers(self):
        pass

    def perform_job(self, job, queue, *args):
        with self.flask_app.app_context():
            return super().perform_job(job, queue, *args)


class CabinetWorker(Worker):
    """For ``rq worker -w megaplan_plugin.worker.CabinetWorker``: production with real Redis.

    The cabinet app (``CABINET_APP``) is built once in the parent; each forked work horse runs
    its job inside an app context of it, with the database pool it inherited thrown away.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.flask_app = process_app()
        self._parent_pid = os.getpid()

    def perform_job(self, job, queue, *args):
        with self.flask_app.app_context():
            if os.getpid() != self._parent_pid:
                # Sockets shared with the parent after fork() would interleave two sessions.
                self.flask_app.extensions["cabinet"].db.engine.dispose(close=False)
            return super().perform_job(job, queue, *args)


def make_worker(app: Flask, connection) -> AppWorker:
    worker = AppWorker([queues.queue(name, connection) for name in queues.QUEUES],
                       connection=connection)
    worker.flask_app = app
    return worker


def start_embedded_worker(app: Flask, connection) -> threading.Thread:
    """The worker thread of the embedded default (no REDIS_URL): one command, a working system."""
    def run():
        while True:
            try:
                make_worker(app, connection).work(with_scheduler=True, logging_level="WARNING")
            except Exception:  # keep the demo alive; the outbox sweeper re-sends what was lost
                log.exception("embedded RQ worker died; restarting")
    thread = threading.Thread(target=run, name="megaplan-rq-worker", daemon=True)
    thread.start()
    return thread
