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

Hedging works with Dask: when an attempt stalls (a slow machine, or a worker process that died
while Dask reruns its task), the orchestrator may start a second attempt on another worker of
the team; whichever passes QA first is the one result, and the other attempt's Dask task is
cancelled on the cluster (``Client.cancel``), so neither Dask's rerun nor the hedge goes on
after the task is settled and the ledger holds one approved attempt. (A task already running
in a Dask worker's thread cannot be interrupted: that thread finishes and its result is
dropped.) ``stall_after=0`` turns hedging off, leaving a dead worker's task to Dask alone.

Large values go by reference: an input or an upstream output whose JSON exceeds
``by_reference`` bytes (default ``BY_REFERENCE``) is not put in the task's payload but scattered
to the cluster once (``Client.scatter``, keyed by its content) and passed as a Dask future, which
Dask resolves on the worker that runs the task; ``run_on_worker`` puts it back in its place. A
dependency output that five tasks read crosses once, not five times, and the payload stays small.
The last ``KEPT`` scattered values stay on the cluster for later tasks; a value lost with its
worker process fails that attempt, and the orchestrator's retry scatters it again.

The cluster's address comes from the worker (``address=``), else the run's context
(``dask_address``), else ``$ORCHESTRATOR_GRAPH_DASK``. ``fn`` takes the ``WorkerInput`` (sync or
async) and must be importable or picklable on the Dask workers."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import os
import pickle
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from orchestrator_graph.errors import InputError
from orchestrator_graph.workers import Worker, WorkerContext, WorkerInput

DASK_ENV = "ORCHESTRATOR_GRAPH_DASK"
BY_REFERENCE = 64 * 1024  # bytes of JSON above which a value is scattered, not in the payload
DROPPED = "the orchestrator dropped this attempt (a hedge's loser, or its run was cancelled)"
KEPT = 32  # scattered values kept on the cluster per Dask worker of the team


class Traffic(BaseModel):
    """Bytes that crossed between the orchestrator and the cluster (pickled, as Dask sends)."""

    tasks: int = 0
    sent: int = 0
    """The tasks' payloads (large values left out)."""
    received: int = 0
    scattered: int = 0
    """Large values, each sent once (see the module)."""
    references: int = 0
    """Large values passed by reference instead of in a payload."""
    cancelled: int = 0
    """Tasks cancelled on the cluster because the orchestrator dropped their attempt."""


def split_large(payload: dict[str, Any], limit: int) -> dict[str, Any]:
    """Take the values over ``limit`` bytes out of ``payload`` (a dumped ``WorkerInput``,
    changed in place): ``"upstream/<task>"`` or ``"inputs/<name>"`` -> the value."""
    large = {}
    for section, values in (
        ("upstream", payload["upstream"]),
        ("inputs", payload["task"]["inputs"]),
    ):
        for key, value in list(values.items()):
            if len(json.dumps(value, default=str)) > limit:
                large[f"{section}/{key}"] = values.pop(key)
    return large


def run_on_worker(
    fn: Callable[[WorkerInput], Any],
    payload: dict[str, Any],
    large: Mapping[str, Any] | None = None,
) -> Any:
    """What a Dask worker runs: the worker function on the validated input, its large values
    (resolved by Dask from their references) put back in place."""
    for path, value in (large or {}).items():
        section, key = path.split("/", 1)
        (payload["upstream"] if section == "upstream" else payload["task"]["inputs"])[key] = value
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

    def __init__(
        self, fn: Callable[[WorkerInput], Any], address: str, region: str, by_reference: int
    ) -> None:
        self.fn, self.address, self.region = fn, address, region
        self.by_reference = by_reference
        self.traffic = Traffic()
        # (client, digest) -> the scatter of a large value: [its Dask future] when done
        self._kept: OrderedDict[tuple[int, str], asyncio.Future[Any]] = OrderedDict()

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
        large = split_large(data, self.by_reference)
        refs = {path: await self._scattered(client, value) for path, value in large.items()}
        future = client.submit(
            run_on_worker,
            self.fn,
            data,
            refs,
            key=f"og-{payload.run_id}-{payload.task.id}-{payload.attempt}",
            pure=False,
            retries=0,  # fn's own errors are the orchestrator's to retry, not Dask's
            resources={f"region-{self.region}": 1} if self.region else None,
        )
        try:
            result = await future
        except asyncio.CancelledError:  # a hedge's loser, a cancelled run: stopped there too
            await asyncio.shield(client.cancel([future], reason="attempt dropped", msg=DROPPED))
            self.traffic.cancelled += 1
            raise
        finally:
            future.release()
        self.traffic.tasks += 1
        self.traffic.sent += len(pickle.dumps(data))
        self.traffic.received += len(pickle.dumps(result))
        self.traffic.references += len(refs)
        return result

    async def _scattered(self, client: Any, value: Any) -> Any:
        """A future of ``value`` on the cluster: scattered now, or by an earlier (or a
        concurrent) task of this worker."""
        text = json.dumps(value, sort_keys=True, default=str).encode()
        key = (id(client), hashlib.sha256(text).hexdigest())
        kept = self._kept.get(key)
        if kept is not None and not (kept.done() and _gone(kept)):
            self._kept.move_to_end(key)
            return (await asyncio.shield(kept))[0]
        self._kept[key] = scattering = asyncio.ensure_future(client.scatter([value]))
        while len(self._kept) > KEPT:
            _release(self._kept.popitem(last=False)[1])
        [future] = await asyncio.shield(scattering)
        self.traffic.scattered += len(pickle.dumps(value))
        return future


def _gone(scattering: asyncio.Future[Any]) -> bool:
    """Whether a scatter failed or its value left the cluster (released, or lost with the
    worker process that held it)."""
    return scattering.exception() is not None or scattering.result()[0].status != "finished"


def _release(scattering: asyncio.Future[Any]) -> None:
    if scattering.done() and scattering.exception() is None:
        scattering.result()[0].release()
    else:
        scattering.cancel()


def dask_worker(
    name: str,
    fn: Callable[[WorkerInput], Any],
    *,
    skills: Any,
    address: str = "",
    region: str = "",
    by_reference: int = BY_REFERENCE,
    **worker: Any,
) -> Worker:
    """A worker whose ``fn`` runs on the Dask cluster at ``address`` (see the module); values
    over ``by_reference`` bytes of JSON are scattered once and passed by reference."""
    work = DaskWork(fn, address, region, by_reference)
    return Worker(name=name, skills=skills, region=region, run=work, **worker)
