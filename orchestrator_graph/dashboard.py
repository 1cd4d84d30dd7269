"""The executive dashboard: HTML pages over the run views (``observe``) with plotly charts.

- the **portfolio** of recent runs: status, on-time rate, quality, cost and tokens, trends;
- one **page per run**: headline figures, what happened (bottlenecks and the responses,
  conflicts and decisions), the planned-vs-actual Gantt chart, QA outcomes, the deliverable;
- the **team**: utilisation, quality per skill, gaps and the capacity plan (``insights``);
- the **learning curve** from the plan memory.

Served live by the server's custom app (a running run's page reloads itself every few seconds)
and exported as one self-contained file (plotly.js inlined: no CDN, opens offline)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from functools import cache
from html import escape
from pathlib import Path
from typing import Any

from orchestrator_graph import charts
from orchestrator_graph.models import Slot
from orchestrator_graph.observe import RunView

REFRESH_SECONDS = 2
SECTIONS = 5  # deliverable sections shown in full; the rest are counted
ON_TIME = 1.1  # a run is on time when its makespan is within 10% of its planned makespan
CSS = """
body{font-family:Inter,Segoe UI,Helvetica,Arial,sans-serif;margin:0;background:#f4f6f8;
color:#212529}
header{background:#1b2a41;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px;font-weight:600} header p{margin:4px 0 0;color:#c5d0de}
header a{color:#c5d0de}
main{padding:20px 32px;max-width:1400px;margin:auto}
section{background:#fff;border-radius:10px;padding:18px 22px;margin-bottom:18px;
box-shadow:0 1px 3px rgba(0,0,0,.08)}
h2{font-size:17px;margin:0 0 12px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px}
.kpi{background:#fff;border-radius:10px;padding:14px 18px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.kpi .label{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:#6c757d}
.kpi .value{font-size:28px;font-weight:600;margin-top:4px} .kpi .sub{font-size:13px;color:#6c757d}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-size:13px;font-weight:600}
.done{background:#d3f9d8;color:#2b8a3e} .partial,.waiting{background:#fff3bf;color:#8f6a00}
.failed,.stopped,.error{background:#ffe3e3;color:#c92a2a} .running{background:#d0ebff;color:#1864ab}
table{border-collapse:collapse;width:100%;font-size:14px}
th{text-align:left;color:#6c757d;font-weight:600;border-bottom:2px solid #dee2e6;padding:6px 8px}
td{border-bottom:1px solid #f1f3f5;padding:6px 8px;vertical-align:top}
ul{margin:0;padding-left:20px} li{margin:4px 0}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:18px}
.muted{color:#6c757d} .deliverable h3{font-size:15px;margin:14px 0 4px}
"""


@cache
def plotly_script() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def page(title: str, subtitle: str, body: str, *, script_src: str | None, refresh: bool) -> str:
    """A whole page; plotly.js from ``script_src`` (the server) or inlined (an export)."""
    script = (
        f'<script src="{escape(script_src)}"></script>'
        if script_src
        else f"<script>{plotly_script()}</script>"
    )
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{meta}'
        f'<link rel="icon" href="data:,"><title>{escape(title)}</title>'
        f"<style>{CSS}</style>{script}</head><body>"
        f'<header><h1 id="title">{escape(title)}</h1><p id="subtitle">{subtitle}</p></header>'
        f"<main>{body}</main></body></html>"
    )


def kpi(key: str, label: str, display: str, value: Any, sub: str = "") -> str:
    return (
        f'<div class="kpi" data-kpi="{key}" data-value="{escape(str(value))}">'
        f'<div class="label">{escape(label)}</div><div class="value">{escape(display)}</div>'
        f'<div class="sub">{sub}</div></div>'
    )


def figures(view: RunView) -> dict[str, Any]:
    """The headline numbers of a run: the report's when it finished, the live ones before."""
    r = view.report
    if r:
        counting = [t for t in r.tasks.values() if t.counts]
        counted, approved = len(counting), sum(t.status == "approved" for t in counting)
        tokens = sum(r.tokens.values())
        makespan, planned = r.makespan, (r.schedule.makespan if r.schedule else r.planned_duration)
        quality = r.final_review.score if r.final_review else None
    else:
        statuses = (view.snapshot.tasks if view.snapshot else {}) or {
            t: rec.status for t, rec in view.tasks.items()
        }
        counted, approved = len(statuses), sum(s == "approved" for s in statuses.values())
        tokens = sum(a.tokens + a.review_tokens for a in view.attempts)
        makespan = view.snapshot.elapsed if view.snapshot else 0.0
        planned, quality = view.planned_makespan or 0.0, None
    first_pass = _first_pass(view)
    return {
        "approved": approved,
        "tasks": counted,
        "makespan": makespan,
        "planned": planned or 0.0,
        "cost": view.cost,
        "tokens": tokens,
        "quality": quality,
        "first_pass": first_pass,
        "attempts": len(view.attempts),
    }


def _first_pass(view: RunView) -> float | None:
    firsts = [a for a in view.attempts if a.attempt == 1]
    return sum(not a.failed for a in firsts) / len(firsts) if firsts else None


STATUS_CSS = {"approved": "done", "rejected": "failed", "skipped": "stopped", "pending": "waiting"}


def _badge(state: str, css: str | None = None) -> str:
    return f'<span class="badge {escape(css or state)}">{escape(state)}</span>'


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def run_kpis(view: RunView) -> str:
    f = figures(view)
    late = f["makespan"] - f["planned"]
    vs = (
        f"plan {f['planned']:.2f} s ({'+' if late >= 0 else ''}{late:.2f} s)"
        if f["planned"] and view.report
        else f"plan {f['planned']:.2f} s"
        if f["planned"]
        else ""
    )
    tiles = [
        kpi(
            "status",
            "Status",
            view.state,
            view.state,
            escape(view.report.reason if view.report else ""),
        ),
        kpi("approved", "Tasks approved", f"{f['approved']} / {f['tasks']}", f["approved"]),
        kpi(
            "makespan",
            "Makespan" if view.report else "Elapsed",
            f"{f['makespan']:.2f} s",
            f["makespan"],
            vs,
        ),
        kpi("cost", "Cost", f"{f['cost']:,.2f}", f["cost"], f"{f['attempts']} attempts"),
        kpi("tokens", "Model tokens", f"{f['tokens']:,}", f["tokens"]),
        kpi(
            "first_pass",
            "First-pass QA",
            _pct(f["first_pass"]),
            f["first_pass"],
            "attempts approved first time",
        ),
    ]
    if view.snapshot and view.state == "running":
        eta = view.snapshot.eta
        tiles.append(
            kpi(
                "eta",
                "ETA",
                "n/a" if eta is None else f"{eta:.1f} s",
                eta,
                f"slip {view.snapshot.critical_path_slip:.2f} s",
            )
        )
    return f'<div class="kpis">{"".join(tiles)}</div>'


def actual_slots(view: RunView) -> list[Slot]:
    if view.report and view.report.actual:
        return list(view.report.actual)
    since = view.executing_since or view.started_at or 0.0
    return [
        Slot(
            task_id=a.task_id,
            worker=a.worker,
            start=round(a.started_at - since, 4),
            finish=round(a.finished_at - since, 4),
            attempt=a.attempt,
            verdict=a.verdict,
        )
        for a in view.attempts
    ]


def _li(title: str, *parts: str) -> str:
    return f"<li><b>{escape(title)}</b>: {' '.join(escape(p) for p in parts)}</li>"


def happened(view: RunView) -> str:
    """Bottlenecks and what was done about them; conflicts and decisions; re-plans; questions."""
    r = view.report
    items = []
    bottlenecks = r.bottlenecks if r else (view.snapshot.bottlenecks if view.snapshot else [])
    for b in bottlenecks:
        items.append(_li(f"Bottleneck ({b.kind})", f"{b.detail}.", f"Response: {b.response}."))
    for c in r.conflicts if r else []:
        what = f"Conflict ({c.kind.replace('_', ' ')})"
        items.append(_li(what, c.detail, f"— settled by {c.mechanism}: {c.resolution}"))
    for d in r.decisions if r else []:
        items.append(_li(f"Decision on {d.task_id}", f"{d.action} by {d.by} — {d.reason}"))
    for p in r.replans if r else []:
        items.append(_li(f"Re-plan after {p.failed}", p.reason))
    for q in view.waiting:
        who = "a budget raise" if q.kind == "budget" else "a human"
        items.append(_li(f"Waiting for {who}", q.task_id or "", q.reason))
    body = (
        f"<ul>{''.join(items)}</ul>"
        if items
        else '<p class="muted">Nothing needed attention: no bottleneck, conflict or escalation.</p>'
    )
    return f"<section><h2>What happened and what was done</h2>{body}</section>"


def qa_table(view: RunView) -> str:
    per_task: dict[str, list[Any]] = defaultdict(list)
    for a in view.attempts:
        per_task[a.task_id].append(a)
    records = view.report.tasks if view.report else view.tasks
    live = view.snapshot.tasks if view.snapshot and not view.report else {}
    rows = []
    for tid in sorted(set(records) | set(per_task)):
        rec, tries = records.get(tid), per_task.get(tid, [])
        verdicts = " → ".join(("✔" if not a.failed else "✘") + f" {a.worker}" for a in tries)
        score = "" if not rec or rec.score is None else f"{rec.score:.2f}"
        status = live.get(tid) or (rec.status if rec else "running")
        rows.append(
            f"<tr><td>{escape(tid)}</td><td>{_badge(status, STATUS_CSS.get(status, status))}</td>"
            f"<td>{escape(verdicts)}</td><td>{score}</td></tr>"
        )
    head = "<tr><th>task</th><th>status</th><th>attempts (QA verdict, worker)</th><th>score</th>"
    return (
        "<section><h2>Quality assurance: every task, every attempt</h2>"
        f"<table>{head}</tr>{''.join(rows)}</table></section>"
    )


def deliverable(view: RunView) -> str:
    d = view.report.deliverable if view.report else None
    if d is None or view.report is None:
        return ""
    shown = d.sections[:SECTIONS]
    sections = "".join(f"<h3>{escape(s.heading)}</h3><p>{escape(s.body[:800])}</p>" for s in shown)
    if len(d.sections) > SECTIONS:
        sections += f'<p class="muted">… and {len(d.sections) - SECTIONS} more sections</p>'
    review = view.report.final_review
    verdict = f" — final review: {escape(review.verdict)} ({review.score:.2f})" if review else ""
    return (
        f'<section class="deliverable"><h2>Deliverable: {escape(d.title)}{verdict}</h2>'
        f"<p>{escape(d.summary)}</p>{sections}</section>"
    )


def run_gantt(view: RunView) -> Any:
    planned = view.schedule.planned if view.schedule else []
    title = "Planned vs actual schedule (outlined: critical path)"
    return charts.gantt_figure(
        planned, actual_slots(view), critical=view.critical_path, title=title
    )


def run_parts(view: RunView) -> dict[str, str]:
    """The parts of a run's page that change while it runs (the live page swaps them in)."""
    return {
        "kpis": run_kpis(view),
        "happened": happened(view),
        "qa": qa_table(view),
        "deliverable": deliverable(view),
    }


def run_title(view: RunView, served: bool) -> tuple[str, str]:
    subtitle = (
        f"{_badge(view.state)} run {escape(view.run_id)} · thread {escape(view.thread_id)}"
        f" · {_when(view.started_at)}"
    )
    if served:
        subtitle += ' · <a href="/dashboard">portfolio</a>'
    return view.request[:120] or view.run_id, subtitle


def live_update(view: RunView) -> dict[str, Any]:
    """What the live page fetches every few seconds: its changing parts and the Gantt figure."""
    import json

    title, subtitle = run_title(view, served=True)
    gantt = json.loads(run_gantt(view).to_json())
    return {
        "state": view.state,
        "title": title,
        "subtitle": subtitle,
        **run_parts(view),
        "gantt": gantt,
    }


LIVE_SCRIPT = """<script>
(() => {
  const url = location.pathname.replace(/\\/$/, "") + "/live";
  const tick = async () => {
    const r = await fetch(url, {cache: "no-store"});
    if (!r.ok) return setTimeout(tick, %(ms)d);
    const u = await r.json();
    for (const k of ["kpis", "happened", "qa", "deliverable"])
      document.getElementById("run-" + k).innerHTML = u[k];
    document.getElementById("title").textContent = u.title;
    document.getElementById("subtitle").innerHTML = u.subtitle;
    const gantt = document.getElementById("gantt");
    gantt.style.height = gantt.parentElement.style.height = u.gantt.layout.height + "px";
    await Plotly.react(gantt, u.gantt.data, u.gantt.layout);
    document.body.dataset.state = u.state;
    if (u.state === "running") setTimeout(tick, %(ms)d);
  };
  setTimeout(tick, %(ms)d);
})();
</script>"""


def run_body(view: RunView, live: bool = False) -> str:
    parts = run_parts(view)
    return (
        f'<div id="run-kpis">{parts["kpis"]}</div>'
        "<div style='height:18px'></div>"
        f'<div id="run-happened">{parts["happened"]}</div>'
        f"<section>{charts.to_div(run_gantt(view), 'gantt')}</section>"
        f'<div id="run-qa">{parts["qa"]}</div>'
        f'<div id="run-deliverable">{parts["deliverable"]}</div>'
        + (LIVE_SCRIPT % {"ms": REFRESH_SECONDS * 1000} if live else "")
    )


def starting(thread_id: str) -> RunView:
    """The view of a thread whose run has not started yet (its live page fills in later)."""
    return RunView(
        thread_id=thread_id,
        run_id="(starting)",
        request="Waiting for the run to start",
        state="running",
        updated_at=time.time(),
    )


def run_page(view: RunView, *, script_src: str | None = None) -> str:
    """A run's page; served (``script_src``) while the run goes, it updates itself in place."""
    title, subtitle = run_title(view, served=bool(script_src))
    live = view.state == "running" and bool(script_src)
    return page(title, subtitle, run_body(view, live), script_src=script_src, refresh=False)


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at)) if at else ""


def export(
    views: Sequence[RunView],
    out: Path,
    *,
    thread: str | None = None,
    memory: str | None = None,
    team: Sequence[Any] = (),
) -> Path:
    """Write one self-contained HTML file: a run's page, or the portfolio with the team and the
    learning curve (``memory``: where the plan memory is)."""
    from orchestrator_graph.portfolio import portfolio_page, team_insights

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if thread is not None:
        html = run_page(next(v for v in views if v.thread_id == thread))
    else:
        records, found = asyncio.run(team_insights(memory, team)) if memory else ([], None)
        html = portfolio_page(views, records=records, found=found)
    out.write_text(html, encoding="utf-8")
    return out
