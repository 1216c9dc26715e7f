"""Moves the plugin's scheduled jobs (popup retries, a writer coming back for calls due
soon) into their queues when they are due, in a process a supervisor can see.

``rq worker --with-scheduler`` forks this loop into a child of its own. A ``kill -9`` of the
worker leaves that child running, holding RQ's scheduler lock: the restarted worker then has
no scheduler of its own, and nothing supervises the orphan. So the plugin runs the loop in
the foreground, in ``flask megaplan scheduler`` (a thread in the embedded mode), with RQ's own
lock key (it and any ``--with-scheduler`` worker never move jobs at the same time) held for
``LOCK_SECONDS`` and renewed every tick: when the process dies, however it dies, a restarted
or a standby one takes over within that time.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

import redis
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.utils import current_timestamp

from megaplan_plugin.delivery import queues

log = logging.getLogger(__name__)
LOCK_SECONDS = 10
TICK_SECONDS = 1.0
# RQ's key (rq.scheduler.SCHEDULER_LOCKING_KEY_TEMPLATE), spelled out: the same in every rq
# since 1.2, and its module moved names between versions.
LOCK_KEY = "rq:scheduler-lock:{}"
# Extend the lock only while it is ours (another scheduler may have taken it during a pause
# of ours longer than LOCK_SECONDS), else take it if it is free; let go of it only if ours.
_REFRESH = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end
return redis.call('set', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) and 1 or 0
"""
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class Scheduler:
    def __init__(self, connection, queue_names=queues.QUEUES):
        self.connection = connection
        self.queue_names = list(queue_names)
        self.token = f"megaplan:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._refresh = connection.register_script(_REFRESH)
        self._release = connection.register_script(_RELEASE)

    def tick(self) -> int:
        """Move every due job of the queues whose lock this scheduler holds; how many moved."""
        moved = 0
        for name in self.queue_names:
            if self._refresh(keys=[LOCK_KEY.format(name)], args=[self.token, LOCK_SECONDS]):
                moved += self._move_due(name)
        return moved

    def _move_due(self, name: str) -> int:
        queue = queues.queue(name, self.connection)
        registry = ScheduledJobRegistry(queue=queue)
        job_ids = registry.get_jobs_to_schedule(current_timestamp())
        for job_id, job in zip(job_ids, Job.fetch_many(job_ids, connection=self.connection)):
            # Queued before it leaves the registry: a scheduler killed in between runs the job
            # twice at worst (every job of the plugin may run twice), never loses it.
            if job is not None:
                queue.enqueue_job(job)
            registry.remove(job_id)
        return len(job_ids)

    def release(self) -> None:
        try:
            for name in self.queue_names:
                self._release(keys=[LOCK_KEY.format(name)], args=[self.token])
        except redis.ConnectionError:
            pass  # Redis gone: the lock runs out by itself

    def run(self, stopping: threading.Event) -> None:
        """Tick until ``stopping`` is set; Redis going away is waited out, not fatal."""
        down = False
        try:
            while not stopping.is_set():
                try:
                    self.tick()
                    down = False
                except redis.ConnectionError as exc:
                    if not down:
                        log.warning("megaplan scheduler: Redis unavailable (%s); waiting", exc)
                    down = True
                stopping.wait(TICK_SECONDS)
        finally:
            self.release()
