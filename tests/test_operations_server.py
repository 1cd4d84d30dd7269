"""Operations on a real `langgraph dev`: /metrics scraped during and after a run and checked
against the run report, health and readiness, and the live dashboard in headless Chromium."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest
from langgraph_server import langgraph_dev

from orchestrator_graph.simulation import random_plan

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ops_server(tmp_path_factory):
    """`langgraph dev` with the custom HTTP app; this checkout's package first on the path."""
    with langgraph_dev(tmp_path_factory.mktemp("ops-server"), ready="/healthz") as url:
        yield url


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every orchestrator sample of /metrics as {(name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text = get(f"{url}/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("orchestrator_")
    }


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(
        v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items()
    )


def slow_plan(n: int = 8, seed: int = 5, effort: float = 0.5) -> dict:
    return random_plan(n, seed=seed, mean_effort=effort, skills=("sim",)).model_dump()


async def start_run(url: str, plan: dict, thread_id: str | None = None) -> tuple[object, str]:
    from langgraph_sdk import get_client

    client = get_client(url=url)
    thread = {"thread_id": thread_id} if thread_id else await client.threads.create()
    await client.runs.create(
        thread["thread_id"],
        "simulated",
        input={"request": "simulated job", "plan": plan},
        context={"use_memory": False},
    )
    return client, thread["thread_id"]


async def wait_report(client, thread_id: str, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = await client.threads.get_state(thread_id)
        if (state["values"] or {}).get("report") and not state["next"]:
            return state["values"]["report"]
        await asyncio.sleep(0.3)
    raise AssertionError(f"thread {thread_id} did not finish in {timeout}s")


async def test_metrics_scraped_during_and_after_a_run_match_the_report(ops_server):
    before = scrape(ops_server)
    client, thread_id = await start_run(ops_server, slow_plan())
    during, deadline = None, time.time() + 30
    while time.time() < deadline:  # scrape until the run shows as running with work done
        samples = scrape(ops_server)
        if total(samples, "orchestrator_runs_active", state="running") >= 1 and total(
            samples, "orchestrator_attempts_total"
        ) > total(before, "orchestrator_attempts_total"):
            during = samples
            break
        await asyncio.sleep(0.3)
    assert during is not None, "no scrape saw the run running with finished attempts"
    run_ids = {dict(ls)["run_id"] for n, ls in during if n == "orchestrator_run_eta_seconds"}
    assert run_ids, "a live run has an ETA"
    report = await wait_report(client, thread_id)
    assert report["status"] in ("done", "partial"), report["reason"]
    await asyncio.sleep(1.1)  # the views are gathered at most once a second
    after = scrape(ops_server)

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    approved = sum(r["status"] == "approved" for r in report["tasks"].values())
    assert grew("orchestrator_runs_total", status=report["status"]) == 1
    assert grew("orchestrator_tasks", status="approved") == approved
    assert grew("orchestrator_attempts_total") == len(report["actual"])
    rejected = sum(s["verdict"] == "reject" for s in report["actual"])
    assert grew("orchestrator_qa_verdicts_total", verdict="reject") == rejected
    assert grew("orchestrator_cost_total") == pytest.approx(report["cost"])
    assert report["cost"] > 0
    for role, model in report["models"].items():
        tokens = report["tokens"].get("workers" if role == "worker" else role, 0)
        assert grew("orchestrator_tokens_total", role=role, model=model) == tokens
    makespan = total(after, "orchestrator_run_makespan_seconds", run_id=report["run_id"])
    assert makespan == pytest.approx(report["makespan"])
    assert total(after, "orchestrator_runs_active", state="running") == 0
    busy = {dict(ls)["worker"] for n, ls in after if n == "orchestrator_worker_utilisation"}
    assert busy == {"sim-alpha", "sim-beta", "sim-gamma"}
    # the server's own metrics are served from the same endpoint
    assert (
        "lg_api" in get(f"{ops_server}/metrics")[1]
        or "python_gc" in get(f"{ops_server}/metrics")[1]
    )


def test_health_readiness_and_orchestrator_only_metrics(ops_server):
    assert get(f"{ops_server}/healthz") == (200, '{"status":"ok"}')
    status, body = get(f"{ops_server}/readyz")
    assert status == 200 and '"ready":true' in body, body
    status, text = get(f"{ops_server}/orchestrator/metrics")
    assert status == 200 and "orchestrator_runs_active" in text
    assert "python_gc" not in text  # ours alone
    status, body = get(f"{ops_server}/alerts")
    fired = json.loads(body)
    assert status == 200 and isinstance(fired, list)
    assert all(a["runbook"].startswith("docs/runbooks/") for a in fired)


async def test_live_dashboard_follows_a_running_job_in_chromium(ops_server):
    from browser import SHOTS, VIEWPORT, chromium, gantt_bars, kpis, open_page

    SHOTS.mkdir(parents=True, exist_ok=True)
    async with chromium() as browser:
        tab = await browser.new_context(**VIEWPORT)  # one cache: plotly.js is loaded once
        portfolio, errors = await open_page(tab, f"{ops_server}/dashboard")
        await portfolio.wait_for_selector("#trend-makespan .barlayer")
        assert int((await kpis(portfolio))["runs"]) >= 1 and errors == []
        await portfolio.screenshot(path=str(SHOTS / "dashboard_live_portfolio.png"), full_page=True)

        from langgraph_sdk import get_client

        thread_id = (await get_client(url=ops_server).threads.create())["thread_id"]
        # opened before the run starts: the page fills in and follows it as it goes
        page, errors = await open_page(tab, f"{ops_server}/dashboard/runs/{thread_id}")
        assert (await kpis(page))["approved"] == "0"
        client, _ = await start_run(ops_server, slow_plan(10, seed=4, effort=0.5), thread_id)
        deadline = time.time() + 20
        seen: list[tuple[str, int]] = []
        while time.time() < deadline + 60:  # the running page updates itself every 2 s
            figures = await kpis(page)
            bars = len((await gantt_bars(page))["bars"]["actual"])
            seen.append((figures["status"], int(figures["approved"]) + bars))
            if figures["status"] != "running":
                break
            if len(seen) == 6:
                await page.screenshot(path=str(SHOTS / "dashboard_live.png"), full_page=True)
            await asyncio.sleep(0.4)
        report = await wait_report(client, thread_id)
        running = [n for s, n in seen if s == "running"]
        assert len(set(running)) >= 2, f"the live page never updated: {seen}"
        assert running == sorted(running) and seen[-1][0] == report["status"]
        await asyncio.sleep(0.5)  # the last update's Gantt is drawn (Plotly.react resolves)
        figures = await kpis(page)  # updated in place to the finished run's figures
        assert int(figures["approved"]) == sum(
            t["status"] == "approved" for t in report["tasks"].values()
        )
        assert float(figures["makespan"]) == pytest.approx(report["makespan"])
        assert float(figures["cost"]) == pytest.approx(report["cost"])
        assert int(figures["tokens"]) == sum(report["tokens"].values())
        drawn = await gantt_bars(page)
        assert len(drawn["bars"]["actual"]) == len(report["actual"])
        title = report["deliverable"]["title"]
        assert title in await page.inner_text("#run-deliverable")  # arrived with the last update
        await page.screenshot(path=str(SHOTS / "dashboard_live_done.png"), full_page=True)
        assert errors == []
