"""A worker's capacity held across processes: before an attempt starts, its worker's slot is
leased in PostgreSQL; the lease is renewed while the attempt runs and given back when it ends.
A process that crashes (or hangs) stops renewing, so its slots free themselves when the lease
expires. Inside one process the dispatcher counts slots itself; this is the part shared
between processes on one PostgreSQL. On SQLite or an in-memory store there is none: each
process holds to the capacity on its own.

A slot is a row (worker, slot); taking one is ``SELECT … FOR UPDATE SKIP LOCKED`` of a free or
expired row in a transaction, so two processes never take the same slot."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg
    from langgraph.store.base import BaseStore

    from orchestrator_graph.dispatch.board import Launch
    from orchestrator_graph.dispatch.runner import RunAttempt
    from orchestrator_graph.models import Review, TaskResult
    from orchestrator_graph.workers import Worker

TABLE = "orchestrator_graph_worker_slots"
DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    worker text NOT NULL, slot integer NOT NULL, holder text, expires_at timestamptz,
    PRIMARY KEY (worker, slot))"""
TTL = 30.0  # seconds a lease lasts unless renewed
WAIT_MIN, WAIT_MAX = 0.02, 0.5  # seconds between tries while every slot is taken

TAKE = f"""SELECT slot FROM {TABLE}
    WHERE worker = %(worker)s AND slot < %(capacity)s
      AND (holder IS NULL OR expires_at < now())
    ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED"""
HOLD = f"""UPDATE {TABLE} SET holder = %(holder)s,
    expires_at = now() + make_interval(secs => %(ttl)s)
    WHERE worker = %(worker)s AND slot = %(slot)s"""
RENEW = f"""UPDATE {TABLE} SET expires_at = now() + make_interval(secs => %(ttl)s)
    WHERE worker = %(worker)s AND slot = %(slot)s AND holder = %(holder)s"""
GIVE_BACK = f"""UPDATE {TABLE} SET holder = NULL, expires_at = NULL
    WHERE worker = %(worker)s AND slot = %(slot)s AND holder = %(holder)s"""
SLOTS = f"""INSERT INTO {TABLE} (worker, slot)
    SELECT %(worker)s, s FROM generate_series(0, %(capacity)s - 1) AS s
    ON CONFLICT DO NOTHING"""


class WorkerLeases:
    """Cross-process worker slots in the PostgreSQL at ``url``."""

    def __init__(self, url: str, ttl: float = TTL) -> None:
        self.url, self.ttl = url, ttl
        self._ready: set[tuple[str, int]] = set()
        self._setup = False

    @contextlib.asynccontextmanager
    async def slot(self, worker: str, capacity: int) -> AsyncIterator[int]:
        """Wait for one of the worker's ``capacity`` slots and hold it while the body runs."""
        from orchestrator_graph.pg import connect

        conn = await connect(self.url)
        try:
            lease: dict[str, Any] = {"worker": worker, "capacity": capacity, "ttl": self.ttl}
            lease["holder"] = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
            lease["slot"] = slot = await self._take(conn, lease)
            renewing = asyncio.ensure_future(self._renew(conn, lease))
            try:
                yield slot
            finally:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
                await conn.execute(GIVE_BACK, lease)
        finally:
            await conn.close()

    async def _take(self, conn: psycopg.AsyncConnection, lease: dict[str, Any]) -> int:
        from orchestrator_graph.pg import ensure_tables

        if not self._setup:
            await ensure_tables(conn, DDL)
            self._setup = True
        if (lease["worker"], lease["capacity"]) not in self._ready:
            await conn.execute(SLOTS, lease)
            self._ready.add((lease["worker"], lease["capacity"]))
        wait = WAIT_MIN
        while True:
            async with conn.transaction():
                row = await (await conn.execute(TAKE, lease)).fetchone()
                if row is not None:
                    await conn.execute(HOLD, {**lease, "slot": row[0]})
                    return int(row[0])
            await asyncio.sleep(wait)
            wait = min(wait * 2, WAIT_MAX)

    async def _renew(self, conn: psycopg.AsyncConnection, lease: dict[str, Any]) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            await conn.execute(RENEW, lease)


_shared: dict[str, WorkerLeases] = {}


def leases_for(store: BaseStore | None) -> WorkerLeases | None:
    """The cross-process leases for a PostgreSQL store (same database), else ``None``."""
    from orchestrator_graph.ledger import innermost
    from orchestrator_graph.pg import postgres_url

    url = postgres_url(innermost(store)) if store is not None else None
    if url is None:
        return None
    if url not in _shared:
        _shared[url] = WorkerLeases(url)
    return _shared[url]


def leased(
    run_attempt: RunAttempt, leases: WorkerLeases | None, worker: Callable[[str], Worker | None]
) -> RunAttempt:
    """The dispatcher's hook: each attempt runs holding a slot of its worker across processes
    (taken before the worker starts, given back when it ends); as it was without leases."""
    if leases is None:
        return run_attempt

    async def attempt(launch: Launch) -> tuple[TaskResult, Review]:
        member = worker(launch.worker)
        async with leases.slot(launch.worker, member.capacity if member else 1):
            return await run_attempt(launch)

    return attempt
