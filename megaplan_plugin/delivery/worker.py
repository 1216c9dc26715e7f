"""The RQ workers that run the plugin's jobs inside the cabinet's app context.

Neither forks per job: building the cabinet app and its database pool costs far more than a
job, so the app is built once per worker and every job runs in an app context of it.
"""
from __future__ import annotations

from flask import Flask
from rq import SimpleWorker
from rq.timeouts import TimerDeathPenalty

from megaplan_plugin.delivery.app_context import process_app


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
