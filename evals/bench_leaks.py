"""Leaks: seeded secrets and personal data planted in a run, then every file it left grepped.

50 items of 12 kinds (emails, phone numbers, US SSNs, card numbers, IBANs, AWS, GitHub, Slack,
Stripe and JWT tokens, provider API keys), each unique and valid for its kind (Luhn, the IBAN
checksum, SSN rules), are planted in four places, round-robin: the request, the declared plan's
task inputs, the input file the collector reads (a tool result) and a worker's output. The run
uses the real SQLite checkpointer and store (or Postgres with ``--postgres``), the embedded
Chroma plan memory, and writes its event log, report and deliverable to files. Then every file
in its data folder and output folder (and the Postgres database, dumped with pg_dump) is grepped
for each value: the goal is 0 found in clear, with the compliance report's count of distinct
values redacted equal to the number planted (every kind planted is one the default policy
redacts or masks).

Run: python evals/bench_leaks.py [--postgres postgresql://postgres@127.0.0.1:5432/DB]"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import string
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from stdnum import iban, luhn

from orchestrator_graph import Worker, create_orchestrator, default_team
from orchestrator_graph.workers import WorkerContext, WorkerInput

KINDS = {
    "email": 8,
    "phone": 5,
    "ssn": 5,
    "card": 5,
    "iban": 5,
    "aws": 3,
    "github": 3,
    "slack": 3,
    "stripe": 3,
    "jwt": 3,
    "api_key": 4,
    "basic_auth": 3,
}
PLACES = ("request", "inputs", "file", "output")


def _chars(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def make_item(kind: str, i: int, rng: random.Random) -> str:
    digits, alnum = string.digits, string.ascii_letters + string.digits
    if kind == "email":
        return f"{_chars(rng, string.ascii_lowercase, 6)}.{i}@corp{i}.example.org"
    if kind == "phone":
        return f"+44 20 79{rng.randint(10, 99)} {rng.randint(1000, 9999)}"
    if kind == "ssn":
        return f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
    if kind == "card":
        body = rng.choice(["4", "51", "55"]) + _chars(rng, digits, 13)
        body = body[:15]
        full = body + luhn.calc_check_digit(body)
        return " ".join(full[k : k + 4] for k in range(0, 16, 4))
    if kind == "iban":
        bban = _chars(rng, digits, 18)
        return iban.format("DE" + iban.calc_check_digits("DE00" + bban) + bban)
    if kind == "aws":
        return "AKIA" + _chars(rng, string.ascii_uppercase + digits, 16)
    if kind == "github":
        return "ghp_" + _chars(rng, alnum, 36)
    if kind == "slack":
        tail = _chars(rng, "abcdef0123456789", 24)
        return f"xoxb-{_chars(rng, digits, 11)}-{_chars(rng, digits, 12)}-{tail}"
    if kind == "stripe":
        return "sk_live_" + _chars(rng, alnum, 24)
    if kind == "jwt":
        return f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOi{_chars(rng, alnum, 20)}.{_chars(rng, alnum, 43)}"
    if kind == "api_key":
        return "sk-proj-" + _chars(rng, alnum, 40)
    if kind == "basic_auth":
        return f"https://svc{i}:{_chars(rng, alnum, 14)}@db{i}.internal.example/x"
    raise ValueError(kind)


def plant(seed: int = 7) -> dict[str, list[tuple[str, str]]]:
    """place -> [(kind, value)]: 50 unique items, spread round-robin over the four places."""
    rng = random.Random(seed)
    items = [(kind, make_item(kind, i, rng)) for kind, n in KINDS.items() for i in range(n)]
    rng.shuffle(items)
    placed: dict[str, list[tuple[str, str]]] = {p: [] for p in PLACES}
    for i, item in enumerate(items):
        placed[PLACES[i % len(PLACES)]].append(item)
    return placed


def secret(value: str) -> str:
    """The part of a planted value that must never be found in clear."""
    if value.startswith("https://"):
        return value.split("//", 1)[1].split("@", 1)[0]  # user:password
    return value


class Leaky:
    """A worker that also returns planted values as a field of its output."""

    def __init__(self, run: Any, planted: list[tuple[str, str]]) -> None:
        self.run, self.planted = run, planted

    async def __call__(self, payload: WorkerInput, ctx: WorkerContext) -> Any:
        output = await self.run(payload, ctx)
        return {**output, "contacts": [f"{kind}: {value}" for kind, value in self.planted]}


def _input_file(folder: Path, items: list[tuple[str, str]]) -> Path:
    from orchestrator_graph.tools import SAMPLES

    lines = (SAMPLES / "sales.csv").read_text().splitlines()
    rows = [f'{line},"{value}"' for line, (_k, value) in zip(lines[1:], items, strict=False)]
    path = folder / "customers.csv"
    path.write_text("\n".join([lines[0] + ",contact", *rows, *lines[1 + len(rows) :]]) + "\n")
    return path


def _plan(path: Path, items: list[tuple[str, str]]) -> dict[str, Any]:
    def task(tid: str, skill: str, deps: list[str], **inputs: Any) -> dict[str, Any]:
        return {"id": tid, "title": tid, "skills": [skill], "depends_on": deps, "inputs": inputs}

    notes = {f"contact_{i}": value for i, (_k, value) in enumerate(items)}
    return {
        "tasks": [
            task("collect", "data_collection", [], path=str(path), **notes),
            task("clean", "processing", ["collect"]),
            task("check", "validation", ["clean"]),
            task("analyse", "analysis", ["check"], group_by="region"),
            task("report", "reporting", ["analyse", "check"], title="Customer revenue"),
        ]
    }


async def run_planted(
    home: Path, out: Path, inputs: Path, postgres: str | None = None
) -> dict[str, Any]:
    """One run with the items planted; returns the items, the report and the event count."""
    from orchestrator_graph.persistence import open_persistence
    from orchestrator_graph.rendering import deliverable_markdown

    placed = plant()
    team = [
        Worker(**{**w.model_dump(), "run": Leaky(w.run, placed["output"])})
        if w.name == "analyst"
        else w
        for w in default_team()
    ]
    request = "Analyse revenue by region and report. Contacts: " + "; ".join(
        v for _k, v in placed["request"]
    )
    plan = _plan(_input_file(inputs, placed["file"]), placed["inputs"])
    events = []
    async with open_persistence(home, postgres) as (saver, store):
        graph = create_orchestrator(workers=team, memory=str(home / "chroma")).compile(
            checkpointer=saver, store=store
        )
        config = {"configurable": {"thread_id": "leaks"}}
        async for mode, part in graph.astream(
            {"request": request, "plan": plan},
            config,
            context={"output_dir": str(out), "grounding": False},
            stream_mode=["custom", "values"],
        ):
            if mode == "custom":
                events.append(part)
            else:
                final = part
    report = final["report"]
    (home / "events.log").write_text("\n".join(json.dumps(e) for e in events))
    (home / "report.json").write_text(json.dumps(report))
    (home / "deliverable.md").write_text(deliverable_markdown(report["deliverable"] or {}))
    items = [item for place in PLACES for item in placed[place]]
    return {"items": items, "report": report, "events": len(events)}


def grep(folders: list[Path], values: list[str], extra: bytes = b"") -> dict[str, list[str]]:
    """value -> the files that hold it in clear (``extra``: more bytes, e.g. a database dump)."""
    blobs = [(str(p), p.read_bytes()) for f in folders for p in f.rglob("*") if p.is_file()]
    blobs.append(("postgres dump", extra))
    return {
        v: hits for v in values if (hits := [name for name, blob in blobs if v.encode() in blob])
    }


def pg_dump(url: str) -> bytes:
    return subprocess.run(["pg_dump", url], capture_output=True, check=True).stdout


async def bench(postgres: str | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        home, out, inputs = Path(tmp) / "home", Path(tmp) / "out", Path(tmp) / "inputs"
        for folder in (home, out, inputs):
            folder.mkdir()
        os.environ["ORCHESTRATOR_GRAPH_OUTPUT_ROOT"] = str(out)
        os.environ["ORCHESTRATOR_GRAPH_INPUT_ROOTS"] = str(inputs)  # the user's file: not grepped
        done = await run_planted(home, out, inputs, postgres)
        values = [secret(v) for _k, v in done["items"]]
        found = grep([home, out], values, pg_dump(postgres) if postgres else b"")
        files = sorted(str(p.relative_to(tmp)) for f in (home, out) for p in f.rglob("*"))
        if not shutil.which("pg_dump") and postgres:
            raise RuntimeError("pg_dump is not installed")
    compliance = done["report"]["compliance"]
    return {
        "planted": len(values),
        "found_in_clear": found,
        "redacted": sum(compliance["redactions"].values()),
        "by_kind": compliance["redactions"],
        "status": done["report"]["status"],
        "files": len([f for f in files if "." in Path(f).name]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="a Postgres database URL (its tables are dumped)")
    args = parser.parse_args()
    result = asyncio.run(bench(args.postgres))
    print("\n## Leaks: 50 planted secrets and personal data\n")
    print("| planted | found in clear | redacted (compliance report) | run status |")
    print("|---|---|---|---|")
    print(
        f"| {result['planted']} | {len(result['found_in_clear'])} | {result['redacted']} "
        f"| {result['status']} |"
    )
    print(f"\nby kind: {json.dumps(result['by_kind'])}")
    for value, where in result["found_in_clear"].items():
        print(f"- in clear: {value[:12]}… in {', '.join(where)}")


if __name__ == "__main__":
    main()
