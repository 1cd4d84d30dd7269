"""Regions and time: residency (hard, checked with the plan and at every assignment), affinity
(a scored preference) and working hours (no work outside them; the schedule waits)."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest
from langgraph.store.memory import InMemoryStore
from pydantic import ValidationError
from test_workforce import run, sim, task
from typer.testing import CliRunner

from orchestrator_graph import Plan, PlanValidationError
from orchestrator_graph.availability import WorkingHours
from orchestrator_graph.cli import app
from orchestrator_graph.ledger import load_schedule
from orchestrator_graph.nodes.planner import validate_for_team
from orchestrator_graph.registry import Registry


def test_residency_violation_is_refused_at_plan_time_naming_task_and_region(tmp_path):
    team = [sim("us_analyst", {"s": 0.9}, region="us"), sim("eu_clerk", {"t": 0.9}, region="eu")]
    plan = Plan(tasks=[task("gdpr_rows", residency=["eu"]), task("free", skill="t")])
    with pytest.raises(PlanValidationError) as refused:
        validate_for_team(plan, Registry(team))
    assert refused.value.problems == [
        "task 'gdpr_rows' must run in region 'eu' (residency), and no worker there can do it; "
        "workers able to do it are in: us"
    ]
    (tmp_path / "plan.yaml").write_text(
        "tasks:\n- {id: gdpr_rows, title: rows, skills: [analysis], residency: [eu]}\n"
    )
    (tmp_path / "team.yaml").write_text(
        "workers:\n- {name: us_analyst, skills: [analysis], region: us, "
        "run: orchestrator_graph.team:analyse}\n"
    )
    home = ["--home", str(tmp_path), "--roster", str(tmp_path / "team.yaml")]
    result = CliRunner().invoke(app, ["run", "--plan", str(tmp_path / "plan.yaml"), *home])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == (
        "error: invalid plan: task 'gdpr_rows' must run in region 'eu' (residency), and no "
        "worker there can do it; workers able to do it are in: us"
    )


async def test_residency_holds_at_assignment_and_affinity_changes_the_choice():
    team = [
        sim("us_expert", {"s": 1.0}, region="us", capacity=2),
        sim("eu_junior", {"s": 0.6}, region="eu", capacity=2),
        sim("ap_junior", {"s": 0.6}, region="apac", capacity=2),
    ]
    plan = Plan(
        tasks=[
            task("anywhere"),
            task("must_eu", residency=["eu"]),
            task("likes_apac", affinity=["apac"]),
        ]
    )
    report, _ = await run(team, plan)
    placed = {tid: rec["worker"] for tid, rec in report["tasks"].items()}
    assert placed == {"anywhere": "us_expert", "must_eu": "eu_junior", "likes_apac": "ap_junior"}
    plain = Plan(tasks=[task("anywhere"), task("no_preference")])
    report, _ = await run(team, plain)
    assert {rec["worker"] for rec in report["tasks"].values()} == {"us_expert"}


def hours_opening_in(seconds: float, zone: str) -> WorkingHours:
    opens = dt.datetime.now(ZoneInfo(zone)) + dt.timedelta(seconds=seconds)
    closes = opens + dt.timedelta(hours=1)
    return WorkingHours(timezone=zone, start=opens.time(), end=closes.time())


async def test_a_worker_outside_its_hours_is_not_assigned_and_the_schedule_waits():
    hours = hours_opening_in(2.0, "Asia/Tokyo")
    opens = hours.next_open(time.time())
    night = sim("tokyo", {"s": 1.0}, region="apac", hours=hours)
    team = [night, sim("berlin", {"s": 1.0}, region="eu")]
    plan = Plan(tasks=[task("tokyo_data", residency=["apac"]), task("any")])
    store = InMemoryStore()
    report, events = await run(team, plan, store=store)
    assert report["status"] == "done"
    started = {e["task_id"]: e for e in events if e.get("kind") == "task_started"}
    assert started["tokyo_data"]["worker"] == "tokyo" and started["any"]["worker"] == "berlin"
    assert started["any"]["at"] < opens <= started["tokyo_data"]["at"]  # waited for the window
    waiting = [e["data"] for e in events if e.get("kind") == "status" and e["at"] < opens - 0.5]
    assert waiting and all(s["eta"] >= opens - s["at"] for s in waiting)  # the ETA waits too
    schedule = await load_schedule(store, report["run_id"])
    planned = {s.task_id: s for s in schedule.planned}
    assert planned["tokyo_data"].start >= 1.5  # planned for the window, not for now
    assert planned["any"].start < 0.5 and schedule.makespan >= 1.5


def test_working_hours_windows_in_their_time_zone():
    berlin = ZoneInfo("Europe/Berlin")
    shift = WorkingHours(timezone="Europe/Berlin", start="22:00", end="06:00", days=[0, 1, 2, 3, 4])
    at = lambda *parts: dt.datetime(*parts, tzinfo=berlin).timestamp()  # noqa: E731
    assert shift.open_at(at(2026, 12, 1, 23, 0))  # Tuesday night
    assert shift.open_at(at(2026, 12, 2, 5, 59))  # past midnight, still Tuesday's window
    assert not shift.open_at(at(2026, 12, 2, 12, 0))
    assert shift.next_open(at(2026, 12, 2, 12, 0)) == at(2026, 12, 2, 22, 0)
    assert shift.next_open(at(2026, 12, 5, 12, 0)) == at(2026, 12, 7, 22, 0)  # Sat -> Mon
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        WorkingHours(timezone="Mars/Olympus", start="09:00", end="17:00")
    with pytest.raises(ValidationError, match="an empty window"):
        WorkingHours(timezone="UTC", start="09:00", end="09:00")
