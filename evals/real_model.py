"""A real model in every role, against any OpenAI-compatible endpoint.

Runs the bundled job, five free-text requests over the bundled data, and a declared plan (no
planning call), each in a fresh thread with a time budget, and prints per role: calls, the
structured-output method used, structured-output failures and repairs, provider errors, tokens
counted by the client and (through a counting proxy in front of the endpoint) the tokens the
server reported, time; per run the outcome on one line; and the share of invented facts the
grounding check caught. An invented fact, for this eval, is a number or a capitalised name in a
worker's text that occurs nowhere in the raw sample files, the request, the plan or the tool
results of the run (a plain text search, independent of ``grounding.py``).

Run against a local llama-cpp-python server with SmolLM2 (see README, "Using a real model"):

    python evals/real_model.py --base-url http://127.0.0.1:8000/v1 --model smollm2-135m-instruct
    python evals/real_model.py --offline       # the same on the offline model, for comparison
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import select
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from orchestrator_graph import create_orchestrator
from orchestrator_graph.cli import EXAMPLE
from orchestrator_graph.errors import OrchestratorError
from orchestrator_graph.ledger import Ledger
from orchestrator_graph.tools import SAMPLES

CSV, JSON_FILE = SAMPLES / "sales.csv", SAMPLES / "online_sales.json"
REQUESTS = [
    f"Load {CSV} and report the total revenue.",
    f"Collect {JSON_FILE}, clean it and analyse revenue by region.",
    f"Validate the rows of {CSV} and write a report of the issues found.",
    f"Collect {CSV} and {JSON_FILE}, analyse revenue by product and write a short report.",
    f"Clean {CSV} and compare revenue by region.",
]
ROLES = ("planner", "worker", "reviewer", "mediator", "synthesizer")


def _gone(sock: socket.socket) -> bool:
    """Whether the client closed its side (it timed out) while the server was still working."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class CountingProxy:
    """Forwards every request to the endpoint and sums the usage the server reports: for answers
    the client received (``tokens``), and for requests the client had given up on (``abandoned``:
    a local server may go on generating after a client's time-out, unseen by the client)."""

    def __init__(self, target: str) -> None:
        self.target, self.lock = target.rstrip("/"), threading.Lock()
        self.tokens = self.abandoned = self.requests = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CountingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                path = self.path.removeprefix("/v1")
                request = urllib.request.Request(
                    outer.target + path,
                    data=body,
                    headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                )
                try:
                    with urllib.request.urlopen(request, timeout=600) as answer:
                        status, data, kind = answer.status, answer.read(), answer.headers
                except urllib.error.HTTPError as error:
                    status, data, kind = error.code, error.read(), error.headers
                used = 0
                with contextlib.suppress(ValueError, AttributeError):
                    used = int(json.loads(data).get("usage", {}).get("total_tokens", 0))
                gone = _gone(self.connection)
                with outer.lock:
                    outer.requests += 1
                    if gone:
                        outer.abandoned += used
                    else:
                        outer.tokens += used
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind.get("Content-Type", "application/json"))
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def declared_plan() -> dict[str, Any]:
    """The bundled job as the offline planner plans it, declared: no planning call."""
    from orchestrator_graph.offline import _plan
    from orchestrator_graph.prompts import render
    from orchestrator_graph.schemas import PlanDraft

    prompt = render(
        "planner.user",
        request=EXAMPLE,
        skills="analysis, data_collection, processing, reporting, validation",
        workers="none",
        examples="none",
        feedback="none",
    )
    return PlanDraft.model_validate(_plan(prompt, {})).to_plan().model_dump(mode="json")


_NUM = re.compile(r"\d+(?:\.\d+)?")
_CAP = re.compile(r"(?<=[a-z,;] )[A-Z][a-z]{2,}")


def invented(text: str, corpus: str) -> bool:
    """A number or mid-sentence capitalised word of ``text`` found nowhere in ``corpus``."""
    numbers = [n for n in _NUM.findall(text) if n not in ("0", "1") and n not in corpus]
    names = [w for w in _CAP.findall(text) if w.lower() not in corpus]
    return bool(numbers or names)


