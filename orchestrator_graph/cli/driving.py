"""Driving a run from the shell: the graph on the data folder's persistence, its stream shown live,
its end turned into an exit code."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from orchestrator_graph.cli.common import CliError, err, stopped_line
from orchestrator_graph.cli.display import Display, show_report
from orchestrator_graph.cli.settings import checked_context, team_of
from orchestrator_graph.context import ROLES, Context
from orchestrator_graph.errors import (
    BudgetSpent,
    ProviderError,
    StructuredOutputError,
)
from orchestrator_graph.threads import (
    inspect_thread,
    owner,
)

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from rich.live import Live


async def drive(
    payload: Any,
    thread: str,
    settings: dict[str, Any],
    home: str | None,
    postgres: str | None,
    as_json: bool,
) -> int:
    """Run or continue a thread. LangGraph does not checkpoint the run context, so the settings
    a thread started with are kept in the store and applied again (under new flags) on resume."""
    from orchestrator_graph.graph import create_orchestrator
    from orchestrator_graph.ledger import THREAD_OWNERS, THREAD_SETTINGS
    from orchestrator_graph.persistence import open_persistence
    from orchestrator_graph.run_audit import chain_drive, chain_resume, enter
    from orchestrator_graph.sandbox import trust_output_dir
    from orchestrator_graph.thread_lease import thread_lease

    console = Console(stderr=True)
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    identity = enter(payload, home)
    async with (
        thread_lease(thread, home=home, postgres_url=postgres),
        open_persistence(home, postgres) as (saver, store),
    ):
        if not isinstance(payload, dict):  # resuming: the thread's own settings first
            saved = await store.aget(THREAD_SETTINGS, thread)
            settings = {**(saved.value if saved else {}), **settings}
        settings["identity"] = identity.model_dump()
        before = await store.aget(THREAD_OWNERS, thread)
        context = checked_context(settings)
        trust_output_dir(context.output_dir)
        builder = create_orchestrator(workers=team_of(settings), memory=memory_location(home))
        await store.aput(THREAD_SETTINGS, thread, settings, index=False)
        await store.aput(THREAD_OWNERS, thread, owner(), index=False)
        graph = builder.compile(checkpointer=saver, store=store)
        was = (await graph.aget_state(config)).values
        await chain_resume(store, was, payload, identity, before.value if before else None)
        display = Display(console, live=console.is_terminal and not as_json)
        if not as_json:
            console.print(
                f"thread [bold]{escape(thread)}[/]  models: "
                + escape(", ".join(f"{r}={m}" for r, m in _roles(context).items())),
                highlight=False,
            )

        live: Live | None = None

        async def consume() -> None:
            async for ev in graph.astream(
                payload,
                config,
                stream_mode="custom",
                context=context,
                durability="sync",
                subgraphs=True,
            ):
                _ns, data = ev
                if isinstance(data, dict) and data.get("event") == "orchestrator":
                    display.on_event(data)
                    if live is not None:
                        live.update(display.render())

        try:
            if display.live:
                from rich.live import Live

                with Live(display.render(), console=console, refresh_per_second=8) as live:
                    await consume()
            else:
                await consume()
        except (ProviderError, StructuredOutputError, BudgetSpent) as error:
            return stopped_line(thread, error, as_json)
        finally:
            await store.adelete(THREAD_OWNERS, thread)
        snapshot = await graph.aget_state(config)
        await chain_drive(store, snapshot.values, payload, identity)
    return finish(thread, snapshot, as_json)


def memory_location(home: str | None) -> str:
    """The plan memory: ``$ORCHESTRATOR_GRAPH_CHROMA`` (a folder or a server URL), else the
    ``chroma`` folder in the data directory."""
    from orchestrator_graph.memory import CHROMA_ENV
    from orchestrator_graph.persistence import data_dir

    return os.environ.get(CHROMA_ENV) or str(data_dir(home) / "chroma")


def _roles(context: Context) -> dict[str, str]:
    return {r: getattr(context, f"{r}_model") or "offline" for r in ROLES}


def finish(thread: str, snapshot: Any, as_json: bool) -> int:
    values = snapshot.values
    waiting = [i.value for t in snapshot.tasks for i in t.interrupts]
    if waiting:
        return _waiting(thread, waiting, as_json)
    report = values.get("report")
    if report is None:
        raise CliError(
            f"thread {thread} has no finished run (next: {list(snapshot.next) or 'none'})", 1
        )
    if as_json:
        print(json.dumps({"thread": thread, **report}, indent=2, default=str))
    else:
        show_report(report)
    if report["status"] != "done":
        err.print(f"run {report['status']}: {report['reason']}", markup=False, highlight=False)
        return 1
    return 0


def _waiting(thread: str, waiting: list[Any], as_json: bool) -> int:
    if as_json:
        print(
            json.dumps({"thread": thread, "status": "waiting", "interrupts": waiting}, default=str)
        )
        return 3
    for w in waiting:
        if w.get("type") == "budget":
            line = (
                f"stopped: {w['reason']}; go on with: orchestrator-graph resume "
                f"{thread} --budget NAME=MORE"
            )
        else:
            line = (
                f"waiting for a human: task {w.get('task_id')}: {w.get('reason')}\n"
                f"answer with: orchestrator-graph resume {thread} --answer accept|retry|skip"
            )
        err.print(line, markup=False, highlight=False)
    return 3


async def _snapshot(thread: str, home: str | None, postgres: str | None) -> Any:
    return (await inspect_thread(thread, home, postgres)).snapshot
