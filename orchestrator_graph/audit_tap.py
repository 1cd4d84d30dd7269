"""Assignments chained as the dispatcher makes them: its ``task_started`` events (which carry
why the worker was chosen) are held here and chained before the attempt they start runs, so a
run stopped mid-way (a human escalation, a spent budget, a crash) already has them."""

from __future__ import annotations

from langgraph.store.base import BaseStore

from orchestrator_graph.auditlog import AuditLog, ChainEvent, assignment_event, run_key
from orchestrator_graph.events import Emit, Event


class AssignmentTap:
    def __init__(self) -> None:
        self.pending: list[ChainEvent] = []

    def wrap(self, emit: Emit) -> Emit:
        def tapped(event: Event) -> None:
            if event.kind == "task_started" and event.task_id and event.worker:
                # as JSON: the chain hashes and stores the payload as it is
                reasons = event.model_dump(mode="json", include={"data"})["data"].get("assignment")
                self.pending.append(assignment_event(event.task_id, event.worker, reasons))
            emit(event)

        return tapped

    async def flush(self, store: BaseStore, run_id: str) -> None:
        events, self.pending = self.pending, []
        if events:
            await AuditLog(store, run_id, await run_key()).append(events)