async def one_run(label: str, payload: dict[str, Any], model: str, context: dict[str, Any]):
    graph = create_orchestrator(model=model).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    config = {"configurable": {"thread_id": label}}
    started = time.monotonic()
    try:
        out = await graph.ainvoke(payload, config, context=context)
        report = out.get("report") or {}
        outcome = f"{report.get('status', 'waiting')}: {report.get('reason') or 'ok'}"
    except OrchestratorError as err:  # the provider, an unusable answer or a budget: one line
        outcome = f"stopped ({type(err).__name__}): {err}"
    values = (await graph.aget_state(config)).values
    seconds = time.monotonic() - started
    return graph, values, outcome, seconds


async def facts_caught(graph: Any, values: dict[str, Any], request: str) -> tuple[int, int]:
    """(attempts whose text invented a fact, of those the grounding check rejected)."""
    run_id = values.get("run_id")
    if not run_id:
        return 0, 0
    store = graph.store
    attempts = await Ledger(store, run_id).attempts()
    tools = [
        {k: v for k, v in (r.output or {}).items() if k != "summary"}
        for r, _ in attempts
        if isinstance(r.output, dict)
    ]
    corpus = " ".join(
        [CSV.read_text(), JSON_FILE.read_text(), request, json.dumps(values.get("plan"))]
        + [json.dumps(t, default=str) for t in tools]
        + [str(len(v)) for t in tools for v in t.values() if isinstance(v, (list, dict))]
    ).lower()
    found = caught = 0
    for result, review in attempts:
        text = (result.output or {}).get("summary", "") if isinstance(result.output, dict) else ""
        if isinstance(text, str) and text and invented(text, corpus):
            if os.environ.get("REAL_MODEL_DEBUG"):
                print("   invented?", result.task_id, result.attempt, text[:300])
            found += 1
            caught += any(c.name == "grounded" and not c.passed for c in review.checks)
    return found, caught


def _usage(values: dict[str, Any], graph: Any) -> dict[str, dict[str, Any]]:
    """Per role, summed over models: the report's usage, or the state's and the ledger's."""
    usage = (values.get("report") or {}).get("usage") or values.get("usage") or {}
    rows: dict[str, dict[str, Any]] = {}
    for role, models in usage.items():
        row = rows.setdefault(role, {"methods": set(), "fallbacks": 0})
        for stats in models.values():
            for key in ("calls", "tokens", "estimated_tokens", "errors", "failures", "repairs",
                        "length_reasks", "seconds"):  # fmt: skip
                row[key] = row.get(key, 0) + stats.get(key, 0)
            row["methods"] |= set(stats.get("methods", []))
            row["fallbacks"] += len(stats.get("fallbacks", []))
    return rows


async def add_attempt_usage(graph: Any, values: dict[str, Any]) -> dict[str, Any]:
    """A run stopped before ``learn`` has its attempts' usage only in the ledger."""
    if (values.get("report") or {}).get("usage") or not values.get("run_id"):
        return values
    from orchestrator_graph.ledger import load_spent
    from orchestrator_graph.nodes.learn import accounting

    attempts = await Ledger(graph.store, values["run_id"]).attempts()
    spent = await load_spent(graph.store, values["run_id"])
    return {**values, "usage": accounting(values, attempts, spent)["usage"]}  # type: ignore[arg-type]


def print_table(title: str, totals: dict[str, dict[str, Any]]) -> None:
    print(f"\n{title}")
    head = (
        f"{'role':<12}{'calls':>6}  {'method':<26}{'so-fail':>8}{'repairs':>8}{'len-reask':>10}"
        f"{'prov-err':>9}{'fallbk':>7}{'tokens':>9}{'(est.)':>8}{'time s':>8}"
    )
    print(head)
    print("-" * len(head))
    for role in ROLES:
        r = totals.get(role)
        if not r:
            continue
        print(
            f"{role:<12}{r.get('calls', 0):>6}  {','.join(sorted(r['methods'])) or '-':<26}"
            f"{r.get('failures', 0):>8}{r.get('repairs', 0):>8}{r.get('length_reasks', 0):>10}"
            f"{r.get('errors', 0):>9}{r['fallbacks']:>7}{r.get('tokens', 0):>9}"
            f"{r.get('estimated_tokens', 0):>8}{r.get('seconds', 0):>8.1f}"
        )


