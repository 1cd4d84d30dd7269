"""Working hours: when a worker takes work, in its own time zone (``zoneinfo``). A worker
outside its hours is not assigned; the planned schedule and the ETA start its tasks when its
window opens, and the dispatcher waits for the window when nothing else can run."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from orchestrator_graph.dispatch.board import TaskBoard
    from orchestrator_graph.workers import Worker

WEEK = range(7)
MAX_NAP = 60.0  # seconds the dispatcher sleeps for a window before it looks again


class WorkingHours(BaseModel):
    """A daily window ``start``–``end`` (local time; ``end`` before ``start`` runs past
    midnight) on ``days`` (0 = Monday, the day the window starts)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field(description="IANA time zone, e.g. Europe/Berlin")
    start: dt.time = Field(description="local time the window opens, e.g. 09:00")
    end: dt.time = Field(description="local time it closes, e.g. 17:30")
    days: tuple[int, ...] = Field((0, 1, 2, 3, 4, 5, 6), description="0 = Monday … 6 = Sunday")

    @field_validator("timezone")
    @classmethod
    def _known(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    @field_validator("days")
    @classmethod
    def _weekdays(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(d not in WEEK for d in value):
            raise ValueError("days: give weekdays 0 (Monday) to 6 (Sunday)")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> WorkingHours:
        if self.start == self.end:
            raise ValueError("start and end are the same time: an empty window")
        return self

    def _windows(self, when: float) -> list[tuple[float, float]]:
        """The windows (epoch seconds) that start from yesterday to a week ahead of ``when``."""
        zone = ZoneInfo(self.timezone)
        today = dt.datetime.fromtimestamp(when, zone).date()
        out = []
        for offset in range(-1, 8):
            day = today + dt.timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            opens = dt.datetime.combine(day, self.start, zone)
            closes = dt.datetime.combine(day, self.end, zone)
            if closes <= opens:
                closes += dt.timedelta(days=1)
            out.append((opens.timestamp(), closes.timestamp()))
        return out

    def open_at(self, when: float) -> bool:
        return any(a <= when < b for a, b in self._windows(when))

    def next_open(self, when: float) -> float:
        """``when`` itself within a window, else when the next window opens."""
        if self.open_at(when):
            return when
        return min(a for a, _ in self._windows(when) if a > when)


def available_from(worker: Worker, when: float) -> float:
    """The first moment from ``when`` (epoch seconds) the worker takes work."""
    return when if worker.hours is None else worker.hours.next_open(when)


def next_window(board: TaskBoard, now: float) -> float | None:
    """When the dispatcher, with nothing running, should look again: the soonest opening of
    an off-hours worker able to do a ready task (capped at ``MAX_NAP`` from now); ``None`` when
    no ready task waits for anyone's hours."""
    from orchestrator_graph.dispatch.board import OPEN

    registry = board.registry
    asleep = [
        w
        for w in registry.workers()
        if registry.status(w.name) in ("available", "busy") and not w.available(now)
    ]
    if not asleep:
        return None
    ready = [
        board.tasks[tid]
        for tid, rec in board.records.items()
        if rec.status in OPEN and board.unmet.get(tid, 1) == 0
    ]
    opens = [available_from(w, now) for w in asleep if any(w.can_do(t) for t in ready)]
    return min(min(opens), now + MAX_NAP) if opens else None
