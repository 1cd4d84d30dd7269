"""Workers whose work runs on a Dask distributed cluster.

``dask_worker(name, fn, skills=..., region="eu")`` returns a ``Worker`` like any other: the
orchestrator still plans, matches, reviews, records the ledger and checkpoints; only the call of
``fn`` goes to the cluster (``distributed``'s asyncio ``Client``), which places it. A worker with
a region asks for the Dask resource ``region-<region>``, so its work lands only on Dask workers
started with that resource (``dask worker ADDRESS --resources region-eu=4``: the number caps the
tasks it runs at once).

Failures are split so that nothing is retried twice: a Dask worker *process* that dies mid-task
is Dask's to handle (the scheduler reruns the task on another worker, up to
``distributed.scheduler.allowed-failures`` times), and the attempt just takes longer; an
exception raised by ``fn`` comes back as the attempt's error, for the QA gate and the
orchestrator's own retry policy (``retries=0`` on the Dask side). Either way the attempt ends
once, so its result is reviewed and recorded once.

The cluster's address comes from the worker (``address=``), else the run's context
(``dask_address``), else ``$ORCHESTRATOR_GRAPH_DASK``. ``fn`` takes the ``WorkerInput`` (sync or
async) and must be importable or picklable on the Dask workers."""

from __future__ import annotations

import asyncio
import inspect
import os
import pickle
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from orchestrator_graph.errors import InputError
from orchestrator_graph.workers import Worker, WorkerContext, WorkerInput

DASK_ENV = "ORCHESTRATOR_GRAPH_DASK"


class Traffic(BaseModel):
    """Bytes that crossed between the orchestrator and the cluster (pickled, as Dask sends)."""

    tasks: int = 0
    sent: int = 0
    received: int = 0


def run_on_worker(fn: Callable[[WorkerInput], Any], payload: dict[str, Any]) -> Any:
    """What a Dask worker runs: the worker function on the validated input."""
    result = fn(WorkerInput.model_validate(payload))
    if inspect.isawaitable(result):
        return asyncio.run(_awaited(result))
    return result


async def _awaited(result: Any) -> Any:
    return await result


class _Clients:
    """One asynchronous Client per (address, event loop), opened once on first use."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, int], asyncio.Task[Any]] = {}

    async def get(self, address: str) -> Any:
        key = (address, id(asyncio.get_running_loop()))
        opening = self._clients.get(key)
        if opening is None or (opening.done() and opening.exception() is not None):
            opening = self._clients[key] = asyncio.ensure_future(_connect(address))
        return await asyncio.shield(opening)

    async def close(self) -> None:
        loop = id(asyncio.get_running_loop())
        mine = [k for k in self._clients if k[1] == loop]
        for key in mine:
            opening = self._clients.pop(key)
            if opening.done() and opening.exception() is None:
                await opening.result().close()


async def _connect(address: str) -> Any:
    from distributed import Client

    try:
        return await Client(address, asynchronous=True, set_as_default=False)
    except OSError as error:
        raise InputError(f"Dask scheduler {address}: {error}") from None


CLIENTS = _Clients()


class DaskWork:
    """The body of a Dask worker (see the module's docstring)."""

    def __init__(self, fn: Callable[[WorkerInput], Any], address: str, region: str) -> None:
        self.fn, self.address, self.region = fn, address, region
        self.traffic = Traffic()

    def where(self, ctx: WorkerContext) -> str:
        context = ctx.run.context if ctx.run is not None else None
        address = self.address or getattr(context, "dask_address", "") or os.environ.get(DASK_ENV)
        if not address:
            raise InputError(
                f"no Dask scheduler for this worker: give address=, the context's dask_address "
                f"or ${DASK_ENV}"
            )
        return address

    async def __call__(self, payload: WorkerInput, ctx: WorkerContext) -> Any:
        client = await CLIENTS.get(self.where(ctx))
        data = payload.model_dump(mode="json")
        future = client.submit(
            run_on_worker,
            self.fn,
            data,
            key=f"og-{payload.run_id}-{payload.task.id}-{payload.attempt}",
            pure=False,
            retries=0,  # fn's own errors are the orchestrator's to retry, not Dask's
            resources={f"region-{self.region}": 1} if self.region else None,
        )
        try:
            result = await future
        finally:
            future.release()
        self.traffic.tasks += 1
        self.traffic.sent += len(pickle.dumps(data))
        self.traffic.received += len(pickle.dumps(result))
        return result


def dask_worker(
    name: str,
    fn: Callable[[WorkerInput], Any],
    *,
    skills: Any,
    address: str = "",
    region: str = "",
    **worker: Any,
) -> Worker:
    """A worker whose ``fn`` runs on the Dask cluster at ``address`` (see the module)."""
    return Worker(
        name=name, skills=skills, region=region, run=DaskWork(fn, address, region), **worker
    )
