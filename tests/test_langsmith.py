"""LangSmith, as a local endpoint records what the client sends: every model call named by role
and task with tags and metadata, worker attempts as runs, QA verdicts as their feedback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from langsmith_recorder import recording_endpoint

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent


def test_runs_named_tagged_with_metadata_and_verdicts_as_feedback(tmp_path):
    with recording_endpoint() as (url, recorded):
        env = {
            **os.environ,
            "LANGSMITH_TRACING": "true",
            "LANGSMITH_ENDPOINT": url,
            "LANGSMITH_API_KEY": "test-key",
            "LANGSMITH_PROJECT": "orchestrator-test",
            "ORCHESTRATOR_GRAPH_HOME": str(tmp_path),
        }
        done = subprocess.run(
            [sys.executable, str(HERE / "traced_run.py"), "thread-7", str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        run_id, status = done.stdout.split()
        assert status == "done"
    calls = [r for r in recorded.runs.values() if "orchestrator-graph" in (r.get("tags") or [])]
    by_name = {r["name"]: r for r in calls}
    tasks = ("analyse", "collect_1", "process", "report", "validate")
    assert {"planner", "synthesizer", *(f"reviewer[{t}#1]" for t in tasks)} <= set(by_name)
    assert {f"worker[{t}#1]" for t in tasks} <= set(by_name)
    planner = by_name["planner"]
    assert planner["run_type"] == "llm" and "role:planner" in planner["tags"]
    meta = planner["extra"]["metadata"]
    assert meta["orchestrator_run_id"] == run_id and meta["thread_id"] == "thread-7"
    review = by_name["reviewer[analyse#1]"]
    assert {"role:reviewer", "task:analyse", "worker:analyst"} <= set(review["tags"])
    assert (
        review["extra"]["metadata"].items()
        >= {
            "orchestrator_run_id": run_id,
            "task": "analyse",
            "worker": "analyst",
            "attempt": 1,
            "thread_id": "thread-7",
        }.items()
    )
    assert by_name["worker[analyse#1]"]["run_type"] == "llm"  # the worker's own model call
    attempt = by_name["attempt[analyse#1]"]
    assert attempt["run_type"] == "chain" and "worker:analyst" in attempt["tags"]
    assert by_name["worker[analyse#1]"]["parent_run_id"] == attempt["id"]
    # the reviewer's verdict is feedback on the attempt's run
    feedback = {f["run_id"]: f for f in recorded.feedback}
    assert feedback[attempt["id"]]["key"] == "qa_score"
    assert feedback[attempt["id"]]["value"] == "approve" and feedback[attempt["id"]]["score"] > 0.5
    assert len(recorded.feedback) == len([n for n in by_name if n.startswith("attempt[")])


def test_evals_run_through_langsmith_evaluate_offline(monkeypatch):
    """Offline by default: the evaluation runs and scores, and nothing reaches LangSmith (here,
    the recording endpoint standing in for it)."""
    import importlib.util

    from langsmith import utils

    spec = importlib.util.spec_from_file_location(
        "langsmith_eval", HERE.parent / "evals" / "langsmith_eval.py"
    )
    evals = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evals)
    with recording_endpoint() as (url, recorded):
        monkeypatch.setenv("LANGSMITH_ENDPOINT", url)
        monkeypatch.setenv("LANGSMITH_TRACING", "true")
        utils.get_env_var.cache_clear()
        try:
            summary = evals.run()
        finally:
            utils.get_env_var.cache_clear()
    assert summary["examples"] == len(evals.REQUESTS)
    medians = summary["median"]
    assert medians["approved_share"] == 1.0 and medians["status"] == 1.0
    assert medians["tokens"] > 0 and medians["cost"] == 0.0
    assert 0 < medians["makespan_vs_plan"] < 5
    assert recorded.requests == []
