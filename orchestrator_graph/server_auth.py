"""The LangGraph server's authentication and authorization (``auth`` in ``langgraph.json``).

Every request must carry an API key (``x-api-key``) or a JWT bearer token (``Authorization:
Bearer …``) that ``identity`` resolves to a tenant and roles; anonymous requests, Studio's
``x-auth-scheme: langsmith`` bypass included, are refused. Threads are stamped with their
tenant at creation and every read, search, run and update is filtered by it; store namespaces
are rewritten under ``("tenants", TENANT, …)``, the same place the graph writes a tenant's ledger,
status and history (``tenancy.TenantStore``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from langgraph_sdk import Auth

from orchestrator_graph.errors import AccessDenied, DataPolicyError
from orchestrator_graph.identity import Action, Identity, authenticate
from orchestrator_graph.protection.redact import default_redactor
from orchestrator_graph.tenancy import scoped

auth = Auth()


PROBES = ("/healthz", "/readyz")  # the custom app's liveness and readiness: no run data


@auth.authenticate
async def get_identity(
    authorization: str | None, headers: dict[bytes, bytes], path: str
) -> dict[str, Any]:
    api_key = headers.get(b"x-api-key", b"").decode() or None
    if path in PROBES and not api_key and not authorization:
        # a container's health check signs in as nobody: no tenant, so every handler refuses it
        return {"identity": "probe", "permissions": [], "is_authenticated": True}
    token = None
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise Auth.exceptions.HTTPException(401, detail="use 'Authorization: Bearer TOKEN'")
        token = credentials.strip()
    try:
        # the identities file is read off the event loop (the server refuses blocking calls)
        identity = await asyncio.to_thread(authenticate, api_key, token)
    except AccessDenied as error:
        raise Auth.exceptions.HTTPException(401, detail=str(error)) from None
    return {
        "identity": identity.name,
        "tenant": identity.tenant,
        "roles": list(identity.roles),
        "permissions": list(identity.roles),
        "is_authenticated": True,
    }


def _identity(ctx: Auth.types.AuthContext) -> Identity:
    user = ctx.user
    tenant = user.get("tenant") if hasattr(user, "get") else None
    if not tenant:  # Studio's user, or any user our handler did not make
        raise Auth.exceptions.HTTPException(403, detail="no tenant: sign in with a key or token")
    return Identity(name=user.identity, tenant=tenant, roles=user.get("roles") or [])


def _allow(ctx: Auth.types.AuthContext, action: Action, what: str) -> Identity:
    identity = _identity(ctx)
    try:
        identity.require(action, what)
    except AccessDenied as error:
        raise Auth.exceptions.HTTPException(403, detail=str(error)) from None
    return identity


def _stamp(value: dict[str, Any], tenant: str) -> None:
    """The tenant into the metadata the server stores (in place: it keeps its own reference)."""
    if value.get("metadata") is None:
        value["metadata"] = {}
    value["metadata"]["tenant"] = tenant


@auth.on
async def refuse_the_rest(ctx: Auth.types.AuthContext, value: Any) -> bool:
    """Anything no handler below allows (crons, assistants' changes, ...) is for admins."""
    _allow(ctx, "team", f"{ctx.resource}.{ctx.action}")
    return True


@auth.on.threads.create
async def create_thread(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> dict[str, str]:
    identity = _allow(ctx, "start", "create threads")
    _stamp(value, identity.tenant)
    return {"tenant": identity.tenant}


@auth.on.threads.read
@auth.on.threads.search
async def read_threads(ctx: Auth.types.AuthContext, value: Any) -> dict[str, str]:
    return {"tenant": _allow(ctx, "read", "read threads").tenant}


@auth.on.threads.update
async def update_thread(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> dict[str, str]:
    action: Action = "cancel" if value.get("action") else "resume"
    identity = _allow(ctx, action, "change threads")
    if value.get("metadata") is not None:
        _stamp(value, identity.tenant)
    return {"tenant": identity.tenant}


@auth.on.threads.delete
async def delete_thread(ctx: Auth.types.AuthContext, value: Any) -> dict[str, str]:
    return {"tenant": _allow(ctx, "purge", "delete threads").tenant}


@auth.on.threads.create_run
async def create_run(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> dict[str, str]:
    """Starting or resuming needs an operator; answering an escalation (a resume value) needs
    an approver."""
    kwargs = value.get("kwargs") or {}
    command = kwargs.get("command") or {}
    answering = command.get("resume") is not None
    identity = _allow(ctx, "answer" if answering else "start", "run or resume threads")
    _stamp(value, identity.tenant)
    await _redact_in_place(kwargs)
    return {"tenant": identity.tenant}


async def _redact_in_place(kwargs: dict[str, Any]) -> None:
    """The run's input and command (a resume answer), refused or redacted by the data policy
    before the server keeps them: it stores the run and its first checkpoint from this very
    dict (langgraph-api 0.16.7 passes it to the handler, then persists it)."""
    redactor = await asyncio.to_thread(default_redactor)  # its key file: off the event loop
    for key in ("input", "command"):
        if kwargs.get(key) is None:
            continue
        try:
            redactor.refuse(json.dumps(kwargs[key], default=str), f"the run's {key}")
        except DataPolicyError as error:
            raise Auth.exceptions.HTTPException(422, detail=str(error)) from None
        kwargs[key] = redactor.value(kwargs[key])


@auth.on.assistants.read
@auth.on.assistants.search
async def read_assistants(ctx: Auth.types.AuthContext, value: Any) -> bool:
    _allow(ctx, "read", "read assistants")
    return True


@auth.on.store
async def tenant_store(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> bool:
    writing = ctx.action in ("put", "delete")
    identity = _allow(ctx, "start" if writing else "read", f"store.{ctx.action}")
    value["namespace"] = scoped(identity.tenant, tuple(value.get("namespace") or ()))
    return True
