"""Threads as the command line sees them: what is stored for one (state, live snapshot, ledger,
planned schedule), which process drives it, and whether it runs, waits, finished or was
interrupted (its process died)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator_graph.errors import DamagedStoreError, InputError

if TYPE_CHECKING:
    from orchestrator_graph.models import Schedule, Slot, StatusSnapshot


def owner() -> dict[str, Any]:
    import socket
    import time

    return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}


def alive(owner: dict[str, Any] | None) -> bool | None:
    """Whether the process that drives a thread still runs (``None``: not known here)."""
    import socket

    if not owner or owner.get("host") != socket.gethostname():
        return None
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, KeyError, TypeError):
        return None
    return True


@dataclass
class Inspection:
    """A thread as stored: its state, the newest status snapshot (the store's, written while the
    dispatcher runs, or the state's), the attempts recorded so far as Gantt bars, the planned
    schedule, finished attempts per task, and the process that drives it (if any)."""

    snapshot: Any
    live: StatusSnapshot | None
    actual: list[Slot]
    schedule: Schedule | None
    attempts: dict[str, int]
    owner: dict[str, Any] | None
    children: list[dict[str, Any]] = field(default_factory=list)
    """Child orchestrators its team leads ran, each with its own (``hierarchy.tree``)."""


async def inspect_thread(thread: str, home: str | None, postgres: str | None) -> Inspection:
    from orchestrator_graph.graph import create_orchestrator
    from orchestrator_graph.hierarchy import tree
    from orchestrator_graph.ledger import THREAD_OWNERS, Ledger, load_schedule, read_status
    from orchestrator_graph.models import StatusSnapshot
    from orchestrator_graph.persistence import open_persistence
    from orchestrator_graph.schedule import actual_slots

    async with open_persistence(home, postgres) as (saver, store):
        graph = create_orchestrator().compile(checkpointer=saver, store=store)
        snapshot = await graph.aget_state({"configurable": {"thread_id": thread}})
        if not snapshot.values:
            raise InputError(f"no thread {thread!r} in this data folder")
        values = snapshot.values
        run_id = values.get("run_id") or ""
        stored = await read_status(store, run_id) if run_id else None
        attempts = await Ledger(store, run_id).attempts() if run_id else []
        schedule = await load_schedule(store, run_id) if run_id else None
        driver = await store.aget(THREAD_OWNERS, thread)
        children = await tree(store, run_id)
    kept = StatusSnapshot.model_validate(values["status"]) if values.get("status") else None
    newest = max((s for s in (stored, kept) if s), key=lambda s: s.at, default=None)
    since = values.get("executing_since") or values.get("started_at") or 0.0
    counts: dict[str, int] = {}
    for result, _review in attempts:
        counts[result.task_id] = counts.get(result.task_id, 0) + 1
    return Inspection(
        snapshot,
        newest,
        actual_slots(attempts, since),
        schedule,
        counts,
        driver.value if driver else None,
        children,
    )


STALE_AFTER = 30.0  # seconds without a status snapshot before a run nobody owns counts as dead


def thread_status(found: Inspection) -> str:
    """done/partial/failed/stopped from the report; waiting; running while its process lives;
    interrupted when the process that drove it is gone (resume it)."""
    import time

    values = found.snapshot.values
    if values.get("report"):
        return values["report"]["status"]
    if any(t.interrupts for t in found.snapshot.tasks):
        return "waiting"
    running = alive(found.owner)
    if running is None:  # not started from this machine's CLI: judge by the live snapshot's age
        running = bool(found.live and time.time() - found.live.at < STALE_AFTER)
    return "running" if running else "interrupted"


def task_rows(found: Inspection) -> dict[str, dict[str, Any]]:
    """Each task as the checkpoint has it, updated from the live snapshot (written while the
    dispatcher's step runs, long before its checkpoint) and the ledger's attempts."""
    values = found.snapshot.values
    live = found.live.tasks if found.live and not values.get("report") else {}
    rows = {}
    for tid, rec in (values.get("tasks") or {}).items():
        rows[tid] = {
            **rec,
            "status": live.get(tid, rec["status"]),
            "attempts": max(rec.get("attempts", 0), found.attempts.get(tid, 0)),
        }
    return rows


def check_ledger(thread: str, found: Inspection) -> None:
    """The checkpoints count attempts the store must hold: fewer in the store means it was
    emptied, replaced or damaged, and an audit from it would silently leave entries out."""
    tasks = found.snapshot.values.get("tasks") or {}
    recorded = sum(min(r.get("attempts", 0), 1) for r in tasks.values())
    stored = sum(1 for t in tasks if found.attempts.get(t))
    if stored < recorded:
        raise DamagedStoreError(
            f"the store has no ledger entries for {recorded - stored} of the {recorded} tasks "
            f"thread {thread} ran: store.db was emptied, replaced or damaged; restore it from "
            "a backup (or pass the --home/--postgres the run used)"
        )
