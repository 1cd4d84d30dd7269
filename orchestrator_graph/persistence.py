"""Checkpointer and store for runs outside the server: SQLite files by default, Postgres by URL."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore

from orchestrator_graph.errors import ConnectionFailed, DamagedStoreError, InputError

if TYPE_CHECKING:
    import aiosqlite
    from langgraph.store.sqlite.aio import AsyncSqliteStore

HOME_ENV = "ORCHESTRATOR_GRAPH_HOME"
POSTGRES_ENV = "ORCHESTRATOR_GRAPH_POSTGRES_URL"


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    path = Path(override or os.environ.get(HOME_ENV) or ".orchestrator-graph").expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"data folder {path}: exists and is not a folder") from None
    except OSError as error:
        raise InputError(f"data folder {path}: {error.strerror or error}") from None
    return path


DAMAGED = (
    "{file} is damaged ({reason}): move it aside and start afresh (its runs are lost), or "
    "restore it from a backup"
)


def _check_sqlite(folder: Path) -> None:
    """Refuse a data folder whose databases cannot be read, or whose store was emptied while
    the checkpoints still hold runs (their ledger and history would silently be missing)."""
    import sqlite3

    state, store = folder / "state.db", folder / "store.db"
    for file in (state, store):
        if not file.exists() or file.stat().st_size == 0:
            continue
        try:
            # Read-write: a process killed mid-write leaves a hot journal that opening rolls
            # back (read-only, that recovery would fail and a sound file look damaged).
            with contextlib.closing(sqlite3.connect(file, timeout=30)) as db:
                db.execute("PRAGMA schema_version").fetchone()
                db.execute("SELECT name FROM sqlite_master").fetchall()
        except sqlite3.OperationalError:
            pass  # locked or not writable: not damage; the saver reports it as it is
        except sqlite3.DatabaseError as error:  # not a database, or a malformed one
            raise DamagedStoreError(DAMAGED.format(file=file, reason=error)) from None
    if store.exists() and store.stat().st_size == 0 and state.exists() and state.stat().st_size:
        raise DamagedStoreError(
            DAMAGED.format(file=store, reason="0 bytes, while state.db holds runs")
        )


@asynccontextmanager
async def open_persistence(
    home: str | os.PathLike[str] | None = None, postgres_url: str | None = None
) -> AsyncIterator[tuple[BaseCheckpointSaver, BaseStore]]:
    """``(checkpointer, store)``: Postgres when a URL is given (or set in the environment),
    otherwise ``state.db`` and ``store.db`` in the data directory."""
    from orchestrator_graph.protection.persist import protect_saver, protect_store

    url = postgres_url or os.environ.get(POSTGRES_ENV)
    if url:
        async with _postgres(url) as (saver, store):
            yield protect_saver(saver), protect_store(store)
        return
    async with _sqlite(data_dir(home)) as (saver, store):
        yield protect_saver(saver), protect_store(store)


BUSY_TIMEOUT = 60  # seconds a writer waits for another process's write to end


async def _shared_connection(file: Path, **options: Any) -> aiosqlite.Connection:
    """A connection other processes can share the file with: write-ahead log (readers never
    block the writer) and a busy time-out (a writer waits its turn instead of failing)."""
    import aiosqlite

    conn = await aiosqlite.connect(file, timeout=BUSY_TIMEOUT, **options)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT * 1000}")
    return conn


async def begin_immediate(conn: aiosqlite.Connection) -> None:
    """``BEGIN IMMEDIATE`` on an autocommit connection: waits for other processes' writes.

    Cancelled while it waits, it has still been queued: aiosqlite runs it later, and nobody
    would end that transaction (the connection's next BEGIN failed: "cannot start a
    transaction within a transaction"). The ROLLBACK queued right behind it ends it."""
    import sqlite3

    try:
        await conn.execute("BEGIN IMMEDIATE")
    except asyncio.CancelledError:
        with contextlib.suppress(sqlite3.OperationalError):  # the BEGIN failed: none to end
            await conn.execute("ROLLBACK")
        raise


def _shared_store(conn: aiosqlite.Connection) -> AsyncSqliteStore:
    """langgraph's SQLite store, whose batches take the write lock when they begin.

    Its batches run their reads, then their writes, in one deferred transaction. With other
    processes on the file (WAL), a transaction that read before another process committed cannot
    become a writer: SQLite answers "database is locked" at once, without waiting out the busy
    time-out (ten CLI runs on one data folder hit it). ``BEGIN IMMEDIATE`` waits its turn."""
    from langgraph.store.sqlite.aio import AsyncSqliteStore

    class SharedSqliteStore(AsyncSqliteStore):
        @asynccontextmanager
        async def _cursor(self, *, transaction: bool = True) -> AsyncIterator[aiosqlite.Cursor]:
            if not self.is_setup:
                await self.setup()
            async with self.lock:
                if transaction:
                    await begin_immediate(self.conn)
                async with self.conn.cursor() as cur:
                    try:
                        yield cur
                    finally:
                        if transaction:
                            await self.conn.execute("COMMIT")

    return SharedSqliteStore(conn)


@asynccontextmanager
async def _sqlite(folder: Path) -> AsyncIterator[tuple[BaseCheckpointSaver, BaseStore]]:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    from orchestrator_graph.interprocess import async_file_lock

    async with contextlib.AsyncExitStack() as stack:
        # The savers' migrations are not safe to run from two processes at once (one fails
        # with "duplicate column name"): the first process sets up, the others find it done.
        # The check for damage waits too: a folder another process is creating looks damaged
        # (a state.db already written beside a store.db not yet).
        async with async_file_lock(folder / "setup.lock"):
            _check_sqlite(folder)
            state = await _shared_connection(folder / "state.db")
            stack.push_async_callback(state.close)
            kept = await _shared_connection(folder / "store.db", isolation_level=None)
            stack.push_async_callback(kept.close)
            saver, store = AsyncSqliteSaver(state), _shared_store(kept)
            await saver.setup()
            await store.setup()
        yield saver, store


CONNECT_TIMEOUT = 10  # seconds


def check_postgres_url(url: str) -> None:
    """A ``postgresql://`` (or ``postgres://``) URL, refused otherwise in one line."""
    if urlparse(url).scheme not in ("postgresql", "postgres"):
        raise InputError(
            f"--postgres {url!r}: not a Postgres URL; use postgresql://USER@HOST:PORT/DATABASE"
        )


@asynccontextmanager
async def _postgres(url: str) -> AsyncIterator[tuple[BaseCheckpointSaver, BaseStore]]:
    check_postgres_url(url)
    if "connect_timeout=" not in url:  # an unreachable host fails in seconds, not minutes
        url += ("&" if urlparse(url).query else "?") + f"connect_timeout={CONNECT_TIMEOUT}"
    try:
        import psycopg
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from langgraph.store.postgres.aio import AsyncPostgresStore
    except ImportError as err:
        raise RuntimeError(
            "Postgres needs the extra: pip install 'orchestrator-graph[postgres]'"
        ) from err
    parts = urlparse(url)
    where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"  # no password
    async with contextlib.AsyncExitStack() as stack:
        try:
            saver = await stack.enter_async_context(AsyncPostgresSaver.from_conn_string(url))
            store = await stack.enter_async_context(AsyncPostgresStore.from_conn_string(url))
            from orchestrator_graph.pg import setup_lock

            async with setup_lock(url):
                await saver.setup()
                await store.setup()
        except psycopg.OperationalError as error:
            reason = " ".join(str(error).split())
            raise ConnectionFailed(f"cannot connect to Postgres at {where}: {reason}") from None
        except psycopg.ProgrammingError as error:
            reason = " ".join(str(error).split())
            raise InputError(f"--postgres: not a usable connection string: {reason}") from None
        yield saver, store
