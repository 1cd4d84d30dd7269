"""A provider that fails stops the run at its node with one line, the thread resumable; budgets
bound planning too; QA does not trust a model (grounding, the mediator's advice)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command
from openai_server import FakeOpenAI
from test_cli import cli as run_cli

from orchestrator_graph import OfflineChatModel, Plan, Task, Worker, create_orchestrator
from orchestrator_graph.cli import EXAMPLE
from orchestrator_graph.errors import ProviderError
from orchestrator_graph.grounding import grounding_check

ROOT = Path(__file__).resolve().parents[1]  # this checkout's package, in the subprocess too
FAST = {"retry_backoff": 0.01, "use_memory": False}


def chat(server: FakeOpenAI, name: str = "m") -> ChatOpenAI:
    return ChatOpenAI(model=name, base_url=server.url, api_key="sk-test", max_retries=0)


async def test_a_worker_provider_down_stops_the_run_and_resume_finishes_it(tmp_path):
    with FakeOpenAI("openai") as server:
        server.fail("500", 1000)
        graph = create_orchestrator(models={"worker": chat(server)}).compile(
            checkpointer=InMemorySaver(), store=InMemoryStore()
        )
        config = {"configurable": {"thread_id": "p"}}
        context = {**FAST, "output_dir": str(tmp_path), "provider_retries": 2}
        with pytest.raises(ProviderError, match=r"^worker model m: HTTP 500: The server") as err:
            await graph.ainvoke({"request": EXAMPLE}, config, context=context)
        assert err.value.retryable and "\n" not in str(err.value)
        # two collect tasks ran in parallel: the first to give up tried 3 times and stopped the
        # run, the other 1 to 3 times by then (its calls run on the event loop, so it may not
        # have sent its third); retried per call, not per attempt (2 x 3 attempts x 3)
        assert 4 <= len(server.requests) <= 6
        state = await graph.aget_state(config)
        assert state.next == ("dispatcher",)
        server.reset()  # the provider is back
        out = await graph.ainvoke(None, config, context=context)
    assert out["report"]["status"] == "done"
    assert out["report"]["usage"]["worker"]["m"]["calls"] == 6


def _paused_for_budget(out: dict) -> dict:
    (pause,) = out["__interrupt__"]
    assert pause.value["type"] == "budget"
    return pause.value


async def test_a_spent_budget_pauses_planning_between_calls_and_a_raised_one_goes_on():
    """As the dispatcher's budget gate does: the run pauses in the planner, and a resume with a
    raised budget plans and finishes (the planner runs again; nothing else had run)."""
    with FakeOpenAI("openai") as server:
        server.malformed = 5
        graph = create_orchestrator(models={"planner": chat(server)}).compile(
            checkpointer=InMemorySaver(), store=InMemoryStore()
        )
        config = {"configurable": {"thread_id": "b"}}
        out = await graph.ainvoke(
            {"request": EXAMPLE}, config, context={**FAST, "budget_tokens": 10}
        )
        pause = _paused_for_budget(out)
        assert pause["node"] == "planner"
        assert pause["reason"].startswith("tokens budget spent during the planner's")
        assert len(server.requests) == 1  # the re-ask was not sent
        state = await graph.aget_state(config)
        assert state.next == ("planner",) and not state.values.get("plan")  # none made yet
        again = await graph.ainvoke(
            Command(resume="more"), config, context={**FAST, "budget_tokens": 10}
        )
        assert _paused_for_budget(again)["node"] == "planner"  # still too little: paused again
        server.malformed = 0
        done = await graph.ainvoke(Command(resume="more"), config, context=FAST)
    assert done["report"]["status"] == "done"


async def test_a_seconds_budget_bounds_a_hanging_planner_call():
    with FakeOpenAI("openai", hang=3.0) as server:
        server.fail("timeout")
        graph = create_orchestrator(models={"planner": chat(server)}).compile(
            checkpointer=InMemorySaver(), store=InMemoryStore()
        )
        started = time.monotonic()
        out = await graph.ainvoke(
            {"request": EXAMPLE},
            {"configurable": {"thread_id": "s"}},
            context={**FAST, "budget_seconds": 0.5},
        )
    assert time.monotonic() - started < 2.5
    assert _paused_for_budget(out)["reason"].startswith("seconds budget spent during the planner's")


def cli(*args: str, home, server: FakeOpenAI) -> subprocess.CompletedProcess:
    return run_cli(
        *args,
        home=home,
        PYTHONPATH=str(ROOT),
        OPENAI_BASE_URL=server.url,
        OPENAI_API_KEY="sk-proj-SECRETSECRET123456",
    )


@pytest.mark.slow
def test_cli_provider_errors_are_one_line_exit_1_json_and_resumable(tmp_path):
    with FakeOpenAI("openai") as server:
        server.fail("500", 1000)
        args = ("--model", "planner=openai:m", "--limit", "retries=1", "--json")
        down = cli("run", "--example", "--thread", "t", *args, home=tmp_path, server=server)
        assert down.returncode == 1, down.stderr
        doc = json.loads(down.stdout)
        assert doc["status"] == "stopped" and doc["error"] == "ProviderError"
        assert doc["reason"].startswith("planner model m: HTTP 500: The server had an error")
        last = down.stderr.strip().splitlines()[-1]
        assert last.startswith("stopped: planner model m: HTTP 500: The server had an error")
        assert last.endswith("go on with: orchestrator-graph resume t")
        assert "Traceback" not in down.stderr
        server.reset()
        up = cli("resume", "t", "--json", home=tmp_path, server=server)
        assert up.returncode == 0, up.stderr
        assert json.loads(up.stdout)["status"] == "done"
        server.fail("401")
        bad_key = cli("run", "--example", "--model", "openai:m", home=tmp_path, server=server)
    assert bad_key.returncode == 1
    assert "HTTP 401: Incorrect API key provided: [redacted]" in bad_key.stderr
    assert "SECRET" not in bad_key.stderr + bad_key.stdout and "abcdefghij" not in bad_key.stderr


def test_cli_flags_for_methods_and_limits_are_checked(tmp_path):
    with FakeOpenAI("openai") as server:
        wrong = cli("plan", "--example", "--structured-output", "planner=xml", home=tmp_path,
                    server=server)  # fmt: skip
        limit = cli("plan", "--example", "--limit", "boss.timeout=3", home=tmp_path, server=server)
        ok = cli(
            "plan", "--example", "--model", "openai:m", "--structured-output",
            "function_calling", "--json", home=tmp_path, server=server,
        )  # fmt: skip
    assert wrong.returncode == 2 and "method 'xml'; use one of json_schema" in wrong.stderr
    assert limit.returncode == 2 and "--limit 'boss.timeout=3'" in limit.stderr
    assert ok.returncode == 0, ok.stderr
    assert server.requests[0]["body"]["tool_choice"]["function"]["name"] == "PlanDraft"


# --- QA that does not trust a model -------------------------------------------------------


def test_grounding_catches_invented_numbers_and_names_and_keeps_real_ones():
    task = Task(id="a", title="Analyse revenue by region", skills=["analysis"])
    tools = {"statistics": {"revenue": {"sum": 1234.56}}, "groups": {"north": {}, "south": {}}}
    invented = "Sales grew in East Asia by 53 %, with 10 employees and six consultants."
    found = grounding_check(task, {**tools, "summary": invented}, {})
    assert not found.passed
    for part in ("number 53", "number 10", "number 6", "name 'East Asia'"):
        assert part in found.detail
    real = "Revenue in North totalled 1,234.56 (about 1235) across 2 regions."
    assert grounding_check(task, {**tools, "summary": real}, {}).passed
    upstream = {"collect": {"rows": [1, 2, 3], "source": "Berlin office"}}
    assert grounding_check(task, {"summary": "3 rows from the Berlin office"}, upstream).passed
    assert grounding_check(task, {"value": 3}, {}) is None  # no model-written text


def test_grounding_reads_a_written_report_and_not_only_its_summary():
    """A model-written Markdown body is checked like a summary; its headings, list items and
    table cells start a sentence, so the template's own words are not taken for names."""
    task = Task(id="r", title="Write the report", skills=["reporting"])
    upstream = {"analyse": {"groups": {"north": {"revenue": 1200.5}, "south": {"revenue": 80}}}}
    body = (
        "# Sales report\n\n## Revenue by region\n\n| Region | Revenue |\n|---|---|\n"
        "| north | 1,200.50 |\n| south | 80.00 |\n\n- Sources: the analysis above\n\n"
        "## Notes\n\nRevenue in the north was larger."
    )
    assert grounding_check(task, {"markdown": body, "summary": "A report."}, upstream).passed
    invented = body + " Growth of 53 % came from the Tokyo office."
    found = grounding_check(task, {"markdown": invented, "summary": "A report."}, upstream)
    assert not found.passed
    assert "number 53" in found.detail and "name 'Tokyo'" in found.detail


