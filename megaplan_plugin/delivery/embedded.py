"""The embedded mode (no ``REDIS_URL``): workers, scheduler and cron as threads of one process.

They share the one in-process Redis, so a retry scheduled by RQ is moved back into the queue
by the scheduler thread, and the periodic sweep and reconciliation run as they would in
production. Nothing forks: a forked child would hold a copy of the in-process Redis (its
retries would never reach the workers) and outlive ``kill`` of the process. The threads are
daemons, so every CLI command and ``flask run`` exit when their main thread does.
"""
from __future__ import annotations

import logging
import threading

from flask import Flask
from rq.cron import CronScheduler

from megaplan_plugin.delivery import periodic, queues
from megaplan_plugin.delivery.scheduler import Scheduler
from megaplan_plugin.delivery.worker import thread_worker

log = logging.getLogger(__name__)
IDLE_RETURN_SECONDS = 1


class Embedded:
    def __init__(self, app: Flask, connection, workers: int = 2):
        self.app = app
        self.connection = connection
        self.workers = workers
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        # Popups get a worker of their own so they never wait behind history jobs.
        self._spawn("megaplan-rq-live", self._work, [queues.LIVE_QUEUE])
        for n in range(self.workers):
            self._spawn(f"megaplan-rq-worker-{n}", self._work, list(queues.QUEUES))
        self._spawn("megaplan-rq-scheduler", self._schedule)
        self._spawn("megaplan-rq-cron", self._cron)

    def stop(self, wait: float = 5.0) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(wait)

    def _spawn(self, name, target, *args) -> None:
        thread = threading.Thread(target=self._forever, args=(name, target, *args), name=name,
                                  daemon=True)
        thread.start()
        self.threads.append(thread)

    def _forever(self, name, target, *args) -> None:
        while not self.stopping.is_set():
            try:
                target(*args)
            except Exception:  # keep the demo alive; the outbox sweeper re-sends what was lost
                log.exception("%s died; restarting", name)
                self.stopping.wait(1)

    def _work(self, queue_names) -> None:
        # Back to the loop after a second without jobs, so stop() is heard.
        thread_worker(self.app, self.connection, queue_names).work(
            logging_level="WARNING", max_idle_time=IDLE_RETURN_SECONDS)

    def _schedule(self) -> None:
        """The production scheduler's loop (retries, ``enqueue_in``) in a thread."""
        Scheduler(self.connection).run(self.stopping)

    def _cron(self) -> None:
        scheduler = CronScheduler(connection=self.connection, logging_level="WARNING")
        for entry in periodic.schedule():
            scheduler.register(**entry)
        while not self.stopping.is_set():
            scheduler.enqueue_jobs()
            self.stopping.wait(min(scheduler.calculate_sleep_interval(), 5) or 0.1)
