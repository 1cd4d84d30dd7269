"""Every role's structured call against every kind of server, healthy and failing in every way a
provider fails: real HTTP through langchain-openai to the loopback servers of ``openai_server``.

roles (8 calls: planner, re-planner, worker, reviewer, mediator, judge, merge, synthesizer)
x server kinds (3: OpenAI strict, JSON mode only like llama.cpp, tools only)
x modes (10: healthy and the failure modes of ``openai_server.MODES``, 500 once and always)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from openai_server import KINDS, MALFORMED, FakeOpenAI
from pydantic import BaseModel

from orchestrator_graph.cli import EXAMPLE
from orchestrator_graph.errors import ProviderError
from orchestrator_graph.llm import (
    CallProfile,
    Limits,
    ask_structured,
    calling,
    forget_learned_methods,
)
from orchestrator_graph.prompts import messages, render
from orchestrator_graph.schemas import (
    DeliverableDraft,
    JudgeChoice,
    MediationAdvice,
    MergedAnswer,
    PlanDraft,
    ReplanDraft,
    RubricReview,
    WorkerNote,
)
from orchestrator_graph.usage import track_usage

SKILLS = "analysis, data_collection, processing, reporting, validation"
CANDIDATES = json.dumps(
    [
        {"attempt": 1, "worker": "a", "weight": 0.9, "output": {"total": 3, "summary": "s"}},
        {"attempt": 2, "worker": "b", "weight": 0.5, "output": {"total": 4, "summary": "s"}},
    ]
)


@dataclass(frozen=True)
class RoleCall:
    role: str
    schema: type[BaseModel]
    prompt: Callable[[], list[BaseMessage]]


ROLE_CALLS = {
    "planner": RoleCall(
        "planner",
        PlanDraft,
        lambda: messages(
            "planner",
            request=EXAMPLE,
            skills=SKILLS,
            workers="none",
            examples="none",
            feedback="none",
        ),
    ),
    "replanner": RoleCall(
        "planner",
        ReplanDraft,
        lambda: messages(
            "replanner",
            goal="g",
            failed="analyse",
            reason="failed QA",
            remaining=json.dumps([{"id": "analyse", "title": "A", "skills": ["analysis"]}]),
            done="process",
            skills=SKILLS,
            round=1,
        ),
    ),
    "worker": RoleCall(
        "worker",
        WorkerNote,
        lambda: [
            SystemMessage(render("worker_analysis.system")),
            HumanMessage(render("worker.user", task="Analyse", feedback="none", facts="{}")),
        ],
    ),
    "reviewer": RoleCall(
        "reviewer",
        RubricReview,
        lambda: messages("reviewer", task="t", criteria="- c", output="{}", checks="PASS x"),
    ),
    "mediator": RoleCall(
        "mediator",
        MediationAdvice,
        lambda: messages("mediator", task="t", reason="r", score=0.4, attempts=3),
    ),
    "judge": RoleCall(
        "mediator",
        JudgeChoice,
        lambda: messages("judge", task="t", reason="disagree", candidates=CANDIDATES),
    ),
    "merge": RoleCall(
        "mediator",
        MergedAnswer,
        lambda: messages("merge", task="t", reason="disagree", candidates=CANDIDATES),
    ),
    "synthesizer": RoleCall(
        "synthesizer",
        DeliverableDraft,
        lambda: messages(
            "synthesizer",
            request="r",
            results='<result task="a">\nsummary\n</result>',
            facts="{}",
            disputed="none",
        ),
    ),
}
# What each kind is asked first: OpenAI's default; json_schema of a llama.cpp-like server (it
# refuses, the client falls back to JSON mode); JSON mode of a tools-only one (falls back to tools)
ASKED = {"openai": "json_schema", "json_mode": "json_schema", "tools": "json_mode"}
USED = {"openai": "json_schema", "json_mode": "json_mode", "tools": "function_calling"}
MODES = (
    "ok",
    "500",
    "500_always",
    "429",
    "timeout",
    "length",
    "malformed",
    "refusal",
    "401",
    "400",
)
TIMEOUT = 0.5  # a loaded machine answers the big prompts in over 0.15 s: spurious time-outs


def _messages(call: RoleCall) -> list[BaseMessage]:
    return call.prompt()


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, tuple[FakeOpenAI, ChatOpenAI]]]:
    """One server of each kind for the module, and a client for each (reset per test)."""
    with ExitStack() as stack:
        found = {}
        for kind in KINDS:
            server = stack.enter_context(FakeOpenAI(kind, retry_after=0.05, hang=TIMEOUT * 3))
            client = ChatOpenAI(
                model=f"m-{kind}", base_url=server.url, api_key="sk-test", max_retries=0
            )
            found[kind] = (server, client)
        yield found


async def _ask(
    server: FakeOpenAI, call: RoleCall, kind: str, model: ChatOpenAI | None = None
) -> tuple[Any, Any]:
    model = model or ChatOpenAI(
        model=f"m-{kind}", base_url=server.url, api_key="sk-test", max_retries=0
    )
    profile = CallProfile(
        role=call.role,
        method=ASKED[kind],
        limits=Limits(timeout=TIMEOUT, retries=2, backoff=0.01),
    )
    with track_usage() as usage, calling(profile):
        try:
            return await ask_structured(model, call.schema, _messages(call)), usage
        except ProviderError as err:
            return err, usage


def _user_messages(request: dict[str, Any]) -> str:
    return json.dumps(request["body"]["messages"])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(ROLE_CALLS))
async def test_role_against_server_and_failure(name: str, kind: str, mode: str, servers):
    call = ROLE_CALLS[name]
    server, client = servers[kind]
    server.reset()
    forget_learned_methods()
    if mode != "ok":
        server.fail(mode.removesuffix("_always"), 100 if mode.endswith("_always") else 1)
    out, usage = await _ask(server, call, kind, client)
    stats = usage.models[f"m-{kind}"]
    refused_first = ASKED[kind] != USED[kind]
    if mode in ("500_always", "401", "400"):
        assert isinstance(out, ProviderError), out
        text = str(out)
        assert "\n" not in text and text.startswith(f"{call.role} model m-{kind}: HTTP ")
        assert "sk-proj" not in text and "abcdefghijklmnop" not in text  # redacted
        tries = 3 if mode == "500_always" else 1
        assert len(server.requests) == tries  # a 4xx is never retried; a 5xx twice
        assert out.retryable is (mode == "500_always")
        return
    assert isinstance(out, call.schema), out
    assert stats.methods[-1] == USED[kind]
    assert len(stats.fallbacks) == int(refused_first)  # recorded, not silent
    if refused_first:
        assert stats.fallbacks[0].startswith(f"{ASKED[kind]} -> {USED[kind]}: HTTP ")
    assert stats.calls >= 1 and stats.tokens > 0
    bodies = [_user_messages(r) for r in server.requests]
    if mode in ("500", "429", "timeout"):
        assert stats.errors >= 1 and stats.failures == 0
    if mode == "429":
        gap = server.requests[1]["at"] - server.requests[0]["at"]
        assert gap >= 0.05  # Retry-After honoured
    if mode == "length":
        assert stats.length_reasks == 1 and any("cut off" in b for b in bodies)
    if mode == "malformed":
        assert stats.repairs == 1 and any(json.dumps(MALFORMED)[1:-1] in b for b in bodies)
    if mode == "refusal":
        assert stats.repairs == 1 and any("the model refused" in b for b in bodies)


async def test_the_server_saw_what_was_counted():
    """Tokens counted client-side equal the usage the server reported, re-asks included."""
    with FakeOpenAI("openai") as server:
        server.fail("malformed", 2)
        out, usage = await _ask(server, ROLE_CALLS["planner"], "openai")
    assert isinstance(out, PlanDraft)
    assert usage.total_calls == len(server.requests) == 3
    assert usage.total_tokens == server.tokens


async def test_strict_openai_refuses_the_old_free_form_schema_and_the_fallback_is_recorded():
    """The loopback OpenAI enforces strict mode: the domain Task (free-form dicts) gets OpenAI's
    400; the client falls back to JSON mode once and says why."""
    from orchestrator_graph.models import Task

    class OldPlan(BaseModel):
        goal: str
        tasks: list[Task]

    with FakeOpenAI("openai") as server:
        model = ChatOpenAI(model="m", base_url=server.url, api_key="k", max_retries=0)
        profile = CallProfile(role="planner", method="json_schema", limits=Limits(retries=0))
        with track_usage() as usage, calling(profile):
            await ask_structured(model, OldPlan, _messages(ROLE_CALLS["mediator"]))
    (fallback,) = usage.models["m"].fallbacks
    assert fallback.startswith("json_schema -> json_mode: HTTP 400: Invalid schema for ")
    assert "response_format 'OldPlan'" in fallback
    assert [r["body"]["response_format"]["type"] for r in server.requests] == [
        "json_schema",
        "json_object",
    ]


async def test_a_call_abandoned_on_a_time_out_counts_its_bound_as_estimated_tokens():
    """The server may have read the prompt and written up to the output limit before the client
    gave up: budgets must see that, marked as an estimate, not zero."""
    call = ROLE_CALLS["planner"]
    with FakeOpenAI("openai", hang=TIMEOUT * 3) as server:
        server.fail("timeout")
        out, usage = await _ask(server, call, "openai")
    assert isinstance(out, call.schema)
    stats = usage.models["m-openai"]
    assert stats.errors == 1 and stats.calls == 1
    answered = server.tokens  # what the server reported for the one answered request
    prompt = sum(len(str(m.content)) for m in _messages(call)) // 4
    abandoned = prompt + Limits().max_tokens
    assert stats.estimated_tokens == abandoned
    assert stats.tokens == answered + abandoned
