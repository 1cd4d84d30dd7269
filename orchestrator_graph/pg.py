"""Small PostgreSQL helpers shared by the cross-process leases: a connection of their own,
tables created once even when many processes start together, and stable advisory-lock keys."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from orchestrator_graph.persistence import check_postgres_url

if TYPE_CHECKING:
    import psycopg

SETUP_KEY = 0x6F675F7365747570  # advisory key serialising this package's CREATE TABLEs


def lock_key(kind: str, name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name`` within ``kind``."""
    digest = hashlib.blake2b(f"orchestrator-graph:{kind}:{name}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


async def connect(url: str) -> psycopg.AsyncConnection:
    import psycopg

    check_postgres_url(url)
    return await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=10)


async def ensure_tables(conn: psycopg.AsyncConnection, ddl: str) -> None:
    """``CREATE TABLE IF NOT EXISTS`` races between sessions (a unique violation on
    ``pg_type``): one session at a time creates, under a transaction advisory lock."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SETUP_KEY,))
        await conn.execute(ddl)
