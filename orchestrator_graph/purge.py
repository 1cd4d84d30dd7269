"""Retention: a thread's run removed from everywhere it was kept (checkpoints, ledger, live
status, schedule, spent usage, settings, plan memory), and the payloads of its audit chain
dropped with the chain itself kept, so it still verifies and says who purged what, when."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore
from pydantic import BaseModel

from orchestrator_graph.auditlog import ACTIVE_KEY, AuditLog, audit_key
from orchestrator_graph.errors import InputError
from orchestrator_graph.identity import Identity
from orchestrator_graph.ledger import (
    COMPLIANCE,
    ROOT,
    SCHEDULES,
    SPENT,
    STATUS,
    THREAD_OWNERS,
    THREAD_SETTINGS,
)
from orchestrator_graph.memory import MemoryHandle


class Purged(BaseModel):
    thread: str
    run_id: str | None
    store_items: int
    audit_payloads: int
    memory_records: int


async def _drop_namespace(store: BaseStore, prefix: tuple[str, ...]) -> int:
    count = 0
    while page := await store.asearch(prefix, limit=1000):
        for item in page:
            await store.adelete(item.namespace, item.key)
        count += len(page)
    return count


async def purge_thread(
    saver: BaseCheckpointSaver,
    store: BaseStore,
    thread: str,
    run_id: str | None,
    memory: MemoryHandle | None,
    by: Identity,
) -> Purged:
    by.require("purge", f"thread {thread}")
    await saver.adelete_thread(thread)
    items = 0
    for namespace, key in ((THREAD_SETTINGS, thread), (THREAD_OWNERS, thread)):
        items += await store.aget(namespace, key) is not None
        await store.adelete(namespace, key)
    payloads = records = 0
    if run_id:
        items += await _drop_namespace(store, (ROOT, "runs", run_id))
        items += await _drop_namespace(store, (*SPENT, run_id))
        items += await _drop_namespace(store, (*COMPLIANCE, run_id))
        for namespace in (STATUS, SCHEDULES):
            items += await store.aget(namespace, run_id) is not None
            await store.adelete(namespace, run_id)
        log = AuditLog(store, run_id, ACTIVE_KEY.get() or audit_key())
        payloads = await log.purge_payloads()
        detail = {"thread": thread, "by": by.model_dump(), "at": time.time()}
        await log.append([(f"purged:{time.time()}", by.name, "purged", detail)])
        await log.settle()
        if memory is not None:
            records = await memory.call("forget", run_id)
    return Purged(
        thread=thread,
        run_id=run_id,
        store_items=items,
        audit_payloads=payloads,
        memory_records=records,
    )


async def stale_threads(saver: BaseCheckpointSaver, older_than: float) -> list[str]:
    """Threads whose newest checkpoint is older than ``older_than`` seconds."""
    from datetime import datetime

    newest: dict[str, float] = {}
    async for item in saver.alist(None):
        thread = item.config["configurable"]["thread_id"]
        ts = datetime.fromisoformat(item.checkpoint["ts"]).timestamp()
        newest[thread] = max(ts, newest.get(thread, 0.0))
    cutoff = time.time() - older_than
    return sorted(t for t, ts in newest.items() if ts < cutoff)


def run_of(values: dict[str, Any]) -> str | None:
    return values.get("run_id") or (values.get("report") or {}).get("run_id")


async def purge_runs(
    graph: Pregel[Any, Any, Any, Any],
    *,
    identity: Identity | Mapping[str, Any],
    thread: str | None = None,
    older_than: float | None = None,
    memory: MemoryHandle | None = None,
) -> list[Purged]:
    """Retention from the library: remove ``thread``'s run, or every thread whose newest
    checkpoint is more than ``older_than`` seconds old, from the checkpointer and store ``graph``
    was compiled with (and from ``memory``, the plan memory, when given). ``identity`` must hold
    the admin role; it is recorded in each audit chain as who purged."""
    who = identity if isinstance(identity, Identity) else Identity.model_validate(identity)
    who.require("purge", f"thread {thread}" if thread else "runs")
    if (thread is None) == (older_than is None):
        raise InputError("purge_runs: give a thread or older_than (seconds), one of them")
    saver, store = graph.checkpointer, graph.store
    if not isinstance(saver, BaseCheckpointSaver) or store is None:
        raise InputError("purge_runs: compile the graph with a checkpointer and a store first")
    threads = [thread] if thread else await stale_threads(saver, older_than or 0.0)
    out = []
    for name in threads:
        state = await graph.aget_state({"configurable": {"thread_id": name}})
        if thread and not state.values:
            raise InputError(f"thread {name}: no such thread in this checkpointer")
        out.append(await purge_thread(saver, store, name, run_of(state.values), memory, who))
    return out
