"""Small PostgreSQL helpers shared by the cross-process leases: a connection of their own,
tables created once even when many processes start together, and stable advisory-lock keys."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

SETUP_KEY = 0x6F675F7365747570  # advisory key serialising the savers' migrations
TABLES_KEY = 0x6F675F7461626C65  # and this package's own CREATE TABLEs
TRY = "SELECT pg_try_advisory_lock(%s)"


def lock_key(kind: str, name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name`` within ``kind``."""
    digest = hashlib.blake2b(f"orchestrator-graph:{kind}:{name}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


async def connect(url: str) -> psycopg.AsyncConnection:
    import psycopg

    return await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=10)


async def ensure_tables(conn: psycopg.AsyncConnection, ddl: str) -> None:
    """``CREATE TABLE IF NOT EXISTS`` races between sessions (a unique violation on
    ``pg_type``): one session at a time creates, under a transaction advisory lock."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (TABLES_KEY,))
        await conn.execute(ddl)


@contextlib.asynccontextmanager
async def setup_lock(url: str) -> AsyncIterator[None]:
    """One process at a time runs the savers' migrations (two at once collide on
    ``store_migrations_pkey``); the lock goes with the connection. Tried, not waited for in
    one statement: a migration's ``CREATE INDEX CONCURRENTLY`` waits for every open
    transaction, a waiting ``pg_advisory_lock`` included, and the two would wait forever."""
    conn = await connect(url)
    try:
        while not (await (await conn.execute(TRY, (SETUP_KEY,))).fetchone() or (False,))[0]:
            await asyncio.sleep(0.05)
        yield
    finally:
        await conn.close()


def postgres_url(store: Any) -> str | None:
    """The URL of a PostgreSQL store's database (unwrapped), else ``None``."""
    try:
        from langgraph.store.postgres.aio import AsyncPostgresStore
        from psycopg.conninfo import make_conninfo
        from psycopg_pool import AsyncConnectionPool
    except ImportError:  # without the postgres extra there is no PostgreSQL store either
        return None
    if not isinstance(store, AsyncPostgresStore):
        return None
    conn = store.conn
    if isinstance(conn, AsyncConnectionPool):
        return str(conn.conninfo)  # a pool built from a URL string (how this package builds it)
    # the dsn leaves the password out; it is added back from the connection
    return make_conninfo(conn.info.dsn, password=conn.info.password or None)
