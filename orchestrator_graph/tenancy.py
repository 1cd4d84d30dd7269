"""Tenants' data kept apart in one store: every namespace of a tenant lives under
``("tenants", TENANT, ...)``. The server's store handler rewrites clients' namespaces there
(``server_auth``) and the graph writes there through ``TenantStore`` when the run has an
identity, so a tenant's client reads its own ledger, status and history at the usual paths."""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

PREFIX = "tenants"


def scoped(tenant: str, namespace: tuple[str, ...]) -> tuple[str, ...]:
    return (PREFIX, tenant, *namespace)


class TenantStore(BaseStore):
    """``store`` seen by one tenant: namespaces go in under its prefix and come out without."""

    def __init__(self, store: BaseStore, tenant: str) -> None:
        self.inner, self.tenant = store, tenant
        self.prefix = (PREFIX, tenant)

    def _in(self, op: Op) -> Op:
        if isinstance(op, GetOp | PutOp):
            return op._replace(namespace=(*self.prefix, *op.namespace))
        if isinstance(op, SearchOp):
            return op._replace(namespace_prefix=(*self.prefix, *op.namespace_prefix))
        if isinstance(op, ListNamespacesOp):
            conditions = tuple(
                c._replace(path=(*self.prefix, *c.path)) if c.match_type == "prefix" else c
                for c in op.match_conditions or ()
            )
            if not any(c.match_type == "prefix" for c in conditions):
                conditions = (MatchCondition("prefix", self.prefix), *conditions)
            depth = op.max_depth + len(self.prefix) if op.max_depth is not None else None
            return op._replace(match_conditions=conditions, max_depth=depth)
        raise TypeError(f"unknown store operation {type(op).__name__}")

    def _out(self, result: Result) -> Result:
        cut = len(self.prefix)
        if isinstance(result, SearchItem):
            return SearchItem(
                result.namespace[cut:],
                result.key,
                result.value,
                result.created_at,
                result.updated_at,
                result.score,
            )
        if isinstance(result, Item):
            return Item(
                namespace=result.namespace[cut:],
                key=result.key,
                value=result.value,
                created_at=result.created_at,
                updated_at=result.updated_at,
            )
        if isinstance(result, list):
            # a list of one kind (items, or namespaces), which mypy cannot tell from the union
            out = [self._out(r) if not isinstance(r, tuple) else r[cut:] for r in result]
            return out  # type: ignore[return-value]
        return result

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        return [self._out(r) for r in self.inner.batch([self._in(op) for op in ops])]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        results = await self.inner.abatch([self._in(op) for op in ops])
        return [self._out(r) for r in results]


_views: weakref.WeakKeyDictionary[BaseStore, dict[str, TenantStore]] = weakref.WeakKeyDictionary()


def tenant_of(runtime: Any) -> str | None:
    """The tenant of a run the server authenticated; None for local and no-auth runs."""
    from orchestrator_graph.identity import server_identity

    identity = server_identity(runtime)
    return identity.tenant if identity is not None else None


def for_run(store: Any, runtime: Any) -> Any:
    """The store a run writes to: its tenant's when the server authenticated the run's user
    (one view per store and tenant, so the audit chain's per-store lock holds)."""
    tenant = tenant_of(runtime)
    if tenant is None:
        return store
    views = _views.setdefault(store, {})
    return views.setdefault(tenant, TenantStore(store, tenant))
