"""Prometheus metrics, derived at scrape time from the run views (``observe``): the run reports,
the ledger, the live status snapshots. Nothing in the dispatcher counts anything for them.

Counters are sums over the runs the source returns (the newest ``RECENT`` threads by default),
so they count what the reports and the ledger hold, and restart lower when old runs drop out of
that window; Prometheus' ``rate``/``increase`` treat that as a counter reset."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from orchestrator_graph.observe import RunView

PREFIX = "orchestrator"
TOKEN_ROLES = {"workers": "worker"}  # report token keys -> model roles


def _family(kind: str, name: str, doc: str, labels: Sequence[str]) -> Any:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        SummaryMetricFamily,
    )

    cls = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily}.get(kind)
    if cls is None:
        return SummaryMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))
    return cls(f"{PREFIX}_{name}", doc, labels=list(labels))


def _counted(kind: str, name: str, doc: str, labels: Sequence[str], counts: dict) -> Any:
    family = _family(kind, name, doc, labels)
    for key, value in sorted(counts.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


def _task_statuses(view: RunView) -> dict[str, str]:
    if view.report:
        return {t: r.status for t, r in view.report.tasks.items() if r.counts}
    if view.snapshot and view.snapshot.tasks:
        return dict(view.snapshot.tasks)
    return {t: r.status for t, r in view.tasks.items() if r.counts}


def run_families(views: Sequence[RunView]) -> Iterator[Any]:
    finished = Counter(v.state for v in views if v.finished)
    yield _counted("counter", "runs", "Finished runs by status.", ["status"], finished)
    active = Counter({"running": 0, "waiting": 0, "error": 0})
    active.update(v.state for v in views if not v.finished)
    yield _counted("gauge", "runs_active", "Runs not finished, by state.", ["state"], active)
    tasks = Counter(s for v in views for s in _task_statuses(v).values())
    yield _counted(
        "gauge", "tasks", "Tasks of the runs by status (live while running).", ["status"], tasks
    )
    budget = Counter(
        {
            "stops": sum(
                v.state == "stopped" or any(q.kind == "budget" for q in v.waiting) for v in views
            )
        }
    )
    yield _counted(
        "counter", "budget_stops", "Runs stopped by a spent budget.", [], {(): budget["stops"]}
    )
    makespan = _family("gauge", "run_makespan_seconds", "Makespan of a finished run.", ["run_id"])
    planned = _family("gauge", "run_planned_makespan_seconds", "Planned makespan.", ["run_id"])
    for v in views:
        if v.report:
            makespan.add_metric([v.run_id], v.report.makespan)
        plan = v.schedule.makespan if v.schedule else v.planned_makespan
        if plan is not None:
            planned.add_metric([v.run_id], plan)
    yield makespan
    yield planned
    yield from live_families([v for v in views if not v.finished])


def live_families(running: Sequence[RunView], now: float | None = None) -> Iterator[Any]:
    now = time.time() if now is None else now
    idle = _family(
        "gauge",
        "run_seconds_since_progress",
        "Seconds since a live run's last finished attempt.",
        ["run_id"],
    )
    eta = _family(
        "gauge", "run_eta_seconds", "Estimated seconds to the end of a live run.", ["run_id"]
    )
    slip = _family("gauge", "run_slip_seconds", "Critical-path slip of a live run.", ["run_id"])
    wait = _family(
        "gauge",
        "escalation_wait_seconds",
        "How long a question has waited for an answer.",
        ["run_id", "kind", "task_id"],
    )
    for v in running:
        if v.state == "running":
            idle.add_metric([v.run_id], round(now - v.last_progress(), 3))
        if v.snapshot and v.state == "running":
            if v.snapshot.eta is not None:
                eta.add_metric([v.run_id], v.snapshot.eta)
            slip.add_metric([v.run_id], v.snapshot.critical_path_slip)
        for q in v.waiting:
            wait.add_metric([v.run_id, q.kind, q.task_id or ""], round(now - q.since, 3))
    yield from (idle, eta, slip, wait)


def attempt_families(views: Sequence[RunView]) -> Iterator[Any]:
    attempts = [a for v in views for a in v.attempts]
    outcome = Counter(
        (a.worker, "error" if a.error else "approved" if a.verdict == "approve" else "rejected")
        for a in attempts
    )
    yield _counted(
        "counter",
        "attempts",
        "Finished attempts by worker and outcome.",
        ["worker", "outcome"],
        outcome,
    )
    verdicts = Counter((a.verdict, a.reviewer) for a in attempts)
    yield _counted(
        "counter",
        "qa_verdicts",
        "QA verdicts by verdict and reviewer.",
        ["verdict", "reviewer"],
        verdicts,
    )
    busy: dict[str, float] = defaultdict(float)
    for a in attempts:
        busy[a.worker] += a.seconds
    duration = _family("summary", "attempt_seconds", "Attempt durations by worker.", ["worker"])
    for worker, seconds in sorted(busy.items()):
        count = sum(1 for a in attempts if a.worker == worker)
        duration.add_metric([worker], count_value=count, sum_value=round(seconds, 4))
    yield duration
    per_skill = Counter(
        (s, "approved" if not a.failed else "failed") for a in attempts for s in a.skills
    )
    yield _counted(
        "counter",
        "skill_attempts",
        "Finished attempts by skill and outcome.",
        ["skill", "outcome"],
        per_skill,
    )


def usage_families(views: Sequence[RunView]) -> Iterator[Any]:
    tokens: Counter[tuple[str, str]] = Counter()
    for v in views:
        if v.report:
            for key, n in v.report.tokens.items():
                role = TOKEN_ROLES.get(key, key)
                tokens[(role, v.report.models.get(role, "unknown"))] += n
        else:
            tokens[("worker", "unknown")] += sum(a.tokens for a in v.attempts)
            tokens[("reviewer", "unknown")] += sum(a.review_tokens for a in v.attempts)
    yield _counted(
        "counter", "tokens", "Model tokens by role and model.", ["role", "model"], +tokens
    )
    cost = _family("counter", "cost", "Workers' cost per attempt, summed.", [])
    cost.add_metric([], round(sum(v.cost for v in views), 6))
    yield cost
    run_cost = _family("gauge", "run_cost", "Cost of a run so far.", ["run_id"])
    for v in views:
        run_cost.add_metric([v.run_id], v.cost)
    yield run_cost


def flow_families(views: Sequence[RunView]) -> Iterator[Any]:
    decisions = Counter((d.by, d.action) for v in views if v.report for d in v.report.decisions)
    yield _counted(
        "counter",
        "escalations",
        "Escalations settled, by who and how.",
        ["by", "action"],
        decisions,
    )
    waiting = Counter({"human": 0, "budget": 0})
    waiting.update(q.kind for v in views for q in v.waiting)
    yield _counted(
        "gauge", "questions_waiting", "Questions waiting for an answer.", ["kind"], waiting
    )
    bottlenecks = Counter(b.kind for v in views if v.report for b in v.report.bottlenecks)
    yield _counted("counter", "bottlenecks", "Bottlenecks found, by kind.", ["kind"], bottlenecks)
    conflicts = Counter(
        (c.kind, c.mechanism) for v in views if v.report for c in v.report.conflicts
    )
    yield _counted(
        "counter",
        "conflicts",
        "Conflicts settled, by kind and mechanism.",
        ["kind", "mechanism"],
        conflicts,
    )
    wait = _family(
        "summary", "queue_wait_seconds", "Seconds tasks waited for a worker, by skill.", ["skill"]
    )
    waits: dict[str, list[float]] = defaultdict(list)
    skills = {a.task_id: a.skills for v in views for a in v.attempts}
    for v in views:
        for tid, rec in (v.report.tasks if v.report else v.tasks).items():
            if rec.queued_at is not None and rec.started_at is not None:
                for skill in skills.get(tid, []):
                    waits[skill].append(max(0.0, rec.started_at - rec.queued_at))
    for skill, seconds in sorted(waits.items()):
        wait.add_metric([skill], count_value=len(seconds), sum_value=round(sum(seconds), 4))
    yield wait


def load_families(views: Sequence[RunView]) -> Iterator[Any]:
    """Utilisation per worker and per skill from the newest status snapshot (a live run's first)."""
    snaps = [v.snapshot for v in views if v.snapshot and v.state == "running"]
    snaps = snaps or [v.snapshot for v in views if v.snapshot]
    workers = _family(
        "gauge", "worker_utilisation", "Share of a worker's capacity in use.", ["worker"]
    )
    skills = _family("gauge", "skill_utilisation", "Share of a skill's slots in use.", ["skill"])
    oldest = _family("gauge", "skill_oldest_wait_seconds", "Oldest wait for a skill.", ["skill"])
    if snaps:
        newest = max(snaps, key=lambda s: s.at)
        for name, load in sorted(newest.workers.items()):
            workers.add_metric([name], load.utilisation)
        for name, skill in sorted(newest.skills.items()):
            skills.add_metric([name], skill.utilisation)
            oldest.add_metric([name], skill.oldest_wait)
    yield from (workers, skills, oldest)


def memory_families(views: Sequence[RunView]) -> Iterator[Any]:
    hits = _family(
        "counter", "memory_recall_hits", "Runs for which the memory found similar runs.", []
    )
    hits.add_metric([], sum(v.recalled > 0 for v in views))
    recalled = _family("counter", "memory_recalled_runs", "Similar past runs recalled.", [])
    recalled.add_metric([], sum(v.recalled for v in views))
    reused = _family("counter", "plans_reused", "Runs that reused a recalled plan.", [])
    reused.add_metric([], sum(v.plan_source == "recalled" for v in views))
    yield from (hits, recalled, reused)
    known = [v for v in sorted(views, key=lambda v: v.updated_at) if v.memory_ok is not None]
    if known:
        up = _family("gauge", "memory_available", "1 when the newest run could use the memory.", [])
        up.add_metric([], 1.0 if known[-1].memory_ok else 0.0)
        yield up


def families(views: Sequence[RunView]) -> Iterable[Any]:
    for make in (
        run_families,
        attempt_families,
        usage_families,
        flow_families,
        load_families,
        memory_families,
    ):
        yield from make(views)


class RunCollector:
    """A prometheus_client collector over the latest views; ``update`` swaps them in."""

    def __init__(self, views: Sequence[RunView] = ()) -> None:
        self.views = list(views)

    def update(self, views: Sequence[RunView]) -> None:
        self.views = list(views)

    def collect(self) -> Iterator[Any]:
        yield from families(self.views)

    def describe(self) -> list[Any]:
        return []  # families depend on the data: no fixed description, no collision checks


def exposition(views: Sequence[RunView]) -> bytes:
    """The Prometheus text format for these views (what ``/metrics`` serves)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(views))
    return generate_latest(registry)