def merge_rows(into: dict[str, dict[str, Any]], rows: dict[str, dict[str, Any]]) -> None:
    for role, row in rows.items():
        mine = into.setdefault(role, {"methods": set(), "fallbacks": 0})
        for key, value in row.items():
            if key == "methods":
                mine["methods"] |= value
            else:
                mine[key] = mine.get(key, 0) + value


async def main(args: argparse.Namespace) -> None:
    context = {
        "use_memory": False,
        "output_dir": tempfile.mkdtemp(prefix="real-model-"),
        "budget_seconds": args.budget_seconds,
        "request_timeout": args.timeout,
        "role_limits": {
            "planner": {"max_tokens": args.planner_tokens},
            "synthesizer": {"max_tokens": args.planner_tokens},
            **{r: {"max_tokens": args.tokens} for r in ("worker", "reviewer", "mediator")},
        },
        "max_attempts": 2,
    }
    if args.structured_output:
        context["structured_output"] = {r: args.structured_output for r in ROLES}
    runs = [("declared plan", {"request": EXAMPLE, "plan": declared_plan()})]
    runs += [("bundled job", {"request": EXAMPLE})]
    runs += [(f"request {i + 1}", {"request": r}) for i, r in enumerate(REQUESTS)]
    model = "offline" if args.offline else f"openai:{args.model}"
    totals: dict[str, dict[str, Any]] = {}
    found = caught = client = server = abandoned = 0
    proxy = None if args.offline else CountingProxy(args.base_url)
    if proxy:
        proxy.__enter__()
        os.environ["OPENAI_BASE_URL"] = proxy.url
        os.environ.setdefault("OPENAI_API_KEY", args.api_key)
    try:
        print(f"model {model}  endpoint {args.base_url if proxy else '(none)'}")
        for label, payload in runs:
            before = proxy.tokens if proxy else 0
            dropped = proxy.abandoned if proxy else 0
            graph, values, outcome, seconds = await one_run(label, payload, model, context)
            values = await add_attempt_usage(graph, values)
            rows = _usage(values, graph)
            merge_rows(totals, rows)
            used = sum(r.get("tokens", 0) for r in rows.values())
            seen = (proxy.tokens - before) if proxy else used
            client, server = client + used, server + seen
            lost = (proxy.abandoned - dropped) if proxy else 0
            abandoned += lost
            f, c = await facts_caught(graph, values, payload["request"])
            found, caught = found + f, caught + c
            print(
                f"{label:<14} {seconds:7.1f}s  tokens client {used:>6} server {seen:>6} "
                f"(+{lost} abandoned)  "
                f"invented {f} caught {c}  -> {' '.join(outcome.split())[:220]}"
            )
    finally:
        if proxy:
            proxy.__exit__()
    print_table(f"per role over {len(runs)} runs ({model})", totals)
    share = f"{caught}/{found} = {caught / found:.0%}" if found else "0/0 (none invented)"
    gap = abs(client - server) / server if server else 0.0
    print(f"\ntokens: client {client}, server {server} (difference {gap:.2%})")
    if abandoned:
        print(
            f"plus {abandoned} tokens the server spent on requests the client had abandoned "
            "(time-out or budget): generated after the client stopped waiting"
        )
    print(f"invented facts caught by the grounding check: {share}")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL", ""))
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--api-key", default="not-needed-for-a-local-server")
    parser.add_argument("--offline", action="store_true", help="the offline model instead")
    parser.add_argument("--budget-seconds", type=float, default=240.0, help="per run")
    parser.add_argument("--timeout", type=float, default=120.0, help="per model request")
    parser.add_argument("--tokens", type=int, default=192, help="output limit: worker etc.")
    parser.add_argument("--planner-tokens", type=int, default=768, help="planner, synthesizer")
    parser.add_argument("--structured-output", default=None, help="force a method, all roles")
    args = parser.parse_args()
    if not args.offline and not args.base_url:
        parser.error("give --base-url (an OpenAI-compatible endpoint) or --offline")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
