"""What a person sees: the first free-text request works offline, a plan that cannot work is
refused before it runs, text shows as written, piped progress is not repeated, and the report
reads as a document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from typer.testing import CliRunner

from orchestrator_graph import Plan, PlanValidationError, Task, create_orchestrator, default_team
from orchestrator_graph.cli import app
from orchestrator_graph.dag import check_data_flow
from orchestrator_graph.offline import _plan
from orchestrator_graph.reports import number, report_markdown

FIRST_REQUEST = "Analyse the bundled sample sales data and write a short report"
SKILLS = "<skills>data_collection, processing, analysis, validation, reporting</skills>"


def cli(*args: str, home: Path):
    return CliRunner().invoke(app, [*args, "--home", str(home / "data")])


def planned(request: str) -> list[dict]:
    return _plan(f"<request>{request}</request>\n{SKILLS}", {})["tasks"]


def test_the_first_free_text_request_runs_offline_on_the_bundled_data(tmp_path):
    result = cli("run", FIRST_REQUEST, "--json", "--output-dir", str(tmp_path), home=tmp_path)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "done" and report["final_review"]["verdict"] == "approve"
    assert list(report["tasks"]) == [
        "collect_1",
        "collect_2",
        "process",
        "validate",
        "analyse",
        "report",
    ]
    markdown = report["deliverable"]["sections"][0]["body"]
    assert "## Validation findings" in markdown and "## Statistics" in markdown


@pytest.mark.parametrize(
    ("request_text", "ids", "group"),
    [
        ("Collect sales.csv, clean it and analyse revenue by region", 4, "region"),
        ("Load the sample data and give me a breakdown per product", 5, "product"),
        ("Check the bundled sample data for problems", 4, None),
        ("Collect online_sales.json and write a report", 2, None),
    ],
)
def test_the_offline_planner_understands_the_words_people_use(request_text, ids, group):
    tasks = planned(request_text)
    assert len(tasks) == ids, [t["id"] for t in tasks]
    plan = Plan.model_validate({"tasks": tasks})
    check_data_flow(plan, default_team())  # every task gets what it needs
    analyse = next((t for t in tasks if t["id"] == "analyse"), None)
    if group:
        assert analyse["inputs"] == {"group_by": group} and analyse["depends_on"] == ["validate"]


def test_a_file_named_many_times_is_collected_once():
    tasks = planned("Analyse " + " and ".join(["sales.csv"] * 1_500))
    assert [t["id"] for t in tasks if t["id"].startswith("collect")] == ["collect_1"]


LONE = Plan(
    tasks=[
        Task(id="analyse", title="Analyse", skills=["analysis"]),
        Task(id="collect", title="Collect", skills=["data_collection"]),
    ]
)


def test_a_plan_that_cannot_feed_a_task_is_refused_before_it_runs(tmp_path):
    with pytest.raises(PlanValidationError) as caught:
        check_data_flow(LONE, default_team())
    assert caught.value.problems == [
        "task 'analyse' needs a table from a task it depends on, but it depends on no task "
        "(tasks that give one: collect)",
        "task 'collect' needs inputs.path",
    ]
    (tmp_path / "lone.json").write_text(LONE.model_dump_json())
    result = cli("run", "--plan", str(tmp_path / "lone.json"), home=tmp_path)
    assert result.exit_code == 2 and result.stdout == ""
    assert "task 'analyse' needs a table" in result.stderr
    assert not (tmp_path / "data").exists()  # no thread was started for it


async def test_the_api_refuses_it_in_the_planner_with_nothing_run():
    store = InMemoryStore()
    graph = create_orchestrator().compile(checkpointer=InMemorySaver(), store=store)
    with pytest.raises(PlanValidationError, match="'analyse' needs a table"):
        await graph.ainvoke(
            {"request": "r", "plan": LONE.model_dump()},
            {"configurable": {"thread_id": "1"}},
            context={"use_memory": False},
        )
    assert await store.asearch(("orchestrator_graph", "runs"), limit=5) == []


def test_markup_in_a_request_shows_as_written_and_piped_progress_is_not_repeated(tmp_path):
    request = "Collect sales.csv [/b] and write a [bold]report[/bold]"
    result = cli("run", request, "--output-dir", str(tmp_path), home=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "[offline]" in result.stdout  # the offline marker, not swallowed as markup
    assert f"[recall] run_started {request}" in result.stderr
    lines = result.stderr.splitlines()
    progress = [line for line in lines if "] progress " in line]
    assert len(progress) == len(set(progress)) >= 2  # each state once: 0/3 ... 3/3


def test_numbers_in_the_report_read_as_a_person_writes_them():
    assert [number(v) for v in (1234567, 97550.384, 2166.0, 0.5, None)] == [
        "1,234,567",
        "97,550.38",
        "2,166.00",
        "0.50",
        "",
    ]
    analysis = {
        "rows": 3,
        "measures": ["revenue"],
        "statistics": {
            "revenue": {"count": 3, "sum": 12345.5, "mean": 4115.17, "min": 5, "max": 12000}
        },
        "group_by": "region",
        "groups": {
            "north": {"revenue": 12000.0, "rows": 1},
            "south": {"revenue": 345.5, "rows": 2},
        },
        "summary": "note",
    }
    markdown = report_markdown("Sales report", {"analyse": analysis})
    assert markdown.startswith("# Sales report\n\n## Summary\n")
    assert "| north | 12,000.00 | 1 |" in markdown
    assert "| **total** | 12,345.50 | 3 |" in markdown
    assert "Drawn from the approved results of: analyse." in markdown
