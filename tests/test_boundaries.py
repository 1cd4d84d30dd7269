"""Bad input is refused at the boundary: one line naming what is wrong, exit 2 from the CLI (an
exception from ``ainvoke`` through the API), and nothing stored."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator_graph import Context, ContextError, OrchestratorError
from orchestrator_graph.cli import app

TASK = {"id": "a", "title": "A", "skills": ["analysis"]}


def invoke(*args: str, home: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [*args, "--home", str(home / "data")])
    return result.exit_code, result.stdout, result.stderr


def refused(args: list[str], home: Path, *expected: str) -> str:
    """Exit 2, one line on stderr holding every expected part, nothing on stdout or on disk."""
    code, out, errors = invoke(*args, home=home)
    assert code == 2, (code, out, errors)
    assert out == ""
    assert errors.count("\n") == 1 and errors.startswith("error: "), errors
    for part in expected:
        assert part in errors, errors
    assert not (home / "data" / "state.db").exists()
    return errors


# --- Context fields and CLI options ---------------------------------------------------------

BAD_CONTEXT = [
    ({"qa_policy": "harsh"}, "qa_policy", "strict, standard, lenient"),
    ({"objective": "fastest"}, "objective", "balanced, quality, cost"),
    ({"escalation": "nobody"}, "escalation", "policy, human"),
    ({"review_mode": "sometimes"}, "review_mode", "auto, always, never"),
    ({"cross_validate": "all"}, "cross_validate", "off, critical"),
    ({"resolution": "coin"}, "resolution", "majority, weighted"),
    ({"budget_seconds": math.nan}, "budget_seconds", "finite number > 0"),
    ({"budget_seconds": math.inf}, "budget_seconds", "finite number > 0"),
    ({"budget_seconds": -1.0}, "budget_seconds", "> 0"),
    ({"budget_cost": 0}, "budget_cost", "> 0"),
    ({"budget_attempts": -5}, "budget_attempts", "whole number >= 1"),
    ({"budget_tokens": 1.5}, "budget_tokens", "whole number"),
    ({"budget_tokens": 10**30}, "budget_tokens", "<="),
    ({"max_attempts": 0}, "max_attempts", ">= 1"),
    ({"max_attempts": "3"}, "max_attempts", "whole number"),
    ({"loop_guard": 0}, "loop_guard", ">= 1"),
    ({"stall_after": -1.0}, "stall_after", ">= 0"),
    ({"status_every": 0}, "status_every", "> 0"),
    ({"reuse_threshold": 1.5}, "reuse_threshold", "<= 1"),
    ({"recall_k": -1}, "recall_k", ">= 0"),
    ({"max_replans": -1}, "max_replans", ">= 0"),
    ({"adapt": "yes"}, "adapt", "true or false"),
    ({"use_memory": 1}, "use_memory", "true or false"),
    ({"qa_thresholds": {"strict": 2.0}}, "qa_thresholds['strict']", "<= 1"),
    ({"qa_thresholds": {"harsh": 0.5}}, "qa_thresholds", "strict, standard, lenient"),
    ({"fallback": ["pray"]}, "fallback", "retry_elsewhere, replan, partial"),
    ({"resolution_by_conflict": {"gossip": "weighted"}}, "resolution_by_conflict", "kinds"),
    ({"output_dir": 3}, "output_dir", "a string"),
    ({"dask_address": 3}, "dask_address", "a string"),
    ({"planner_model": 7}, "planner_model", "a string"),
    ({"resolution_by_conflict": "weighted"}, "resolution_by_conflict", "a mapping"),
    ({"fallback": "partial"}, "fallback", "a list"),
    ({"qa_thresholds": [0.5]}, "qa_thresholds", "a mapping"),
]


@pytest.mark.parametrize(("values", "field", "allowed"), BAD_CONTEXT)
def test_a_bad_context_value_names_the_field_and_what_it_allows(values, field, allowed):
    with pytest.raises(ContextError) as caught:
        Context(**values)
    message = str(caught.value)
    assert f"context field {field}:" in message and allowed in message
    assert "\n" not in message and isinstance(caught.value, (OrchestratorError, ValueError))


async def test_the_api_refuses_a_bad_context_before_any_node_runs():
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.store.memory import InMemoryStore

    from orchestrator_graph import create_orchestrator

    saver = InMemorySaver()
    graph = create_orchestrator().compile(checkpointer=saver, store=InMemoryStore())
    config = {"configurable": {"thread_id": "bad"}}
    with pytest.raises(ContextError, match="qa_policy: 'harsh'.*strict, standard, lenient"):
        await graph.ainvoke({"request": "analyse x.csv"}, config, context={"qa_policy": "harsh"})
    assert (await graph.aget_state(config)).values == {}  # not even the input was checkpointed


BAD_OPTIONS = [
    (["--qa-policy", "harsh"], ["--qa-policy 'harsh'", "strict, standard, lenient"]),
    (["--objective", "fastest"], ["--objective 'fastest'", "balanced, quality, cost"]),
    (["--escalation", "nobody"], ["--escalation 'nobody'", "policy, human"]),
    (["--budget", "seconds=nan"], ["--budget seconds=nan", "finite number > 0"]),
    (["--budget", "seconds=inf"], ["--budget seconds=inf", "finite number > 0"]),
    (["--budget", "seconds=-1"], ["--budget seconds=-1.0", "> 0"]),
    (["--budget", "attempts=-5"], ["--budget attempts=-5", "whole number >= 1"]),
    (["--budget", "cost=0"], ["--budget cost=0.0", "> 0"]),
    (["--budget", "tokens=1.5"], ["--budget 'tokens=1.5'", "not a number"]),
    (["--budget", "speed=3"], ["--budget 'speed=3'", "seconds, cost, attempts, tokens"]),
    (["--budget", "seconds="], ["--budget 'seconds='", "NAME=VALUE"]),
    (["--model", "boss=offline"], ["unknown role 'boss'"]),
]


@pytest.mark.parametrize(("options", "expected"), BAD_OPTIONS)
def test_a_bad_option_is_one_line_and_exit_2(options, expected, tmp_path):
    refused(["run", "analyse sales.csv", *options], tmp_path, *expected)


def test_a_request_beyond_the_limit_is_refused(tmp_path):
    request = "Analyse " + " and ".join(["sales.csv"] * 2_900)  # about 37 KB
    refused(["run", request], tmp_path, "characters; the limit is 20,000")
    refused(["run", "   "], tmp_path, "non-empty")


# --- plan files ------------------------------------------------------------------------------


def plan_file(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


BAD_PLANS = [
    ("deep.json", "[" * 100_000 + "]" * 100_000, ["nested deeper than 40 levels"]),
    ("deep.yaml", "a: " + "[" * 1_000 + "]" * 1_000, ["nested deeper than 40 levels"]),
    (
        "regex.json",
        json.dumps({"tasks": [{**TASK, "acceptance": [{"kind": "matches", "pattern": "(unc"}]}]}),
        ["acceptance.0.pattern", "not a regular expression"],
    ),
    (
        "schema.json",
        json.dumps(
            {"tasks": [{**TASK, "acceptance": [{"kind": "schema", "json_schema": {"type": 12}}]}]}
        ),
        ["acceptance.0.json_schema", "not a JSON Schema"],
    ),
    ("inf.yaml", "tasks:\n- {id: a, title: A, skills: [analysis], effort: .inf}\n", ["finite"]),
    ("nan.yaml", "deadline: .nan\ntasks: [{id: a, title: A, skills: [x]}]\n", ["deadline"]),
    (
        "priority.json",
        json.dumps({"tasks": [{**TASK, "priority": 9}]}),
        ["tasks.0.priority", "less than or equal to 5"],
    ),
    ("redundancy.json", json.dumps({"tasks": [{**TASK, "redundancy": 0}]}), ["redundancy"]),
    ("shape.json", json.dumps({"tasks": {"a": TASK}}), ["tasks: Input should be a valid list"]),
    ("extra.json", json.dumps({"tasks": [TASK], "owner": "me"}), ["owner: Extra inputs"]),
    ("binary.json", b"\xff\xfe\x00garbage", ["not UTF-8"]),
    ("nul.yaml", b"tasks: \x00\x00", ["NUL bytes"]),
    (
        "many.json",
        json.dumps({"tasks": [{**TASK, "id": f"t{i}"} for i in range(5_001)]}),
        ["5,001 tasks; the limit is 5,000"],
    ),
    ("timeout.json", json.dumps({"tasks": [{**TASK, "timeout": -1}]}), ["tasks.0.timeout"]),
]


@pytest.mark.parametrize(("name", "content", "expected"), BAD_PLANS)
def test_a_bad_plan_file_is_refused_in_one_line(name, content, expected, tmp_path):
    path = plan_file(tmp_path, name, content)
    refused(["run", "--plan", path], tmp_path, f"plan file {path}", *expected)


def test_an_endless_plan_file_is_read_only_up_to_the_limit(tmp_path):
    refused(["run", "--plan", "/dev/zero"], tmp_path, "larger than 4,000,000 bytes")
    refused(["run", "--plan", str(tmp_path / "gone.json")], tmp_path, "cannot read plan file")


# --- roster files ----------------------------------------------------------------------------

WORKER = "  - {name: w1, skills: [analysis], run: 'orchestrator_graph.team:analyse'"
BAD_ROSTERS = [
    (WORKER + ", capacity: 100000000000}", ["capacity", "less than or equal to 10000"]),
    (WORKER + ", cost: -1}", ["cost", "greater than or equal to 0"]),
    (WORKER + ", speed: .nan}", ["speed", "finite"]),
    (WORKER + ", heartbeat_timeout: .inf}", ["heartbeat_timeout", "finite"]),
    ("  - {name: w1, skills: {analysis: 2}, run: 'orchestrator_graph.team:analyse'}", ["[0, 1]"]),
    ("  - {name: 'w 1', skills: [analysis], run: 'orchestrator_graph.team:analyse'}", ["name"]),
    ("  - {name: w1, skills: [analysis], run: 'nosuchmodule:x'}", ["cannot import"]),
    ("  - " + "[" * 1000 + "]" * 1000, ["nested deeper than 40 levels"]),
]


@pytest.mark.parametrize(("entry", "expected"), BAD_ROSTERS)
def test_a_bad_roster_is_refused_in_one_line(entry, expected, tmp_path):
    path = plan_file(tmp_path, "team.yaml", "workers:\n" + entry + "\n")
    refused(["run", "analyse sales.csv", "--roster", path], tmp_path, "roster", *expected)


# --- where state lives -----------------------------------------------------------------------


def test_a_data_folder_that_is_a_file_or_a_bad_postgres_url_is_refused(tmp_path, postgres_url):
    result = CliRunner().invoke(app, ["status", "t", "--home", "/etc/passwd"])
    assert result.exit_code == 2 and result.stderr == (
        "error: data folder /etc/passwd: exists and is not a folder\n"
    )
    for url, expected in [
        ("notaurl", "not a Postgres URL"),
        ("postgresql://postgres@127.0.0.1:1/x", "cannot connect to Postgres at 127.0.0.1:1/x"),
        (postgres_url.rsplit("/", 1)[0] + "/og_missing_db", 'database "og_missing_db" does not'),
    ]:
        result = CliRunner().invoke(app, ["status", "t", "--postgres", url])
        assert result.exit_code == 2 and expected in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1


def test_damaged_databases_are_reported_with_what_to_do(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "state.db").write_bytes(b"this is not a database" * 100)
    code, out, errors = invoke("status", "t", home=tmp_path)
    assert code == 2 and out == "" and errors.count("\n") == 1
    assert "state.db is damaged (file is not a database)" in errors
    assert "move it aside" in errors and "restore it from a backup" in errors
    (data / "state.db").unlink()
    (data / "store.db").write_bytes(b"\x00" * 4096)
    code, _out, errors = invoke("audit", "t", home=tmp_path)
    assert code == 2 and "store.db is damaged" in errors


def test_an_emptied_store_is_not_audited_silently(tmp_path):
    data = tmp_path / "data"
    done = invoke("run", "--example", "--thread", "t1", "--json", home=tmp_path)
    assert done[0] == 0, done[2]
    entries = json.loads(invoke("audit", "t1", "--json", home=tmp_path)[1])
    assert len(entries) >= 14
    (data / "store.db").write_bytes(b"")  # truncated to 0 bytes
    code, out, errors = invoke("audit", "t1", home=tmp_path)
    assert code == 2 and out == "" and "store.db is damaged (0 bytes" in errors


# --- values that must fit the stores ---------------------------------------------------------


def test_huge_numbers_in_a_cleaned_table_are_kept_exactly(tmp_path):
    """A 25-digit integer and 1e308 in a CSV that the default team cleans and analyses: the run
    finishes, and the ledger in SQLite gives the very values back."""
    from orchestrator_graph.ledger import Ledger
    from orchestrator_graph.persistence import open_persistence

    big = 1234567890123456789012345
    (tmp_path / "huge.csv").write_text(
        f"id,region,price,quantity\n1,north,1e308,3\n2,south,2.5,{big}\n3,east,1.0,2\n"
    )
    plan = {
        "tasks": [
            {
                "id": "collect",
                "title": "Collect",
                "skills": ["data_collection"],
                "inputs": {"path": str(tmp_path / "huge.csv")},
            },
            {"id": "clean", "title": "Clean", "skills": ["processing"], "depends_on": ["collect"]},
        ]
    }
    path = plan_file(tmp_path, "plan.json", json.dumps(plan))
    code, out, errors = invoke("run", "--plan", path, "--thread", "h", "--json", home=tmp_path)
    assert code == 0, errors
    report = json.loads(out)

    async def cleaned() -> dict:
        async with open_persistence(tmp_path / "data") as (_saver, store):
            key = report["tasks"]["clean"]["result_key"]
            return await Ledger(store, report["run_id"]).output(key)

    rows = asyncio.run(cleaned())["rows"]
    assert rows[0]["price"] == 1e308 and rows[1]["quantity"] == big
    assert "revenue" not in rows[0] or rows[0]["revenue"] is None  # 3e308 is not a number


async def test_huge_numbers_in_a_worker_output_and_its_facts_fit_sqlite(tmp_path):
    """A worker returns a 30-digit integer and infinity, also as facts the deliverable keeps:
    the SQLite store and checkpoints keep them (tagged where JSON cannot), nothing crashes."""
    from orchestrator_graph import Plan, Task, Worker, create_orchestrator
    from orchestrator_graph.ledger import Ledger
    from orchestrator_graph.persistence import open_persistence

    big = 123456789012345678901234567890

    def huge(payload) -> dict:
        return {"value": big, "ratio": math.inf, "facts": {"total": big}, "summary": "huge"}

    plan = Plan(tasks=[Task(id="t", title="t", skills=["s"])])
    async with open_persistence(tmp_path) as (saver, store):
        graph = create_orchestrator(workers=[Worker(name="w", skills=["s"], run=huge)]).compile(
            checkpointer=saver, store=store
        )
        values = await graph.ainvoke(
            {"request": "r", "plan": plan.model_dump()},
            {"configurable": {"thread_id": "1"}},
            context={"use_memory": False},
        )
        report = values["report"]
        output = await Ledger(store, report["run_id"]).output(report["tasks"]["t"]["result_key"])
    assert report["status"] == "done"
    assert output["value"] == big and output["ratio"] == math.inf
    assert report["deliverable"]["facts"] == {"total": {"$int": str(big)}}


def test_help_imports_no_graph_machinery():
    code = (
        "import sys, orchestrator_graph.cli; "
        "print(sorted(m for m in ('langgraph', 'langchain_core', 'chromadb', 'pydantic') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert out.stdout.strip() == "[]", out.stderr
