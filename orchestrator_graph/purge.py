"""Retention: a thread's run removed from everywhere it was kept (checkpoints, ledger, live
status, schedule, spent usage, settings, plan memory), and the payloads of its audit chain
dropped with the chain itself kept, so it still verifies and says who purged what, when."""

from __future__ import annotations

import time
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore
from pydantic import BaseModel

from orchestrator_graph.auditlog import ACTIVE_KEY, AuditLog, audit_key
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
