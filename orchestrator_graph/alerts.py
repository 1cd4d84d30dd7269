"""Alert rules, evaluated by the package over the run views (for users without Prometheus), and
shipped as a Prometheus rules file (``orchestrator_graph/ops/alerts.rules.yml``) over the same
metrics with the same thresholds. Each alert names its runbook in ``docs/runbooks/``."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from orchestrator_graph.observe import RunView

RULES_FILE = Path(__file__).with_name("ops") / "alerts.rules.yml"
RUNBOOKS = "docs/runbooks"
ENV_PREFIX = "ORCHESTRATOR_GRAPH_ALERT_"


class Thresholds(BaseModel):
    """When each rule fires. The rules file uses the defaults; change both together."""

    stall_seconds: float = Field(300, description="a live run with no attempt finished this long")
    failing_share: float = Field(0.5, description="share of a worker's attempts that failed")
    failing_min_attempts: int = Field(3, description="attempts before a worker can be failing")
    escalation_wait_seconds: float = Field(600, description="a question unanswered this long")
    error_rate: float = Field(0.2, description="share of attempts that raised an error")
    error_min_attempts: int = Field(5, description="attempts before the error rate counts")

    @classmethod
    def from_env(cls) -> Thresholds:
        """Defaults, overridden by ``ORCHESTRATOR_GRAPH_ALERT_<FIELD>`` variables."""
        values = {
            name: os.environ[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if ENV_PREFIX + name.upper() in os.environ
        }
        return cls.model_validate(values)


class Alert(BaseModel):
    name: str
    severity: Literal["warning", "critical"]
    summary: str
    run_id: str | None = None
    thread_id: str | None = None
    worker: str | None = None
    value: float = 0.0
    runbook: str


def _alert(name: str, severity: str, summary: str, value: float, **labels: str | None) -> Alert:
    return Alert(
        name=name,
        severity=severity,
        summary=summary,
        value=round(value, 4),
        runbook=f"{RUNBOOKS}/{name}.md",
        **labels,
    )


def run_stalled(views: Sequence[RunView], t: Thresholds, now: float) -> list[Alert]:
    out = []
    for v in views:
        idle = now - v.last_progress()
        if v.state == "running" and idle > t.stall_seconds:
            summary = f"run {v.run_id} has finished no attempt for {idle:.0f}s"
            out.append(
                _alert(
                    "OrchestratorRunStalled",
                    "warning",
                    summary,
                    idle,
                    run_id=v.run_id,
                    thread_id=v.thread_id,
                )
            )
    return out


def worker_failing(views: Sequence[RunView], t: Thresholds, now: float) -> list[Alert]:
    total, failed = Counter[str](), Counter[str]()
    for a in (a for v in views for a in v.attempts):
        total[a.worker] += 1
        failed[a.worker] += a.failed
    out = []
    for worker in sorted(total):
        share = failed[worker] / total[worker]
        if total[worker] >= t.failing_min_attempts and share >= t.failing_share:
            summary = f"worker {worker} failed {failed[worker]} of {total[worker]} attempts"
            out.append(
                _alert("OrchestratorWorkerFailing", "warning", summary, share, worker=worker)
            )
    return out


def budget_exhausted(views: Sequence[RunView], t: Thresholds, now: float) -> list[Alert]:
    out = []
    for v in views:
        stops = [q for q in v.waiting if q.kind == "budget"]
        if stops:
            summary = f"run {v.run_id} stopped: {stops[0].reason}"
            out.append(
                _alert(
                    "OrchestratorBudgetExhausted",
                    "warning",
                    summary,
                    1,
                    run_id=v.run_id,
                    thread_id=v.thread_id,
                )
            )
    return out


def escalation_waiting(views: Sequence[RunView], t: Thresholds, now: float) -> list[Alert]:
    out = []
    for v in views:
        for q in v.waiting:
            waited = now - q.since
            if q.kind == "human" and waited > t.escalation_wait_seconds:
                summary = (
                    f"task {q.task_id} of run {v.run_id} has waited {waited / 60:.1f} min "
                    "for a human"
                )
                out.append(
                    _alert(
                        "OrchestratorEscalationWaiting",
                        "critical",
                        summary,
                        waited,
                        run_id=v.run_id,
                        thread_id=v.thread_id,
                    )
                )
    return out


def error_rate(views: Sequence[RunView], t: Thresholds, now: float) -> list[Alert]:
    attempts = [a for v in views for a in v.attempts]
    errors = sum(a.error is not None for a in attempts)
    if len(attempts) < t.error_min_attempts or errors / len(attempts) < t.error_rate:
        return []
    share = errors / len(attempts)
    summary = f"{errors} of {len(attempts)} attempts raised an error ({share:.0%})"
    return [_alert("OrchestratorHighErrorRate", "critical", summary, share)]


def memory_unavailable(views: Sequence[RunView], t: Thresholds, now: float) -> list[Alert]:
    known = [v for v in sorted(views, key=lambda v: v.updated_at) if v.memory_ok is not None]
    if not known or known[-1].memory_ok:
        return []
    v = known[-1]
    note = (v.report.memory if v.report else "") or v.memory_note
    return [
        _alert(
            "OrchestratorMemoryUnavailable",
            "warning",
            note,
            0,
            run_id=v.run_id,
            thread_id=v.thread_id,
        )
    ]


Rule = Callable[[Sequence[RunView], Thresholds, float], list[Alert]]
RULES: dict[str, Rule] = {
    "OrchestratorRunStalled": run_stalled,
    "OrchestratorWorkerFailing": worker_failing,
    "OrchestratorBudgetExhausted": budget_exhausted,
    "OrchestratorEscalationWaiting": escalation_waiting,
    "OrchestratorHighErrorRate": error_rate,
    "OrchestratorMemoryUnavailable": memory_unavailable,
}


def evaluate(
    views: Sequence[RunView], thresholds: Thresholds | None = None, now: float | None = None
) -> list[Alert]:
    """Every alert that fires on these runs now."""
    t = thresholds or Thresholds()
    at = time.time() if now is None else now
    return [alert for rule in RULES.values() for alert in rule(views, t, at)]
