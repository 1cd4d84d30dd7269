"""One thread, one runner: a thread is leased to the process running it, so a second ``run`` or
``resume`` of a live thread is refused with the holder named, and a crashed holder's lease is
taken over by the next runner.

PostgreSQL: a session advisory lock on the runner's own connection (the server drops it when
that connection dies). SQLite: ``flock`` on a lock file in the data folder (the kernel drops it
when the process dies). Beside the lock, the holder (pid, host, since) is written for the
refusal message."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from pydantic import BaseModel

from orchestrator_graph.errors import ThreadBusy
from orchestrator_graph.persistence import POSTGRES_ENV, data_dir

TABLE = "orchestrator_graph_thread_holders"
DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    thread text PRIMARY KEY, pid integer NOT NULL, host text NOT NULL,
    since double precision NOT NULL)"""
HOLDER_WAIT = 2.0  # seconds to wait for a fresh holder to write its name


class Holder(BaseModel):
    thread: str
    pid: int
    host: str
    since: float

    @classmethod
    def me(cls, thread: str) -> Holder:
        return cls(thread=thread, pid=os.getpid(), host=socket.gethostname(), since=time.time())


def busy(thread: str, holder: Holder | None) -> ThreadBusy:
    if holder is None:
        who = "another process (just starting)"
    else:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(holder.since))
        who = f"pid {holder.pid} on {holder.host} since {when}"
    return ThreadBusy(
        f"thread {thread} is being run by {who}: one runner per thread; wait for it to end "
        "or stop that process, then resume"
    )


async def named_holder(thread: str, read: Callable[[], Awaitable[Holder | None]]) -> ThreadBusy:
    """The refusal, naming the holder once it has written its name (a holder that took the
    lock an instant ago may not have yet; the name left by a crashed one is not it)."""
    deadline = time.monotonic() + HOLDER_WAIT
    while True:
        holder = await read()
        fresh = holder is not None and _live(holder)
        if fresh or time.monotonic() > deadline:
            return busy(thread, holder if fresh else None)
        await asyncio.sleep(0.05)


def _live(holder: Holder) -> bool:
    if holder.host != socket.gethostname():
        return True  # cannot tell from here; the lock says it is held
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.asynccontextmanager
async def thread_lease(
    thread: str, *, home: str | os.PathLike[str] | None = None, postgres_url: str | None = None
) -> AsyncIterator[Holder]:
    """Hold ``thread`` for this process while the body runs; ``ThreadBusy`` if a live process
    holds it. Use the same ``home``/``postgres_url`` as the run's persistence."""
    url = postgres_url or os.environ.get(POSTGRES_ENV)
    lease = _postgres_lease(thread, url) if url else _file_lease(thread, data_dir(home))
    async with lease as holder:
        yield holder


@contextlib.asynccontextmanager
async def _file_lease(thread: str, folder: Path) -> AsyncIterator[Holder]:
    from orchestrator_graph.interprocess import try_lock

    threads = folder / "threads"
    threads.mkdir(exist_ok=True)
    name = hashlib.sha1(thread.encode()).hexdigest()[:20]
    lock, said = threads / f"{name}.lock", threads / f"{name}.holder"

    async def read() -> Holder | None:
        try:
            return Holder.model_validate_json(said.read_text())
        except (OSError, ValueError):
            return None

    fd = try_lock(lock)
    if fd is None:
        raise await named_holder(thread, read)
    try:
        holder = Holder.me(thread)
        fresh = said.with_suffix(f".{os.getpid()}")
        fresh.write_text(holder.model_dump_json())
        os.replace(fresh, said)  # readers see the old holder or the new, never half of one
        yield holder
    finally:
        said.unlink(missing_ok=True)
        os.close(fd)


@contextlib.asynccontextmanager
async def _postgres_lease(thread: str, url: str) -> AsyncIterator[Holder]:
    from orchestrator_graph.persistence import check_postgres_url
    from orchestrator_graph.pg import connect, ensure_tables, lock_key

    check_postgres_url(url)
    conn = await connect(url)
    try:
        await ensure_tables(conn, DDL)
        key = lock_key("thread", thread)

        async def read() -> Holder | None:
            cur = await conn.execute(
                f"SELECT pid, host, since FROM {TABLE} WHERE thread = %s", (thread,)
            )
            row = await cur.fetchone()
            return Holder(thread=thread, pid=row[0], host=row[1], since=row[2]) if row else None

        got = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))).fetchone()
        if not got or not got[0]:
            raise await named_holder(thread, read)
        holder = Holder.me(thread)
        await conn.execute(
            f"INSERT INTO {TABLE} (thread, pid, host, since) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (thread) DO UPDATE SET pid = EXCLUDED.pid, host = EXCLUDED.host, "
            "since = EXCLUDED.since",
            (thread, holder.pid, holder.host, holder.since),
        )
        yield holder
        await conn.execute(
            f"DELETE FROM {TABLE} WHERE thread = %s AND pid = %s", (thread, holder.pid)
        )
    finally:
        await conn.close()  # also drops the advisory lock
