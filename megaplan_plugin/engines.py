"""Engines of the plugin's own on the host's database, made by the host's engine.

Two kinds of work must not take connections from the host's pool: routing (the PBX holds the
caller: a checkout that would wait gives up after a quarter of a second) and statements that
commit apart from a job's transaction (tokens, durable intents: a job already holding a
pooled connection and waiting for a second one could deadlock a full pool). Their engines
open connections through the host engine's own connection factory (``Pool.recreate``: the
host's connect arguments, SSL settings and connect events), then keep them in a pool sized
for their work.
"""
from __future__ import annotations

import functools

from sqlalchemy import create_engine
from sqlalchemy.pool import QueuePool


def own_engine(host_engine, *, size: int, overflow: int, wait: float, recycle: int = 300,
               pre_ping: bool = False, **options):
    """An engine with a pool of its own whose connections the host's engine makes. An
    in-memory SQLite database exists only on the host's own connection: that engine is used."""
    url = host_engine.url
    if host_engine.dialect.name == "sqlite" and url.database in (None, "", ":memory:"):
        return host_engine
    factory = host_engine.pool.recreate()  # only makes connections: each is detached at once
    pool = QueuePool(functools.partial(_detached, factory), pool_size=size, max_overflow=overflow,
                     timeout=wait, recycle=recycle, pre_ping=pre_ping)
    return create_engine(url, pool=pool, **options)


def _detached(factory):
    connection = factory.connect()
    connection.detach()
    return connection.dbapi_connection
