"""The choke points where run data is persisted, wrapped so nothing reaches disk unredacted.

- ``protect_saver`` wraps a checkpointer's ``put`` and ``put_writes``: every checkpoint, its
  metadata and every pending write is redacted before the saver sees it.
- ``ProtectedStore`` wraps a ``BaseStore``: every put (ledger, status, history, schedules) is
  redacted; what was found in a run's namespaces is recorded, by keyed fingerprint, under
  ``COMPLIANCE + (run_id,)`` for the compliance report. The graph's nodes get their store
  through ``ledger.store_of``, which wraps it, so this holds under ``langgraph dev`` too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore, Op, PutOp, Result

from orchestrator_graph.ledger import ROOT
from orchestrator_graph.protection.detect import Finding
from orchestrator_graph.protection.redact import Redactor, default_redactor

COMPLIANCE = (ROOT, "compliance")  # + (run_id,): fingerprint -> what was found and where


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

    saver.put, saver.aput = put_, aput_  # type: ignore[method-assign]
    saver.put_writes, saver.aput_writes = put_writes_, aput_writes_  # type: ignore[method-assign]
    saver._redacted_by = r  # type: ignore[attr-defined]
    return saver


def run_of(namespace: tuple[str, ...], key: str) -> str | None:
    """The run a store item belongs to: ``(ROOT, "runs", run_id, ...)`` or a per-run item of a
    namespace keyed by run id (the live status, the planned schedule)."""
    if namespace[:2] == (ROOT, "runs") and len(namespace) > 2:
        return namespace[2]
    if namespace in ((ROOT, "status"), (ROOT, "schedules")):
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
    def __init__(self, inner: BaseStore, redactor: Redactor) -> None:
        self.inner, self.redactor = inner, redactor
        self.supports_ttl = inner.supports_ttl
        self.ttl_config = inner.ttl_config

    def _protect(self, ops: Iterable[Op]) -> tuple[list[Op], int]:
        out: list[Op] = []
        records: list[Op] = []
        for op in ops:
            if isinstance(op, PutOp) and op.value is not None and op.namespace[:2] != COMPLIANCE:
                found: list[Finding] = []
                value = self.redactor.value(op.value, found)
                op = op._replace(value=value) if value is not op.value else op
                run = run_of(op.namespace, op.key)
                if found and run:
                    where = op.namespace[3:] if op.namespace[1] == "runs" else op.namespace[1:2]
                    records += compliance_ops(self.redactor, run, "/".join((*where, op.key)), found)
            out.append(op)
        return out + records, len(records)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops, extra = self._protect(ops)
        results = self.inner.batch(ops)
        return results[: len(results) - extra]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops, extra = self._protect(ops)
        results = await self.inner.abatch(ops)
        return results[: len(results) - extra]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def protect_store(store: BaseStore, redactor: Redactor | None = None) -> BaseStore:
    if isinstance(store, ProtectedStore):
        return store
    return ProtectedStore(store, redactor or default_redactor())
