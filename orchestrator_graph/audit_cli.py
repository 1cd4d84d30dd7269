"""``orchestrator-graph audit THREAD --verify / --export FILE``: the keyed chain checked and
written out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from orchestrator_graph.auditlog import AuditLog, audit_key, export_jsonl, heads_dir
from orchestrator_graph.errors import InputError
from orchestrator_graph.identity import local_identity


async def check_chain(
    values: dict[str, Any],
    home: str | None,
    postgres: str | None,
    export: Path | None,
    as_json: bool,
) -> int:
    from orchestrator_graph.persistence import open_persistence

    local_identity().require("read", "the audit")
    run_id = values.get("run_id")
    if not run_id:
        raise InputError("the thread has no run yet: nothing is audited")
    key = audit_key(home, create=False)
    async with open_persistence(home, postgres) as (_saver, store):
        result = await AuditLog(store, run_id, key, heads_dir(home)).verify()
        if export is not None:
            export.write_text(await export_jsonl(store, run_id, key))
    if as_json:
        print(json.dumps(result.model_dump()))
    elif result.ok:
        purged = f", {result.purged} payloads purged" if result.purged else ""
        Console().print(f"audit of run {run_id}: {result.entries} entries verify{purged}")
    else:
        assert result.broken is not None
        Console(stderr=True).print(
            f"audit of run {run_id}: entry {result.broken.seq} is broken: {result.broken.reason}",
            markup=False,
        )
    return 0 if result.ok else 1