def inventing(payload) -> dict[str, Any]:
    return {"value": 7, "summary": "Value 7, driven by 53 % growth in East Asia."}


async def test_an_invented_fact_is_rejected_by_default_and_passes_with_grounding_off():
    plan = Plan(tasks=[Task(id="x", title="x", skills=["s"])]).model_dump()
    graph = create_orchestrator(workers=[Worker(name="w", skills=["s"], run=inventing)]).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    strict = await graph.ainvoke(
        {"request": "r", "plan": plan},
        {"configurable": {"thread_id": "g1"}},
        context={**FAST, "max_attempts": 1},
    )
    assert strict["report"]["status"] != "done"
    assert "grounded" in strict["report"]["tasks"]["x"]["feedback"]
    trusting = await graph.ainvoke(
        {"request": "r", "plan": plan},
        {"configurable": {"thread_id": "g2"}},
        context={**FAST, "max_attempts": 1, "grounding": False},
    )
    assert trusting["report"]["status"] == "done"


class Advisor(OfflineChatModel):
    """A mediator model object that always advises ``action``; counts its calls."""

    action: str = "accept"
    asked: list[str] = []

    def _generate(self, msgs, stop=None, run_manager=None, **kwargs) -> ChatResult:
        self.asked.append("mediator")
        name = kwargs["tools"][0]["function"]["name"]
        args = {"action": self.action, "reason": "problem"}
        message = AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": "c"}])
        return ChatResult(generations=[ChatGeneration(message=message)])


