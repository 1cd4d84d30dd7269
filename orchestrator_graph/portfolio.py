"""The dashboard's portfolio page: recent runs at a glance, the team, and the learning curve."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from html import escape
from typing import Any

from orchestrator_graph import charts
from orchestrator_graph.dashboard import ON_TIME, _badge, _pct, _when, figures, kpi, page
from orchestrator_graph.observe import RunView

CAPACITY_TARGET = 0.75  # the capacity plan answers: what would make runs this much faster?


async def team_insights(memory: str, team: Sequence[Any]) -> tuple[list[Any], Any]:
    """The memory's recent run records and the optimizer's findings over them (with a capacity
    plan for runs a quarter faster than their mean); ``([], None)`` when the memory is empty or
    cannot be read (the page says so)."""
    from orchestrator_graph.insights import insights
    from orchestrator_graph.memory import MemoryHandle, MemoryUnavailable

    try:
        records = await MemoryHandle(memory).call("records", limit=200)
    except MemoryUnavailable:
        return [], None
    if not records or not team:
        return records, None
    mean = sum(r.makespan for r in records) / len(records)
    target = round(mean * CAPACITY_TARGET, 3) if mean > 0 else None
    found = await asyncio.to_thread(insights, records, list(team), {}, target=target)
    return records, found


def on_time(view: RunView) -> bool | None:
    f = figures(view)
    if not view.report or not f["planned"]:
        return None
    return f["makespan"] <= f["planned"] * ON_TIME


def headline(views: Sequence[RunView]) -> str:
    """One sentence an executive reads first: delivery, timeliness, what needs attention."""
    finished = [v for v in views if v.report]
    if not finished:
        return f"{len(views)} runs in progress; none finished yet."
    done = sum(v.state == "done" for v in finished)
    late = [figures(v)["makespan"] - figures(v)["planned"] for v in finished]
    timely = sum(bool(on_time(v)) for v in finished)
    parts = [
        f"{done} of {len(finished)} finished runs delivered in full",
        f"{timely} on time (runs took {sum(late) / len(late):+.2f} s against plan on average)",
    ]
    waiting = sum(bool(v.waiting) for v in views)
    running = sum(v.state == "running" for v in views)
    if waiting:
        parts.append(f"{waiting} waiting for a decision")
    if running:
        parts.append(f"{running} in progress")
    return "; ".join(parts) + "."


def portfolio_kpis(views: Sequence[RunView]) -> str:
    finished = [v for v in views if v.report]
    done = sum(v.state == "done" for v in finished)
    timely = [t for t in (on_time(v) for v in finished) if t is not None]
    quality = [f["quality"] for f in map(figures, finished) if f["quality"] is not None]
    live = sum(not v.finished for v in views)
    tiles = [
        kpi("runs", "Runs", f"{len(views)}", len(views), f"{live} in progress"),
        kpi(
            "success",
            "Delivered in full",
            _pct(done / len(finished)) if finished else "n/a",
            done,
            f"{done} of {len(finished)} finished",
        ),
        kpi(
            "on_time",
            "On time",
            _pct(sum(timely) / len(timely)) if timely else "n/a",
            sum(timely),
            "within 10% of the planned makespan",
        ),
        kpi(
            "quality",
            "Mean final QA score",
            f"{sum(quality) / len(quality):.2f}" if quality else "n/a",
            sum(quality) / len(quality) if quality else "",
        ),
        kpi("cost", "Cost", f"{sum(v.cost for v in views):,.2f}", sum(v.cost for v in views)),
        kpi(
            "tokens",
            "Model tokens",
            f"{sum(figures(v)['tokens'] for v in views):,}",
            sum(figures(v)["tokens"] for v in views),
        ),
    ]
    return f'<div class="kpis">{"".join(tiles)}</div>'


def runs_table(views: Sequence[RunView], link: bool) -> str:
    rows = []
    for v in views:
        f = figures(v)
        name = escape(v.request[:90] or v.run_id)
        if link:
            name = f'<a href="/dashboard/runs/{escape(v.thread_id)}">{name}</a>'
        rows.append(
            f"<tr><td>{_when(v.started_at)}</td><td>{name}</td><td>{_badge(v.state)}</td>"
            f"<td>{f['approved']} / {f['tasks']}</td>"
            f"<td>{f['makespan']:.2f} s / {f['planned']:.2f} s</td>"
            f"<td>{f['cost']:,.2f}</td><td>{f['tokens']:,}</td></tr>"
        )
    return (
        "<section><h2>Recent runs</h2><table><tr><th>started</th><th>request</th><th>status</th>"
        "<th>approved</th><th>makespan / plan</th><th>cost</th><th>tokens</th></tr>"
        f"{''.join(rows)}</table></section>"
    )


def trends(views: Sequence[RunView]) -> str:
    finished = sorted((v for v in views if v.report), key=lambda v: v.started_at or 0)
    if not finished:
        return ""
    labels = [f"{_when(v.started_at)[11:16]} {v.run_id[:4]}" for v in finished]
    rows = [{"label": lab, **figures(v)} for lab, v in zip(labels, finished, strict=True)]
    tokens: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(finished))
    models: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(finished))
    for i, v in enumerate(finished):
        for role, n in (v.report.tokens if v.report else {}).items():
            role = "worker" if role == "workers" else role
            tokens[role][i] += n
            models[(v.report.models if v.report else {}).get(role, "unknown")][i] += n
    cost = charts.bars_figure("Cost per run", labels, [v.cost for v in finished], "cost")
    by_role = charts.stacked_figure("Tokens by role", labels, tokens, "tokens")
    by_model = charts.stacked_figure("Tokens by model", labels, models, "tokens")
    return (
        f"<section>{charts.to_div(charts.runs_trend_figure(rows), 'trend-makespan')}</section>"
        '<div class="cols">'
        f"<section>{charts.to_div(by_role, 'trend-tokens-role')}</section>"
        f"<section>{charts.to_div(by_model, 'trend-tokens-model')}</section>"
        "</div>"
        f"<section>{charts.to_div(cost, 'trend-cost')}</section>"
    )


def team_section(views: Sequence[RunView], found: Any) -> str:
    attempts = [a for v in views for a in v.attempts]
    if not attempts:
        return ""
    span = sum(max(figures(v)["makespan"], 1e-9) for v in views if v.attempts)
    busy: dict[str, float] = defaultdict(float)
    for a in attempts:
        busy[a.worker] += a.seconds
    workers = sorted(busy, key=lambda w: -busy[w])
    util = charts.bars_figure(
        "Utilisation: share of run time each worker was busy",
        workers,
        [min(1.0, busy[w] / span) for w in workers],
        "busy share",
        percent=True,
    )
    per_skill: dict[str, list[bool]] = defaultdict(list)
    for a in attempts:
        for s in a.skills:
            per_skill[s].append(not a.failed)
    skills = sorted(per_skill)
    quality = charts.bars_figure(
        "Quality per skill: attempts that passed QA",
        skills,
        [sum(per_skill[s]) / len(per_skill[s]) for s in skills],
        "approved share",
        percent=True,
    )
    return (
        '<div class="cols">'
        f"<section>{charts.to_div(util, 'team-utilisation')}</section>"
        f"<section>{charts.to_div(quality, 'team-quality')}</section></div>" + plan_section(found)
    )


def plan_section(found: Any) -> str:
    if found is None:
        return (
            '<section><h2>Gaps and capacity plan</h2><p class="muted">No remembered runs yet: '
            "the plan memory fills as runs finish.</p></section>"
        )
    gaps = (
        "".join(
            f"<li><b>{escape(c.skill)}</b>: {escape(c.gap)} (pressure {c.pressure:.2f})</li>"
            for c in found.skills
            if c.gap
        )
        or "<li>No skill gap found.</li>"
    )
    cap = found.capacity
    plan = (
        f"<p>For runs {1 - CAPACITY_TARGET:.0%} faster (target {cap.target:.2f} s, now "
        f"{cap.current:.2f} s simulated on {cap.plans} remembered plans): "
        + (", ".join(f"add {n} × {escape(s)}" for s, n in cap.hires.items()) or "no hire needed")
        + f" → {cap.simulated:.2f} s{'' if cap.reached else ' (target not reached)'}.</p>"
        if cap
        else ""
    )
    advice = "".join(f"<li>{escape(r)}</li>" for r in found.recommendations)
    return (
        f"<section><h2>Gaps and capacity plan ({found.runs} remembered runs)</h2>"
        f"<ul>{gaps}</ul>{plan}<h2 style='margin-top:14px'>Recommendations</h2>"
        f"<ul>{advice}</ul></section>"
    )


def learning_section(records: Sequence[Any]) -> str:
    if len(records) < 2:
        return ""
    ordered = sorted(records, key=lambda r: r.at)
    rows = [
        {"planner_calls": r.planner_calls, "qa_failures": r.qa_failures, "makespan": r.makespan}
        for r in ordered
    ]
    fig = charts.learning_curve_figure({"remembered runs": rows})
    return f"<section>{charts.to_div(fig, 'learning-curve')}</section>"


def portfolio_page(
    views: Sequence[RunView],
    *,
    records: Sequence[Any] = (),
    found: Any = None,
    script_src: str | None = None,
) -> str:
    live = any(v.state == "running" for v in views)
    body = (
        f'<p style="font-size:18px;margin:4px 0 16px" id="headline">{escape(headline(views))}</p>'
        + portfolio_kpis(views)
        + "<div style='height:18px'></div>"
        + runs_table(views, link=bool(script_src))
        + trends(views)
        + "<h2 style='margin:26px 0 12px'>The team</h2>"
        + team_section(views, found)
        + learning_section(records)
    )
    subtitle = f"{len(views)} recent runs · generated {_when(time.time())}"
    return page(
        "Orchestrator portfolio",
        subtitle,
        body,
        script_src=script_src,
        refresh=live and bool(script_src),
    )
