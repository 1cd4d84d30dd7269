"""``orchestrator-graph doctor``: is this deployment usable? Each check says what it found and,
when something is wrong or missing, how to fix it. Nothing is reported as fine that was not
checked: auth that is not configured says so."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from orchestrator_graph.context import ROLES

Status = Literal["ok", "warn", "fail"]
DISK_FAIL = 0.5e9  # bytes free below which runs will fail to checkpoint
DISK_WARN = 2e9


class Check(BaseModel):
    name: str
    status: Status
    detail: str
    fix: str = ""


async def check_database(home: str | None, postgres: str | None) -> list[Check]:
    """The checkpointer and store: reachable, schema set up, store writable."""
    from orchestrator_graph.persistence import POSTGRES_ENV, open_persistence

    where = postgres or os.environ.get(POSTGRES_ENV) or "SQLite in the data folder"
    fix = (
        "start PostgreSQL or correct --postgres / $ORCHESTRATOR_GRAPH_POSTGRES_URL"
        if postgres or os.environ.get(POSTGRES_ENV)
        else "check the data folder (--home / $ORCHESTRATOR_GRAPH_HOME) exists and is writable"
    )
    try:
        async with open_persistence(home, postgres) as (saver, store):
            await saver.aget_tuple({"configurable": {"thread_id": "__doctor__"}})
            database = Check(
                name="database",
                status="ok",
                detail=f"{_redact(where)} reachable; checkpoint and store tables set up",
            )
            return [database, await _store_check(store)]
    except Exception as err:  # every failure is the finding: reported with its fix
        detail = f"{_redact(where)}: {type(err).__name__}: {err}"
        return [
            Check(name="database", status="fail", detail=detail, fix=fix),
            Check(name="store", status="fail", detail="not checked: no database", fix=fix),
        ]


async def _store_check(store: object) -> Check:
    from orchestrator_graph.ledger import DOCTOR

    namespace, key = DOCTOR, f"probe-{os.getpid()}"
    try:
        await store.aput(namespace, key, {"at": time.time()}, index=False)  # type: ignore[attr-defined]
        item = await store.aget(namespace, key)  # type: ignore[attr-defined]
        await store.adelete(namespace, key)  # type: ignore[attr-defined]
    except Exception as err:  # the finding
        return Check(
            name="store",
            status="fail",
            detail=f"{type(err).__name__}: {err}",
            fix="the database user needs write access to the store table",
        )
    if item is None:
        return Check(name="store", status="fail", detail="a written item could not be read back")
    return Check(name="store", status="ok", detail="an item was written, read back and deleted")


async def check_memory(location: str) -> Check:
    from orchestrator_graph.memory import MemoryHandle, MemoryUnavailable

    try:
        records = await MemoryHandle(location).call("records", limit=5)
    except MemoryUnavailable as err:
        return Check(
            name="chroma",
            status="fail",
            detail=str(err),
            fix="start the Chroma server, or move the damaged folder aside (runs go on without "
            "memory meanwhile); $ORCHESTRATOR_GRAPH_CHROMA sets the location",
        )
    return Check(
        name="chroma", status="ok", detail=f"{location} readable ({len(records)} recent runs read)"
    )


async def check_models(specs: Mapping[str, str], ping: bool) -> list[Check]:
    """Each role's model can be created (its package and key are there); with ``ping`` it is
    asked one short question."""
    from orchestrator_graph.llm import OFFLINE, resolve_model

    out = []
    for role in ROLES:
        spec = specs.get(role, OFFLINE)
        if spec == OFFLINE:
            out.append(
                Check(
                    name=f"model:{role}",
                    status="warn",
                    detail="the offline model (no provider configured): rule-based, for demos",
                    fix=f"--model {role}=provider:model (e.g. openai:gpt-4.1) with its API key set",
                )
            )
            continue
        try:
            model = resolve_model(spec)
            if ping:
                await model.ainvoke("Answer with the single word: ok")
        except Exception as err:  # the finding
            out.append(
                Check(
                    name=f"model:{role}",
                    status="fail",
                    detail=f"{spec}: {type(err).__name__}: {str(err).splitlines()[0][:200]}",
                    fix="install the provider package and set its API key (e.g. OPENAI_API_KEY)",
                )
            )
            continue
        said = "created and answered" if ping else "created (not called; --ping asks it)"
        out.append(Check(name=f"model:{role}", status="ok", detail=f"{spec}: {said}"))
    return out


def check_auth(config: Path) -> Check:
    """Server authentication: the ``auth`` section of langgraph.json."""
    if not config.is_file():
        return Check(
            name="auth",
            status="warn",
            detail=f"{config} not found: server auth not checked",
            fix="run doctor from the project folder or pass --config langgraph.json",
        )
    auth = json.loads(config.read_text(encoding="utf-8")).get("auth")
    if not auth or not auth.get("path"):
        return Check(
            name="auth",
            status="warn",
            detail="not configured: the server accepts every request",
            fix='add "auth": {"path": "module.py:auth"} (a langgraph_sdk Auth) to langgraph.json',
        )
    return Check(name="auth", status="ok", detail=f"auth handler {auth['path']}")


def check_disk(folder: Path) -> Check:
    free = shutil.disk_usage(folder).free
    status: Status = "fail" if free < DISK_FAIL else "warn" if free < DISK_WARN else "ok"
    return Check(
        name="disk",
        status=status,
        detail=f"{free / 1e9:.1f} GB free in {folder}",
        fix="" if status == "ok" else "free space or move the data folder (--home)",
    )


async def diagnose(
    *,
    home: str | None,
    postgres: str | None,
    memory: str,
    models: Mapping[str, str],
    config: Path,
    ping: bool = False,
) -> list[Check]:
    from orchestrator_graph.persistence import data_dir

    checks = await check_database(home, postgres)
    checks.append(await check_memory(memory))
    checks += await check_models(models, ping)
    checks.append(check_auth(config))
    checks.append(check_disk(data_dir(home)))
    return checks


def worst(checks: Sequence[Check]) -> Status:
    statuses = {c.status for c in checks}
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "ok"


def _redact(url: str) -> str:
    """A connection URL without its password."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
    return url
