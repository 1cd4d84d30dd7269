"""The LangGraph server's checkpointer (``checkpointer.path`` in ``langgraph.json``): the
server's own default saver (``langgraph_runtime``'s, the one ``langgraph dev`` keeps in
``.langgraph_api/``), with every checkpoint, its metadata and every pending write redacted by
the data policy before it is kept, as the command line's savers are."""

from __future__ import annotations

import asyncio
from typing import Any


async def checkpointer() -> Any:
    from langgraph_runtime.checkpoint import Checkpointer

    from orchestrator_graph.protection.persist import protect_saver
    from orchestrator_graph.protection.redact import default_redactor

    redactor = await asyncio.to_thread(default_redactor)  # reads its key file: off the loop
    return protect_saver(Checkpointer(), redactor)