@pytest.mark.parametrize("action", ["accept", "retry"])
async def test_a_mediator_object_is_used_and_cannot_turn_a_failed_gate_into_success(action):
    advisor = Advisor(action=action, asked=[])
    plan = Plan(tasks=[Task(id="x", title="x", skills=["s"])]).model_dump()
    graph = create_orchestrator(
        workers=[Worker(name="w", skills=["s"], run=inventing)], models={"mediator": advisor}
    ).compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    out = await graph.ainvoke(
        {"request": "r", "plan": plan},
        {"configurable": {"thread_id": "m"}},
        context={**FAST, "max_attempts": 1, "fallback": ["partial"]},
    )
    report = out["report"]
    assert advisor.asked  # the object given for the role was consulted
    assert report["status"] != "done" and report["tasks"]["x"]["status"] != "approved"
    reasons = " ".join(d["reason"] for d in report["decisions"])
    if action == "accept":
        assert "refused: attempt 1 failed deterministic checks (grounded)" in reasons
    else:  # one model retry is granted, the second is refused by the cap
        assert len(advisor.asked) == 2 and "cap of 1 model retries is reached" in reasons


async def test_a_worker_call_ends_with_the_runs_seconds_budget(tmp_path):
    """Inside the dispatcher a hanging worker call stops at the budget, not its time-out."""
    with FakeOpenAI("openai", hang=5.0) as server:
        server.fail("timeout", 10)
        graph = create_orchestrator(models={"worker": chat(server)}).compile(
            checkpointer=InMemorySaver(), store=InMemoryStore()
        )
        started = time.monotonic()
        out = await graph.ainvoke(
            {"request": EXAMPLE},
            {"configurable": {"thread_id": "w"}},
            context={**FAST, "output_dir": str(tmp_path), "budget_seconds": 1.0},
        )
    assert time.monotonic() - started < 4.0
    pause = _paused_for_budget(out)
    assert pause["node"] == "dispatcher"
    assert pause["reason"].startswith("seconds budget spent during the worker's")


async def test_the_calls_of_a_node_that_failed_are_still_counted():
    """A planner that never answers usably fails the node (no state written); its three billed
    calls are kept in the store and counted, and agree with what the server reported."""
    from orchestrator_graph.errors import StructuredOutputError
    from orchestrator_graph.ledger import load_spent

    with FakeOpenAI("openai") as server:
        server.malformed = 10
        store = InMemoryStore()
        graph = create_orchestrator(models={"planner": chat(server)}).compile(
            checkpointer=InMemorySaver(), store=store
        )
        config = {"configurable": {"thread_id": "f"}}
        with pytest.raises(StructuredOutputError, match="no valid PlanDraft after 3 tries"):
            await graph.ainvoke({"request": EXAMPLE}, config, context=FAST)
    run_id = (await graph.aget_state(config)).values["run_id"]
    spent = await load_spent(store, run_id)
    assert spent["planner"]["m"]["calls"] == 3 == len(server.requests)
    assert spent["planner"]["m"]["tokens"] == server.tokens
    assert spent["planner"]["m"]["failures"] == 3


def _failing(payload) -> dict[str, Any]:
    raise RuntimeError("this worker always fails")


async def test_the_calls_of_a_mediator_that_failed_are_still_counted():
    """A mediator model that never answers usably fails the node; its billed calls are kept."""
    from orchestrator_graph.ledger import load_spent
    from orchestrator_graph.llm import StructuredOutputError

    plan = Plan(tasks=[Task(id="x", title="x", skills=["s"])]).model_dump()
    with FakeOpenAI("openai") as server:
        server.malformed = 10
        store = InMemoryStore()
        team = [Worker(name="w", skills=["s"], run=_failing)]
        graph = create_orchestrator(workers=team, models={"mediator": chat(server)}).compile(
            checkpointer=InMemorySaver(), store=store
        )
        config = {"configurable": {"thread_id": "m"}}
        with pytest.raises(StructuredOutputError, match="no valid MediationAdvice after 3 tries"):
            await graph.ainvoke({"request": "r", "plan": plan}, config, context=FAST)
    run_id = (await graph.aget_state(config)).values["run_id"]
    spent = await load_spent(store, run_id)
    assert spent["mediator"]["m"]["calls"] == 3 == len(server.requests)
    assert spent["mediator"]["m"]["tokens"] == server.tokens
