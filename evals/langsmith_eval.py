"""The orchestrator evaluated through ``langsmith.evaluate``: a dataset of requests, the
compiled graph as the target, and evaluators for the approved share of tasks, the makespan
against the planned one, tokens and cost.

Offline by default: results stay local (``upload_results=False``) and no LangSmith request is
made. With ``--upload`` (and LANGSMITH_API_KEY set) the dataset is created in LangSmith if it
does not exist and the experiment is uploaded.

Run: python evals/langsmith_eval.py [--upload] [--dataset NAME] [--model offline]"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import uuid
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langsmith import Client, evaluate, tracing_context
from langsmith.schemas import Example

from orchestrator_graph import create_orchestrator
from orchestrator_graph.cli import EXAMPLE
from orchestrator_graph.sandbox import output_root
from orchestrator_graph.tools import SAMPLES

REQUESTS = [
    EXAMPLE,
    f"Collect the sales data from {SAMPLES / 'sales.csv'}, analyse revenue by region and write "
    "a report.",
    f"Collect the orders from {SAMPLES / 'online_sales.json'}, clean them, validate the rows and "
    "write a report.",
]
DATASET = "orchestrator-graph-requests"


def examples(dataset_id: uuid.UUID | None = None) -> list[Example]:
    dataset_id = dataset_id or uuid.uuid5(uuid.NAMESPACE_URL, DATASET)
    return [
        Example(
            id=uuid.uuid5(uuid.NAMESPACE_URL, request),
            dataset_id=dataset_id,
            inputs={"request": request},
            outputs={"status": "done"},
        )
        for request in REQUESTS
    ]


def make_target(model: str, folder: str, upload: bool) -> Any:
    graph = create_orchestrator(model=model).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )

    def target(inputs: dict[str, Any]) -> dict[str, Any]:
        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        context = {"use_memory": False, "output_dir": folder}
        # Offline, the run's own calls are not traced: nothing is sent anywhere.
        with tracing_context(enabled=upload):
            call = graph.ainvoke({"request": inputs["request"]}, config, context=context)
            return asyncio.run(call)["report"]

    return target


def approved_share(outputs: dict[str, Any], reference_outputs: dict[str, Any]) -> dict:
    tasks = outputs["tasks"].values()
    share = sum(t["status"] == "approved" for t in tasks) / max(len(tasks), 1)
    return {"key": "approved_share", "score": share}


def makespan_vs_plan(outputs: dict[str, Any]) -> dict:
    planned = (outputs.get("schedule") or {}).get("makespan") or outputs["planned_duration"]
    ratio = outputs["makespan"] / planned if planned else None
    return {"key": "makespan_vs_plan", "score": ratio}


def tokens(outputs: dict[str, Any]) -> dict:
    return {"key": "tokens", "score": sum(outputs.get("tokens", {}).values())}


def cost(outputs: dict[str, Any]) -> dict:
    return {"key": "cost", "score": outputs.get("cost", 0.0)}


def status_as_expected(outputs: dict[str, Any], reference_outputs: dict[str, Any]) -> dict:
    return {"key": "status", "score": float(outputs["status"] == reference_outputs["status"])}


EVALUATORS = [approved_share, makespan_vs_plan, tokens, cost, status_as_expected]


def run(*, upload: bool = False, dataset: str = DATASET, model: str = "offline") -> dict:
    """Scores per evaluator (median over the dataset) and the per-example rows."""
    if upload:
        if not os.environ.get("LANGSMITH_API_KEY"):
            raise SystemExit("--upload needs LANGSMITH_API_KEY")
        client = Client()
        if not client.has_dataset(dataset_name=dataset):
            created = client.create_dataset(dataset, description="orchestrator-graph requests")
            client.create_examples(
                dataset_id=created.id,
                examples=[{"inputs": e.inputs, "outputs": e.outputs} for e in examples()],
            )
        data: Any = dataset
    else:  # a client that knows it is offline: it asks no server for its settings
        client, data = Client(api_key="offline", info={}), examples()
    root = output_root()  # the reports go where this deployment lets runs write
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as folder:
        results = evaluate(
            make_target(model, folder, upload),
            data=data,
            evaluators=EVALUATORS,
            experiment_prefix="orchestrator-graph",
            upload_results=upload,
            max_concurrency=0,
            client=client,
        )
        rows = list(results)
    scores: dict[str, list[float]] = {}
    for row in rows:
        for result in row["evaluation_results"]["results"]:
            if result.score is not None:
                scores.setdefault(result.key, []).append(float(result.score))
    return {
        "examples": len(rows),
        "median": {k: statistics.median(v) for k, v in sorted(scores.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upload", action="store_true", help="upload to LangSmith")
    parser.add_argument("--dataset", default=DATASET)
    parser.add_argument("--model", default="offline")
    args = parser.parse_args()
    summary = run(upload=args.upload, dataset=args.dataset, model=args.model)
    print(f"{summary['examples']} examples")
    for key, value in summary["median"].items():
        print(f"  {key:18} median {value:.4g}")


if __name__ == "__main__":
    main()
