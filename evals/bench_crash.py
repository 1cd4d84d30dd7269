"""Crash-and-resume at many seeded kill points.

For each seed: start the simulated job (evals/crash_job.py) in a subprocess, SIGKILL it after a
seeded number of progress events plus a seeded delay (so kills land in planning, dispatch,
workers, QA and synthesis), resume the thread from a new process, and check that it completes,
that no attempt finished before the kill ran again, and that it ends exactly as an uninterrupted
run. Prints one row per kill point and a summary.

Run: python evals/bench_crash.py [--points 24] [--postgres URL]"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

from crash_job import executions, finished_attempts, outcome, report_of, start

MODEL_DELAY = "0.05"
PHASE = {
    "run_started": "planning",
    "recalled": "planning",
    "planned": "dispatch",
    "task_started": "worker",
    "qa_verdict": "qa",
    "task_completed": "dispatch",
    "task_failed": "dispatch",
    "progress": "dispatch",
    "synthesized": "synthesis",
    "final_review": "final qa",
    "learned": "learn",
}


def reference(pg: str) -> tuple[dict, list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        proc = start("start", Path(tmp), pg, "reference", MODEL_DELAY)
        out, err = proc.communicate(timeout=180)
        if proc.returncode != 0:
            raise RuntimeError(err[-2000:])
        lines = out.strip().splitlines()
        report = json.loads(lines[-1].removeprefix("REPORT "))
        return outcome(report), [json.loads(x)["kind"] for x in lines[:-1]]


STRATA = ("planning", "dispatch", "worker", "qa", "synthesis")


def kill_point(seed: int, events: list[str], pg: str, expected: dict) -> dict:
    """Seed i kills in stratum i % 5: after an event of that phase, plus a seeded delay."""
    rng = random.Random(seed)
    phase = STRATA[seed % len(STRATA)]
    candidates = [i + 1 for i, kind in enumerate(events[:-1]) if PHASE.get(kind) == phase]
    after, delay = rng.choice(candidates), rng.uniform(0.0, 0.04)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        thread = f"kill-{seed}"
        proc = start("start", home, pg, thread, MODEL_DELAY)
        last = "none"
        for _ in range(after):
            line = proc.stdout.readline()
            if not line or line.startswith("REPORT"):
                break
            last = json.loads(line)["kind"]
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        ran_before = len(executions(home))
        done_before = asyncio.run(finished_attempts(home, pg))
        report = report_of(start("resume", home, pg, thread, MODEL_DELAY))
        rerun = set(executions(home)[ran_before:]) & done_before
        return {
            "seed": seed,
            "after": after,
            "delay_ms": round(delay * 1000),
            "phase": PHASE.get(last, last),
            "finished_before": sum(run == report["run_id"] for run, *_ in done_before),
            "rerun": len(rerun),
            "same": outcome(report) == expected,
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=24)
    parser.add_argument("--postgres", default=None, help="also run 4 kill points on this database")
    args = parser.parse_args()
    backends = [("sqlite", "-", args.points)] + (
        [("postgres", args.postgres, 4)] if args.postgres else []
    )
    print(
        "| backend | seed | kill after event # | + delay ms | phase of that event | attempts "
        "finished before kill | finished attempts re-run | same final result |"
    )
    print("|---|---|---|---|---|---|---|---|")
    total = bad = 0
    for name, pg, points in backends:
        expected, events = reference(pg)
        for seed in range(points):
            row = kill_point(seed, events, pg, expected)
            total += 1
            bad += row["rerun"] > 0 or not row["same"]
            print(
                f"| {name} | {seed} | {row['after']} | {row['delay_ms']} | {row['phase']} | "
                f"{row['finished_before']} | {row['rerun']} | {'yes' if row['same'] else 'NO'} |",
                flush=True,
            )
    print(f"\n{total} kill points, {bad} with a re-run of finished work or a different result")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
