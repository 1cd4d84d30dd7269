"""Worker history that many processes can add to at once without losing updates, and that
stays small: appended, then compacted.

Each dispatch (a ``HistoryWriter``) appends what it added to a worker's stats since its last
save as a new entry of the log; entries are never rewritten, so no update overwrites another.
``compact`` folds the entries into the snapshot (``HISTORY``, one row per worker) and deletes
exactly the entries it folded, in one transaction (PostgreSQL: under an advisory lock; SQLite:
``BEGIN IMMEDIATE``), and bumps a generation number in the same transaction. Appenders go on
while it runs: their new entries are not among those folded. ``add_logged`` reads the snapshot
and the log between two reads of the generation and reads again if a compaction committed in
between, so a history is never counted twice or lost. The log is compacted on demand and, when
a dispatch loads it, whenever it holds ``COMPACT_AT`` entries or more.

An in-memory store (one process) is compacted with one batch of the store's operations."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from langgraph.store.base import BaseStore, Item, PutOp

from orchestrator_graph.history_sql import compact_sql, fold, physical
from orchestrator_graph.ledger import HISTORY
from orchestrator_graph.ledger import HISTORY_GENERATION as GENERATION
from orchestrator_graph.ledger import HISTORY_LOG as LOG

if TYPE_CHECKING:
    from orchestrator_graph.registry import History, SkillStats

SCAN_LIMIT = 1_000_000
COMPACT_AT = 2_000  # entries in the log that make a dispatch's load compact it
READ_TRIES = 50


def _added(now: SkillStats, before: SkillStats | None) -> dict[str, float]:
    was = before.model_dump() if before is not None else {}
    return {k: v - was.get(k, 0) for k, v in now.model_dump().items() if v != was.get(k, 0)}


class HistoryWriter:
    """Appends what one dispatch added to the history it loaded (``save`` is the dispatcher's
    ``save_history``)."""

    def __init__(self, store: BaseStore, loaded: History) -> None:
        self.store = store
        self.saved = {w: {s: st.model_copy() for s, st in by.items()} for w, by in loaded.items()}
        self.key, self.seq = uuid.uuid4().hex, itertools.count()

    async def save(self, history: History, names: Iterable[str]) -> None:
        for name in names:
            before = self.saved.setdefault(name, {})
            added = {s: _added(st, before.get(s)) for s, st in history.get(name, {}).items()}
            added = {s: fields for s, fields in added.items() if fields}
            if added:
                value = {"worker": name, "skills": added}
                await self.store.aput(
                    LOG, f"{self.key}/{next(self.seq)}/{name}", value, index=False
                )
                before.update({s: history[name][s].model_copy() for s in added})


async def add_logged(store: BaseStore, history: History) -> None:
    """Set the workers ``history`` holds to their snapshot plus every logged addition, read
    consistently (see the module)."""
    from orchestrator_graph.registry import SkillStats

    names = list(history)
    for _ in range(READ_TRIES):
        before = await store.aget(GENERATION, "generation")
        snapshots = await _get(store, HISTORY, names)
        log = await store.asearch(LOG, limit=SCAN_LIMIT)
        after = await store.aget(GENERATION, "generation")
        if _generation(before) == _generation(after):
            break
    else:
        raise RuntimeError(f"the worker history was compacted {READ_TRIES} times during one read")
    totals = {n: dict(s.value) if s else {} for n, s in zip(names, snapshots, strict=True)}
    for item in log:
        worker = item.value.get("worker", "")
        if worker in totals:
            totals[worker] = fold(totals[worker], item.value.get("skills", {}))
    for name, by_skill in totals.items():
        history[name] = {s: SkillStats.model_validate(v) for s, v in by_skill.items()}
    if len(log) >= COMPACT_AT:
        await compact(store)


async def _get(store: BaseStore, namespace: tuple[str, ...], keys: list[str]) -> list[Item | None]:
    """The items at ``keys``. Through ``aget``, which the SQLite and PostgreSQL stores queue into
    their own batches: an ``abatch`` of ours would open a transaction beside theirs on the same
    connection (with ten CLI runs on one SQLite folder: "database is locked")."""
    return list(await asyncio.gather(*(store.aget(namespace, k) for k in keys)))


def _generation(item: Any) -> int:
    return int(item.value["generation"]) if item is not None else 0


async def compact(store: BaseStore) -> int:
    """Fold the log into the snapshot atomically (see the module); the entries folded."""
    base, prefix = physical(store)
    folded = await compact_sql(base, prefix)
    if folded is not None:
        return folded
    async with _LOCKS.setdefault(id(base), asyncio.Lock()):  # in memory: one process
        return await _compact_in_batch(store)


_LOCKS: dict[int, asyncio.Lock] = {}


async def _compact_in_batch(store: BaseStore) -> int:
    """Snapshot, deletions and generation written in one batch, which an in-memory store
    applies without letting another coroutine in."""
    log = await store.asearch(LOG, limit=SCAN_LIMIT)
    workers = sorted({i.value.get("worker", "") for i in log})
    current = await _get(store, HISTORY, workers)
    totals = {w: dict(c.value) if c else {} for w, c in zip(workers, current, strict=True)}
    for item in log:
        totals[item.value["worker"]] = fold(totals[item.value["worker"]], item.value["skills"])
    generation = _generation(await store.aget(GENERATION, "generation")) + 1
    await store.abatch(
        [
            *(PutOp(HISTORY, w, v, index=False) for w, v in totals.items()),
            *(PutOp(LOG, i.key, None) for i in log),
            PutOp(GENERATION, "generation", {"generation": generation}, index=False),
        ]
    )
    return len(log)
