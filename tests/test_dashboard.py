"""The exported dashboard in headless Chromium: no console errors, the headline figures equal
the run report's, one labelled bar per attempt, no two bars of a worker overlapping."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import pytest
from browser import SHOTS, chromium, gantt_bars, kpis, open_page
from typer.testing import CliRunner

from orchestrator_graph import create_orchestrator
from orchestrator_graph.charts import lanes
from orchestrator_graph.cli import app
from orchestrator_graph.models import Slot
from orchestrator_graph.persistence import open_persistence
from orchestrator_graph.simulation import random_plan, simulated_workers

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def cli(*args: str, home: Path):
    """The real command line, in this process (a subprocess start costs seconds)."""
    return CliRunner().invoke(app, list(args), env={"ORCHESTRATOR_GRAPH_HOME": str(home)})


async def run_jobs(home: Path, n: int = 2) -> list[dict]:
    """Seeded simulated jobs (some attempts rejected by QA), remembered in ``home``."""
    reports = []
    async with open_persistence(home) as (saver, store):
        graph = create_orchestrator(workers=simulated_workers()).compile(
            checkpointer=saver, store=store
        )
        for i in range(n):
            plan = random_plan(8, seed=i + 1, mean_effort=0.1, skills=("sim",))
            out = await graph.ainvoke(
                {
                    "request": f"Quarterly sales analysis, region batch {i + 1}",
                    "plan": plan.model_dump(),
                },
                {"configurable": {"thread_id": f"job-{i}"}},
            )
            reports.append(out["report"])
    return reports


def test_lanes_never_overlap_bars_of_one_worker():
    slots = [
        Slot(task_id="a", worker="w", start=0, finish=2),
        Slot(task_id="b", worker="w", start=1, finish=3),
        Slot(task_id="c", worker="w", start=2, finish=4),
        Slot(task_id="d", worker="v", start=0, finish=1),
    ]
    placed = {s.task_id: lane for s, lane in lanes(slots)}
    assert placed == {"a": "w", "b": "w #2", "c": "w", "d": "v"}


async def test_exported_dashboard_in_chromium(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_GRAPH_CHROMA", str(tmp_path / "chroma"))
    reports = await run_jobs(tmp_path)
    report = reports[-1]
    assert any(s["verdict"] == "reject" for r in reports for s in r["actual"]), "QA rejected some"
    run_file, portfolio_file = tmp_path / "run.html", tmp_path / "portfolio.html"
    made = await asyncio.to_thread(
        cli, "dashboard", "--out", str(run_file), "--thread", "job-1", home=tmp_path
    )
    assert made.exit_code == 0, made.output
    made = await asyncio.to_thread(cli, "dashboard", "--out", str(portfolio_file), home=tmp_path)
    assert made.exit_code == 0, made.output
    assert "cdn" not in run_file.read_text().lower()[:2000]  # plotly.js is inlined, not fetched
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with chromium() as browser:
        page, errors = await open_page(browser, run_file.as_uri())
        await page.wait_for_selector("#gantt .barlayer .point")
        figures = await kpis(page)
        approved = sum(t["status"] == "approved" for t in report["tasks"].values())
        assert int(figures["approved"]) == approved == 8
        assert float(figures["makespan"]) == pytest.approx(report["makespan"])
        assert float(figures["cost"]) == pytest.approx(report["cost"]) and report["cost"] > 0
        assert int(figures["tokens"]) == sum(report["tokens"].values())
        drawn = await gantt_bars(page)
        actual = drawn["bars"]["actual"]
        expected = sorted(
            s["task_id"] if s["attempt"] == 1 else f"{s['task_id']} #{s['attempt']}"
            for s in report["actual"]
        )
        assert sorted(b["label"] for b in actual) == expected  # one labelled bar per attempt
        planned = drawn["bars"]["planned"]
        assert drawn["points"] == len(actual) + len(planned) == len(expected) + 8
        assert sorted(drawn["texts"]) == sorted([*expected, *(b["label"] for b in planned)])
        by_lane = defaultdict(list)
        for bar in actual:
            by_lane[bar["lane"]].append((bar["start"], bar["end"]))
        for lane, spans in by_lane.items():
            spans.sort()
            assert all(a[1] <= b[0] + 1e-6 for a, b in zip(spans, spans[1:], strict=False)), lane
        await page.screenshot(path=str(SHOTS / "dashboard_run.png"), full_page=True)
        assert errors == []

        page, errors = await open_page(browser, portfolio_file.as_uri())
        await page.wait_for_selector("#learning-curve .scatterlayer")
        figures = await kpis(page)
        assert int(figures["runs"]) == 2
        assert float(figures["cost"]) == pytest.approx(sum(r["cost"] for r in reports))
        assert int(figures["tokens"]) == sum(sum(r["tokens"].values()) for r in reports)
        headline = await page.inner_text("#headline")
        assert headline.startswith("2 of 2 finished runs delivered in full")
        await page.screenshot(path=str(SHOTS / "dashboard_portfolio.png"), full_page=True)
        assert errors == []


def test_a_long_wait_is_drawn_short_and_labelled():
    """A human deciding for ten minutes does not flatten every other bar."""
    from orchestrator_graph.charts import gantt_figure

    actual = [
        Slot(task_id="a", worker="w", start=0, finish=2, attempt=1, verdict="reject"),
        Slot(task_id="b", worker="v", start=2, finish=3, attempt=1, verdict="approve"),
        Slot(task_id="a", worker="w", start=603, finish=605, attempt=2, verdict="approve"),
    ]
    figure = gantt_figure([], actual)
    widths = {(t.name, label): w for t in figure.data for label, w in zip(t.text, t.x, strict=True)}
    assert widths[("rejected", "a")] == widths[("approved", "a #2")] == 2
    starts = {label: b for t in figure.data for label, b in zip(t.text, t.base, strict=True)}
    assert 3 < starts["a #2"] < 4  # 600 idle seconds drawn as a sliver of the busy time
    (note,) = [a.text for a in figure.layout.annotations if a.text.startswith("idle")]
    assert note == "idle 10.0 min"
    ticks = dict(zip(figure.layout.xaxis2.ticktext, figure.layout.xaxis2.tickvals, strict=True))
    assert ticks["604 s"] == pytest.approx(starts["a #2"] + 1)
