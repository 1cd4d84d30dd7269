"""The command line's part in the audit: who acts (the configured identity, checked against its
roles) and the crash, resume and run events it chains around driving a thread."""

from __future__ import annotations

import time
from typing import Any

from langgraph.store.base import BaseStore

from orchestrator_graph.auditlog import (
    ACTIVE_KEY,
    AuditLog,
    ChainEvent,
    audit_key,
    chain_state,
    use_home,
)
from orchestrator_graph.identity import Action, Identity, local_identity
from orchestrator_graph.threads import alive


def cli_action(payload: Any) -> Action:
    """A new run needs ``start``; an answer to an escalation or a budget stop (``continue``)
    ``answer``, as on the server; going on after a crash ``resume``."""
    if isinstance(payload, dict):
        return "start"
    return "answer" if getattr(payload, "resume", None) is not None else "resume"


def enter(payload: Any, home: str | None) -> Identity:
    """The CLI's identity, allowed to do what ``payload`` asks; the audit key for this process."""
    identity = local_identity()
    identity.require(cli_action(payload), "this thread")
    use_home(home)
    return identity


async def chain_resume(
    store: BaseStore,
    values: dict[str, Any],
    payload: Any,
    identity: Identity,
    before: dict[str, Any] | None,
) -> None:
    """Before a thread is driven on: a crash found (the process that drove it died), the resume
    and who did it, so they are chained even if this drive stops too."""
    run_id = values.get("run_id")
    if not run_id or isinstance(payload, dict):
        return
    events: list[ChainEvent] = []
    if before and alive(before) is False:
        crash = f"crash:{before.get('pid')}:{before.get('since')}"
        events.append((crash, "system", "crash found", before))
    resume = getattr(payload, "resume", None)
    detail = {"answer": resume, "by": identity.model_dump()}
    events.append((f"resume:{time.time()}", identity.name, "resumed", detail))
    log = AuditLog(store, run_id, ACTIVE_KEY.get() or audit_key())
    await log.append(events)
    await log.settle()


async def chain_drive(
    store: BaseStore, values: dict[str, Any], payload: Any, identity: Identity
) -> None:
    """After driving a thread: who started it (its run id is known only now), then what the
    state recorded and the chain lacks."""
    run_id = values.get("run_id")
    if not run_id:
        return
    if isinstance(payload, dict):
        started = (f"start:{time.time()}", identity.name, "started", {"by": identity.model_dump()})
        await AuditLog(store, run_id, ACTIVE_KEY.get() or audit_key()).append([started])
    await chain_state(store, values)
