"""Who acts: identities with a tenant and roles, resolved from API keys or JWT bearer tokens, and
what each role may do. The same rules serve the server's auth handlers (``server_auth``), the
library (the identity in the run context) and the CLI (a configured identity).

Identities are configured in a JSON file named by ``$ORCHESTRATOR_GRAPH_IDENTITIES``::

    {"api_keys": {"<sha256 of the key>": {"name": "ana", "tenant": "acme", "roles": ["operator"]}},
     "jwt": {"secret_env": "ORCHESTRATOR_GRAPH_JWT_SECRET", "algorithms": ["HS256"],
             "issuer": "https://idp.example", "audience": "orchestrator-graph"}}

Keys are stored as SHA-256 digests, so the file does not hold a usable key; JWT secrets (or a
public key file, ``public_key_file``) come from the environment or a file, never from code. A
token's claims give the identity: ``sub``, ``tenant`` and ``roles``."""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from orchestrator_graph.errors import AccessDenied, InputError

IDENTITIES_ENV = "ORCHESTRATOR_GRAPH_IDENTITIES"
API_KEY_ENV = "ORCHESTRATOR_GRAPH_API_KEY"  # the CLI's identity, when identities are configured
TOKEN_ENV = "ORCHESTRATOR_GRAPH_TOKEN"

Role = Literal["viewer", "operator", "approver", "admin"]
Action = Literal["read", "start", "cancel", "resume", "answer", "purge", "team", "backup"]
# What each role may do; admin may do everything.
GRANTS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "operator": frozenset({"read", "start", "cancel", "resume"}),
    "approver": frozenset({"read", "answer"}),
    "admin": frozenset({"read", "start", "cancel", "resume", "answer", "purge", "team", "backup"}),
}


class Identity(BaseModel):
    name: str = Field(min_length=1)
    tenant: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.@-]+$")
    roles: list[Role] = Field(min_length=1)

    def may(self, action: Action) -> bool:
        return any(action in GRANTS[role] for role in self.roles)

    def require(self, action: Action, what: str = "") -> None:
        if not self.may(action):
            raise AccessDenied(
                f"{self.name} (tenant {self.tenant}, roles {', '.join(self.roles)}) may not "
                f"{action}{' ' + what if what else ''}: it needs one of the roles "
                f"{', '.join(r for r, g in GRANTS.items() if action in g)}"
            )


class JwtSettings(BaseModel):
    secret_env: str | None = None
    public_key_file: str | None = None
    algorithms: list[str] = Field(default_factory=lambda: ["HS256"])
    issuer: str | None = None
    audience: str | None = None


class Identities(BaseModel):
    api_keys: dict[str, Identity] = Field(default_factory=dict)
    jwt: JwtSettings | None = None

    def by_key(self, key: str) -> Identity | None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        for known, identity in self.api_keys.items():
            if hmac.compare_digest(known, digest):
                return identity
        return None

    def by_token(self, token: str) -> Identity:
        """The identity a JWT names; ``AccessDenied`` saying why when it is not valid."""
        import jwt

        if self.jwt is None:
            raise AccessDenied("bearer tokens are not configured on this deployment")
        try:
            claims = jwt.decode(
                token,
                self._verifying_key(),
                algorithms=self.jwt.algorithms,
                issuer=self.jwt.issuer,
                audience=self.jwt.audience,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AccessDenied("token expired") from None
        except jwt.InvalidTokenError as error:
            raise AccessDenied(f"invalid token: {error}") from None
        try:
            return Identity(name=claims["sub"], tenant=claims.get("tenant"), roles=claims["roles"])
        except (KeyError, ValidationError):
            raise AccessDenied("token lacks a valid tenant or roles claim") from None

    def _verifying_key(self) -> str:
        assert self.jwt is not None
        if self.jwt.public_key_file:
            return Path(self.jwt.public_key_file).read_text()
        value = os.environ.get(self.jwt.secret_env or "")
        if not value:
            raise AccessDenied(f"the token secret ${self.jwt.secret_env} is not set")
        return value


def key_digest(key: str) -> str:
    """What the identities file holds for an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


@cache
def _read(path: str, mtime: float) -> Identities:
    try:
        return Identities.model_validate(json.loads(Path(path).read_text()))
    except (OSError, ValueError) as error:
        raise InputError(f"identities file {path}: {error}") from None


def configured() -> Identities | None:
    """The identities file named by the environment, or None when none is configured."""
    path = os.environ.get(IDENTITIES_ENV)
    if not path:
        return None
    try:
        return _read(path, Path(path).stat().st_mtime)
    except FileNotFoundError:
        raise InputError(f"identities file {path} ({IDENTITIES_ENV}): no such file") from None


def authenticate(api_key: str | None = None, token: str | None = None) -> Identity:
    """The identity an API key or bearer token stands for; ``AccessDenied`` for none or unknown."""
    identities = configured()
    if identities is None:
        raise AccessDenied(f"no identities are configured (set {IDENTITIES_ENV})")
    if token:
        return identities.by_token(token)
    if api_key and (identity := identities.by_key(api_key)):
        return identity
    raise AccessDenied("unknown API key" if api_key else "no credentials given")


@cache
def _os_user() -> str:
    return getpass.getuser()


def local_identity() -> Identity:
    """The CLI's identity: the configured key or token when identities are configured;
    otherwise the single-user local mode, where whoever can read the data folder owns it."""
    if configured() is None:
        return Identity(name=f"local:{getpass.getuser()}", tenant="local", roles=["admin"])
    return authenticate(os.environ.get(API_KEY_ENV), os.environ.get(TOKEN_ENV))


def server_identity(runtime: Any) -> Identity | None:
    """The user the server authenticated for a run (``server_auth``); None elsewhere."""
    user = getattr(getattr(runtime, "server_info", None), "user", None)
    if user is None or not _get(user, "tenant"):
        return None
    return Identity(
        name=_get(user, "identity"),
        tenant=_get(user, "tenant"),
        roles=list(_get(user, "roles") or []),
    )


def acting(context: Any = None) -> Identity | None:
    """The identity behind a run: the run context's (on the server, the signed-in user's)."""
    raw = getattr(context, "identity", None)
    return Identity.model_validate(raw) if raw else None


def _get(user: Any, name: str) -> Any:
    try:
        return user[name]
    except (KeyError, TypeError):
        return getattr(user, name, None)


def actor_name(context: Any = None) -> str:
    """Who answered or acted in a run, for the record: the identity, else ``local:USER``."""
    identity = acting(context)
    return identity.name if identity is not None else f"local:{_os_user()}"
