"""The LangGraph server's custom HTTP app (``http.app`` in ``langgraph.json``): metrics, alerts,
health, readiness and the live dashboard, next to the server's own API.

The server serves ``/metrics`` itself from prometheus_client's default registry; this app adds
the orchestrator's collector to that registry and refreshes its run views when ``/metrics`` is
scraped, so one scrape returns the server's metrics and ours. ``/orchestrator/metrics`` serves
ours alone. Run data is read with ``langgraph_sdk`` in-process (``get_client()`` with no URL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from html import escape
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator_graph.observe import RECENT, RunView, ServerSource, team_prices

FRESH = 1.0  # seconds a gathered set of views is reused before it is read again
GRAPHS = ("orchestrator",)  # graphs readiness expects the server to serve


class Views:
    """The newest run views from the server, gathered at most once per ``FRESH`` seconds."""

    def __init__(self, source: Any = None, limit: int = RECENT) -> None:
        self._source, self.limit = source, limit
        self.views: list[RunView] = []
        self.at = 0.0
        self.lock = asyncio.Lock()
        self.collector: Any = None

    @property
    def source(self) -> Any:
        if self._source is None:
            from orchestrator_graph.simulation import simulated_workers
            from orchestrator_graph.team import default_team

            self._source = ServerSource(prices=team_prices([*default_team(), *simulated_workers()]))
        return self._source

    async def get(self) -> list[RunView]:
        async with self.lock:
            if time.monotonic() - self.at > FRESH:
                self.views = await self.source.runs(self.limit)
                self.at = time.monotonic()
                if self.collector is not None:
                    self.collector.update(self.views)
        return self.views


VIEWS = Views()


def viewer_tenant(request: Request) -> str | None:
    """The tenant whose runs this request may see: on a deployment with auth
    (``http.enable_custom_route_auth`` in ``langgraph.json``) the server has already refused
    anonymous requests and put the signed-in identity in the scope; it must be allowed to read.
    None (every run) where the server runs without auth."""
    from orchestrator_graph.errors import AccessDenied
    from orchestrator_graph.identity import Identity

    user = request.scope.get("user")
    tenant = user.get("tenant") if user is not None and hasattr(user, "get") else None
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    if not tenant:
        raise HTTPException(403, "no tenant: sign in with a key or token")
    identity = Identity(name=user.identity, tenant=tenant, roles=user.get("roles") or [])
    try:
        identity.require("read", "the dashboard and metrics")
    except AccessDenied as error:
        raise HTTPException(403, str(error)) from None
    return tenant


async def views_for(request: Request) -> list[RunView]:
    """The newest runs this request may see (its tenant's, on a deployment with auth)."""
    tenant = viewer_tenant(request)
    return [v for v in await VIEWS.get() if tenant is None or v.tenant == tenant]


class RefreshOnScrape:
    """ASGI middleware: a ``GET /metrics`` first refreshes the collector's run views."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/metrics":
            await VIEWS.get()
        await self.app(scope, receive, send)


@asynccontextmanager
async def lifespan(app: Starlette):  # noqa: ANN201 - Starlette's lifespan protocol
    from prometheus_client import REGISTRY

    from orchestrator_graph.metrics import RunCollector

    VIEWS.collector = RunCollector()
    REGISTRY.register(VIEWS.collector)
    try:
        yield
    finally:
        REGISTRY.unregister(VIEWS.collector)
        VIEWS.collector = None


async def healthz(request: Request) -> Response:
    """Liveness: the process serves requests."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: the store answers and the orchestrator graph is registered."""
    checks = await readiness(VIEWS.source.client)
    ok = all(c["ok"] for c in checks)
    return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


async def readiness(client: Any) -> list[dict[str, Any]]:
    checks = []
    try:
        await client.store.search_items(["orchestrator_graph", "status"], limit=1)
        checks.append({"name": "store", "ok": True, "detail": "store answers"})
    except Exception as err:  # reported, not raised: readiness says what is wrong
        checks.append({"name": "store", "ok": False, "detail": f"{type(err).__name__}: {err}"})
    try:
        found = {a["graph_id"] for a in await client.assistants.search(limit=100)}
        missing = [g for g in GRAPHS if g not in found]
        detail = f"missing graphs: {', '.join(missing)}" if missing else "graphs registered"
        checks.append({"name": "graphs", "ok": not missing, "detail": detail})
    except Exception as err:  # reported, not raised
        checks.append({"name": "graphs", "ok": False, "detail": f"{type(err).__name__}: {err}"})
    return checks


async def orchestrator_metrics(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    from orchestrator_graph.metrics import exposition

    return Response(exposition(await views_for(request)), media_type=CONTENT_TYPE_LATEST)


async def alerts(request: Request) -> Response:
    from orchestrator_graph.alerts import Thresholds, evaluate

    firing = evaluate(await views_for(request), Thresholds.from_env())
    return JSONResponse([a.model_dump(mode="json") for a in firing])


async def dashboard(request: Request) -> Response:
    from orchestrator_graph.memory import default_location
    from orchestrator_graph.portfolio import portfolio_page, team_insights
    from orchestrator_graph.simulation import simulated_workers
    from orchestrator_graph.team import default_team

    views = await views_for(request)
    team = [*default_team(), *simulated_workers()]
    records, found = await team_insights(await asyncio.to_thread(default_location), team)
    html = portfolio_page(views, records=records, found=found, script_src="/dashboard/plotly.js")
    return HTMLResponse(html)


async def dashboard_run(request: Request) -> Response:
    from orchestrator_graph.dashboard import run_page, starting

    thread = request.path_params["thread_id"]
    found = [v for v in await views_for(request) if v.thread_id == thread]
    if found:
        return HTMLResponse(run_page(found[0], script_src="/dashboard/plotly.js"))
    from langgraph_sdk.errors import NotFoundError

    tenant = viewer_tenant(request)
    try:
        got = await VIEWS.source.client.threads.get(thread)
    except NotFoundError:
        got = None
    if got is None or (tenant is not None and (got.get("metadata") or {}).get("tenant") != tenant):
        return HTMLResponse(f"<h1>No thread {escape(thread)}</h1>", status_code=404)
    # the thread exists, its run has not started: a page that fills in once it does
    return HTMLResponse(run_page(starting(thread), script_src="/dashboard/plotly.js"))


async def dashboard_run_live(request: Request) -> Response:
    from orchestrator_graph.dashboard import live_update

    thread = request.path_params["thread_id"]
    found = [v for v in await views_for(request) if v.thread_id == thread]
    if not found:
        return JSONResponse({"error": f"no run on thread {thread}"}, status_code=404)
    return JSONResponse(live_update(found[0]))


async def plotly_js(request: Request) -> Response:
    from orchestrator_graph.dashboard import plotly_script

    return Response(
        plotly_script(),
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


def create_app(routes: Sequence[Route] = ()) -> Starlette:
    from starlette.middleware import Middleware

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/orchestrator/metrics", orchestrator_metrics),
            Route("/alerts", alerts),
            Route("/dashboard", dashboard),
            Route("/dashboard/plotly.js", plotly_js),
            Route("/dashboard/runs/{thread_id}", dashboard_run),
            Route("/dashboard/runs/{thread_id}/live", dashboard_run_live),
            *routes,
        ],
        middleware=[Middleware(RefreshOnScrape)],
        lifespan=lifespan,
    )


app = create_app()
