"""Run the example with LangSmith tracing on (the test sets the endpoint), then flush."""

import asyncio
import sys

from langchain_core.tracers.langchain import wait_for_all_tracers
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langsmith.run_trees import get_cached_client

from orchestrator_graph import create_orchestrator
from orchestrator_graph.cli import EXAMPLE


async def main(thread: str) -> None:
    graph = create_orchestrator().compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    context = {"use_memory": False, "review_mode": "always", "output_dir": sys.argv[2]}
    out = await graph.ainvoke(
        {"request": EXAMPLE}, {"configurable": {"thread_id": thread}}, context=context
    )
    print(out["report"]["run_id"], out["report"]["status"])


asyncio.run(main(sys.argv[1]))
wait_for_all_tracers()
get_cached_client().flush()
