"""The choke points where run data is persisted, wrapped so nothing reaches disk unredacted.

- ``protect_saver`` wraps a checkpointer's ``put`` and ``put_writes``: every checkpoint, its
  metadata and every pending write is redacted before the saver sees it.
- ``ProtectedStore`` wraps a ``BaseStore``: every put (ledger, status, history, schedules) is
  redacted; what was found in a run's namespaces is recorded, by keyed fingerprint, under
  ``COMPLIANCE + (run_id,)`` for the compliance report. The graph's nodes get their store
  through ``ledger.store_of``, which wraps it, so this holds under ``langgraph dev`` too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore, Op, PutOp, Result

from orchestrator_graph.ledger import AUDIT, COMPLIANCE, ROOT, SCHEDULES, STATUS
from orchestrator_graph.protection.detect import Finding
from orchestrator_graph.protection.redact import Redactor, default_redactor


def protect_saver(saver: BaseCheckpointSaver, redactor: Redactor | None = None) -> Any:
    """The saver with every checkpoint, its metadata and every pending write redacted before
    it is stored. Wrapping ``put``/``put_writes`` (not the serializer) matters: the Postgres
    saver keeps a checkpoint's plain values (the request, …) inline as JSON, unserialised."""
    if getattr(saver, "_redacted_by", None) is not None:
        return saver
    r = redactor or default_redactor()
    put, aput, put_writes, aput_writes = saver.put, saver.aput, saver.put_writes, saver.aput_writes

    def put_(config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
        return put(config, r.value(checkpoint), r.value(metadata), versions)

    async def aput_(config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
        return await aput(config, r.value(checkpoint), r.value(metadata), versions)

    def put_writes_(config: Any, writes: Any, task_id: str, task_path: str = "") -> Any:
        return put_writes(config, r.value(list(writes)), task_id, task_path)

    async def aput_writes_(config: Any, writes: Any, task_id: str, task_path: str = "") -> Any:
        return await aput_writes(config, r.value(list(writes)), task_id, task_path)

    saver.put, saver.aput = put_, aput_  # type: ignore[method-assign,assignment]
    saver.put_writes, saver.aput_writes = put_writes_, aput_writes_  # type: ignore[method-assign]
    saver._redacted_by = r  # type: ignore[attr-defined]
    return saver


def run_of(namespace: tuple[str, ...], key: str) -> str | None:
    """The run a store item belongs to: ``(ROOT, "runs", run_id, ...)`` or a per-run item of a
    namespace keyed by run id (the live status, the planned schedule)."""
    if namespace[:2] == (ROOT, "runs") and len(namespace) > 2:
        return namespace[2]
    if namespace in (STATUS, SCHEDULES):
        return key
    return None


def compliance_ops(redactor: Redactor, run: str, where: str, found: list[Finding]) -> list[PutOp]:
    """One record per value found, keyed by its fingerprint: a value seen again (the same
    table passed downstream) is counted once."""
    return [
        PutOp(
            (*COMPLIANCE, run),
            redactor.fingerprint(f),
            {
                "kind": f.kind,
                "detector": f.detail,
                "action": redactor.policy.action(f.kind),
                "where": where,
            },
            index=False,
        )
        for f in found
    ]


class ProtectedStore(BaseStore):
    """Every put redacted; reads, and the batching of the store it wraps, left as they are. The
    SQLite and Postgres stores queue ``aget``/``aput``/``asearch`` into one batch at a time:
    turning each put into a call of their ``abatch`` would run transactions side by side on one
    connection, so puts go to their ``aput`` and reads to their own methods."""

    def __init__(self, inner: BaseStore, redactor: Redactor) -> None:
        self.inner, self.redactor = inner, redactor
        self.supports_ttl = inner.supports_ttl
        self.ttl_config = inner.ttl_config

    def _redact(self, namespace: tuple[str, ...], key: str, value: Any) -> tuple[Any, list[PutOp]]:
        if value is None or namespace[:2] in (COMPLIANCE, AUDIT):
            # audit entries are redacted before they are hashed (auditlog): their digests and
            # MACs are hex that a secrets detector may take for a key, and must stay exact
            return value, []
        found: list[Finding] = []
        clean = self.redactor.value(value, found)
        run = run_of(namespace, key)
        if not (found and run):
            return clean, []
        where = namespace[3:] if namespace[1] == "runs" else namespace[1:2]
        return clean, compliance_ops(self.redactor, run, "/".join((*where, key)), found)

    def _protect(self, ops: Iterable[Op]) -> tuple[list[Op], list[PutOp]]:
        out: list[Op] = []
        records: list[PutOp] = []
        for op in ops:
            if isinstance(op, PutOp):
                value, more = self._redact(op.namespace, op.key, op.value)
                op = op._replace(value=value) if value is not op.value else op
                records += more
            out.append(op)
        return out, records

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        protected, records = self._protect(ops)
        return self.inner.batch([*protected, *records])[: len(protected)]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        protected, records = self._protect(ops)
        results = await self.inner.abatch(protected)
        await self._arecord(records)
        return results

    async def _arecord(self, records: list[PutOp]) -> None:
        await asyncio.gather(
            *(self.inner.aput(r.namespace, r.key, r.value or {}, index=False) for r in records)
        )

    def put(self, namespace: tuple[str, ...], key: str, value: Any, *args: Any, **kw: Any) -> None:
        clean, records = self._redact(namespace, key, value)
        self.inner.put(namespace, key, clean, *args, **kw)
        for r in records:
            self.inner.put(r.namespace, r.key, r.value or {}, index=False)

    async def aput(
        self, namespace: tuple[str, ...], key: str, value: Any, *args: Any, **kw: Any
    ) -> None:
        clean, records = self._redact(namespace, key, value)
        await self.inner.aput(namespace, key, clean, *args, **kw)
        await self._arecord(records)

    def get(self, *args: Any, **kw: Any) -> Any:
        return self.inner.get(*args, **kw)

    async def aget(self, *args: Any, **kw: Any) -> Any:
        return await self.inner.aget(*args, **kw)

    def search(self, *args: Any, **kw: Any) -> Any:
        return self.inner.search(*args, **kw)

    async def asearch(self, *args: Any, **kw: Any) -> Any:
        return await self.inner.asearch(*args, **kw)

    def delete(self, *args: Any, **kw: Any) -> None:
        self.inner.delete(*args, **kw)

    async def adelete(self, *args: Any, **kw: Any) -> None:
        await self.inner.adelete(*args, **kw)

    def list_namespaces(self, *args: Any, **kw: Any) -> Any:
        return self.inner.list_namespaces(*args, **kw)

    async def alist_namespaces(self, *args: Any, **kw: Any) -> Any:
        return await self.inner.alist_namespaces(*args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def protect_store(store: BaseStore, redactor: Redactor | None = None) -> BaseStore:
    if isinstance(store, ProtectedStore):
        return store
    return ProtectedStore(store, redactor or default_redactor())
