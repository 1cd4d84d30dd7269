"""Messages in, messages out: the request taken from a conversation (its last human message;
earlier messages as context) and the deliverable answered as an AI message, so the
orchestrator works where messages are the interface (``create_supervisor``, a node of a
messages graph, Studio's chat)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage

CONTEXT_CHARS = 4000
NAME = "orchestrator"


def last_human(state: Mapping[str, Any]) -> int | None:
    messages: Sequence[AnyMessage] = state.get("messages") or []
    humans = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
    return humans[-1] if humans else None


def asked(state: Mapping[str, Any]) -> str:
    """The id of the human message this run answers ("" for none): the next run on the thread
    takes a newer one as its request, not this run's ``request`` again."""
    last = last_human(state)
    return str(state["messages"][last].id or "") if last is not None else ""


def request_from(state: Mapping[str, Any]) -> Any:
    """The last human message of ``messages`` when it is new on the thread (not the one the
    last run answered), with the earlier messages (human and AI, not tool plumbing) as its
    context; else ``request``; else what was given, for ``limits.check_request`` to name."""
    request = state.get("request")
    last = last_human(state)
    has_request = isinstance(request, str) and bool(request.strip())
    if last is None or (has_request and asked(state) == state.get("asked")):
        return request
    messages: Sequence[AnyMessage] = state["messages"]
    earlier = [
        f"{m.type}: {m.text}"
        for m in messages[:last]
        if isinstance(m, (HumanMessage, AIMessage)) and m.text.strip()
    ]
    text: str = str(messages[last].text)
    if earlier:
        context = "\n".join(earlier)[-CONTEXT_CHARS:]
        text += f"\n\nEarlier in the conversation:\n{context}"
    return text


def answer(report: Mapping[str, Any]) -> AIMessage:
    """The deliverable (its summary and sections) as the orchestrator's AI message."""
    deliverable = report.get("deliverable") or {}
    parts = [f"**{report['status']}**: {deliverable.get('summary') or report.get('reason', '')}"]
    parts += [f"## {s['heading']}\n{s['body']}" for s in deliverable.get("sections", [])]
    if report["status"] != "done" and report.get("reason"):
        parts.append(f"({report['reason']})")
    return AIMessage(
        "\n\n".join(parts), name=NAME, response_metadata={"run_id": report.get("run_id", "")}
    )
