"""The history log's compaction as one transaction of SQL on the store's own table
(``history_log`` says what it does); PostgreSQL and SQLite stores, seen through the data
policy's and the tenants' wrappers."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from langgraph.store.base import BaseStore

from orchestrator_graph.ledger import HISTORY, HISTORY_GENERATION, HISTORY_LOG
from orchestrator_graph.persistence import begin_immediate
from orchestrator_graph.pg import lock_key

Rows = list[tuple[str, str, Any]]
Additions = dict[str, dict[str, float]]  # skill -> field -> amount


def fold(stats: Mapping[str, Mapping[str, float]], added: Mapping[str, Any]) -> Additions:
    """A worker's snapshot (skill -> field -> value) with a log entry's additions added."""
    out = {skill: dict(fields) for skill, fields in stats.items()}
    for skill, fields in added.items():
        into = out.setdefault(skill, {})
        for field, amount in fields.items():
            into[field] = into.get(field, 0) + amount
    return out


def physical(store: BaseStore) -> tuple[BaseStore, tuple[str, ...]]:
    """The store under the wrappers, and the namespace prefix they add (a tenant's)."""
    prefix: tuple[str, ...] = ()
    while (inner := getattr(store, "inner", None)) is not None:
        prefix = (*getattr(store, "prefix", ()), *prefix)  # an inner wrapper's goes first
        store = inner
    return store, prefix


def _rows(prefix: tuple[str, ...]) -> dict[str, str]:
    return {
        name: ".".join((*prefix, *ns))
        for name, ns in (("log", HISTORY_LOG), ("snap", HISTORY), ("gen", HISTORY_GENERATION))
    }


def _plan(log: Rows, snapshots: Rows, generation: Any, loads: Callable[[Any], Any]) -> Rows:
    """The snapshot and generation rows to write for ``log`` (key, value)."""
    totals = {key: loads(value) for _, key, value in snapshots}
    for _, _key, value in log:
        entry = loads(value)
        worker = entry.get("worker", "")
        totals[worker] = fold(totals.get(worker, {}), entry.get("skills", {}))
    was = loads(generation[0])["generation"] if generation else 0
    return [("snap", w, v) for w, v in totals.items()] + [
        ("gen", "generation", {"generation": was + 1})
    ]


async def compact_sql(store: BaseStore, prefix: tuple[str, ...]) -> int | None:
    """Compacted in one transaction: the entries folded; ``None`` for a store without SQL."""
    from langgraph.store.sqlite.aio import AsyncSqliteStore

    from orchestrator_graph.pg import postgres_url

    if (url := postgres_url(store)) is not None:
        return await _postgres(url, _rows(prefix))
    if isinstance(store, AsyncSqliteStore):
        return await _sqlite(store, _rows(prefix))
    return None


SELECT = "SELECT prefix, key, value FROM store WHERE prefix = {p}"
SNAPSHOTS = "SELECT prefix, key, value FROM store WHERE prefix = {p} AND key IN ({keys})"
UPSERT = (
    "INSERT INTO store (prefix, key, value) VALUES ({p}, {p}, {p}) ON CONFLICT (prefix, key) "
    "DO UPDATE SET value = excluded.value, updated_at = CURRENT_TIMESTAMP"
)
DELETE = "DELETE FROM store WHERE prefix = {p} AND key = {p}"


async def _postgres(url: str, rows: dict[str, str]) -> int:
    from psycopg.types.json import Jsonb

    from orchestrator_graph.pg import connect

    conn = await connect(url)
    try:
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(%s)", (lock_key("history", rows["log"]),)
            )
            log = await (await conn.execute(SELECT.format(p="%s"), (rows["log"],))).fetchall()
            workers = sorted({entry["worker"] for _, _, entry in log})
            snapshots = []
            if workers:
                query = SNAPSHOTS.format(p="%s", keys=",".join(["%s"] * len(workers)))
                snapshots = await (await conn.execute(query, (rows["snap"], *workers))).fetchall()
            gen = await (
                await conn.execute(SNAPSHOTS.format(p="%s", keys="%s"), (rows["gen"], "generation"))
            ).fetchone()
            writes = _plan(log, snapshots, gen and gen[2:], lambda v: v)
            await conn.cursor().executemany(
                UPSERT.format(p="%s"), [(rows[ns], key, Jsonb(v)) for ns, key, v in writes]
            )
            await conn.cursor().executemany(
                DELETE.format(p="%s"), [(rows["log"], key) for _, key, _ in log]
            )
        return len(log)
    finally:
        await conn.close()


async def _sqlite(store: Any, rows: dict[str, str]) -> int:
    conn = store.conn
    async with store.lock:  # the store's own connection, in autocommit: BEGIN is ours
        await begin_immediate(conn)  # the write lock first: one compaction at a time
        try:
            log = list(await conn.execute_fetchall(SELECT.format(p="?"), (rows["log"],)))
            workers = sorted({json.loads(v)["worker"] for _, _, v in log})
            snapshots = []
            if workers:
                query = SNAPSHOTS.format(p="?", keys=",".join(["?"] * len(workers)))
                snapshots = list(await conn.execute_fetchall(query, (rows["snap"], *workers)))
            gen = list(
                await conn.execute_fetchall(
                    SNAPSHOTS.format(p="?", keys="?"), (rows["gen"], "generation")
                )
            )
            writes = _plan(log, snapshots, gen and gen[0][2:], json.loads)
            await conn.executemany(
                UPSERT.format(p="?"), [(rows[ns], k, json.dumps(v)) for ns, k, v in writes]
            )
            await conn.executemany(DELETE.format(p="?"), [(rows["log"], k) for _, k, _ in log])
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")
    return len(log)
