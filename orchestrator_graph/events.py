"""Typed progress events, written to LangGraph's ``custom`` stream by every node."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

EventKind = Literal[
    "run_started",
    "recalled",
    "planned",
    "task_queued",
    "task_started",
    "task_completed",
    "task_failed",
    "qa_verdict",
    "reassigned",
    "deadline_risk",
    "bottleneck",
    "simplified",
    "replanned",
    "budget",
    "status",
    "escalated",
    "conflict",
    "decision",
    "progress",
    "synthesized",
    "final_review",
    "learned",
]


class Event(BaseModel):
    """``node`` is the graph node that emitted the event (``review`` for a result's review inside
    an attempt); ``role`` the model role whose work it reports, when one did the work."""

    kind: EventKind
    node: str
    role: str | None = None
    task_id: str | None = None
    worker: str | None = None
    attempt: int | None = None
    message: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    at: float = Field(default_factory=time.time)


Emit = Callable[[Event], None]


class StreamEmit:
    """Events go out as plain dicts with ``"event": "orchestrator"`` so consumers can filter,
    redacted (they reach logs, streams and the server's clients)."""

    def __init__(self, writer: Callable[[Any], None] | None) -> None:
        from orchestrator_graph.protection.redact import default_redactor

        self.writer, self.redactor = writer, default_redactor()

    def __call__(self, event: Event) -> None:
        if self.writer is not None:
            dumped = self.redactor.value(event.model_dump(mode="json"))
            self.writer({"event": "orchestrator", **dumped})

    def relay(self, event: dict[str, Any]) -> None:
        """An event as another run's ``StreamEmit`` wrote it (a child orchestrator's, already
        redacted there), passed on as it is."""
        if self.writer is not None:
            self.writer(event)


def stream_emitter(writer: Callable[[Any], None] | None) -> Emit:
    return StreamEmit(writer)
