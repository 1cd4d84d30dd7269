"""Redaction: values with what the policy finds replaced, and a record of what was replaced.

``Redactor.value`` walks the shapes that reach checkpoints and stores (dicts, lists, tuples,
pydantic models such as chat messages, dataclasses) and returns the same object when nothing
was found, so the common case copies nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
from functools import cache
from typing import Any

from pydantic import BaseModel

from orchestrator_graph.errors import DataPolicyError
from orchestrator_graph.protection.detect import MIN_FINDING, Detector, Finding
from orchestrator_graph.protection.policy import DataPolicy, load_policy

KEY_ENV = "ORCHESTRATOR_GRAPH_REDACTION_KEY"
SEEN_TEXT, SEEN_ITEMS = 4096, 100_000  # texts remembered: length and how many
_ATOMS = frozenset({type(None), bool, int, float, bytes})


class Redactor:
    def __init__(self, policy: DataPolicy, key: bytes) -> None:
        self.policy, self.detector, self.key = policy, Detector(policy), key
        # Checkpoints repeat most of the state at every step: scan each text once.
        self._seen: dict[str, tuple[str, list[Finding]]] = {}

    def fingerprint(self, finding: Finding) -> str:
        """Keyed, so the record of a redaction cannot be turned back into the value by trying
        every SSN; the same value gives the same fingerprint, so it is counted once."""
        message = f"{finding.kind}\0{finding.value}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()[:20]

    def replacement(self, finding: Finding) -> str:
        if self.policy.action(finding.kind) == "mask":
            tail = "".join(c for c in finding.value if c.isalnum())[-4:]
            return f"[MASKED:{finding.kind}:…{tail}]"
        return f"[REDACTED:{finding.kind}]"

    def text(self, text: str, found: list[Finding] | None = None) -> str:
        """``text`` with every finding replaced (longest first, so no part of one survives);
        the findings are appended to ``found``."""
        known = self._seen.get(text)
        if known is None:
            findings = self.detector.find(text)
            clean = text
            for finding in sorted(findings, key=lambda f: -len(f.value)):
                clean = clean.replace(finding.value, self.replacement(finding))
            known = (clean if findings else text, findings)
            if len(text) <= SEEN_TEXT and len(self._seen) < SEEN_ITEMS:
                self._seen[text] = known
        if found is not None:
            found += known[1]
        return known[0] if known[1] else text

    def value(self, value: Any, found: list[Finding] | None = None, depth: int = 0) -> Any:
        """``value`` with every text redacted; the same object when nothing was found. Runs on
        every event, store write and audit entry, so plain dicts, lists and strings (nearly all
        of what is walked) take a path without a call per item."""
        kind = type(value)
        if kind is str:
            return self._str(value, found)
        if kind in _ATOMS or depth > 64:
            return value
        if kind is dict:
            return self._dict(value, found, depth)
        if kind is list:
            return self._list(value, found, depth)
        if isinstance(value, (bool, int, float, bytes)):
            return value
        if isinstance(value, str):
            return self.text(value, found)
        if isinstance(value, dict):
            out = {
                self.value(k, found, depth + 1): self.value(v, found, depth + 1)
                for k, v in value.items()
            }
            return value if _same(out.items(), value.items()) else type(value)(out)
        if isinstance(value, (list, tuple)):
            items = [self.value(v, found, depth + 1) for v in value]
            if all(a is b for a, b in zip(items, value, strict=True)):
                return value
            return type(value)(items) if not hasattr(value, "_fields") else type(value)(*items)
        if isinstance(value, BaseModel):
            return self._model(value, found, depth)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self._dataclass(value, found, depth)
        return value

    def _str(self, text: str, found: list[Finding] | None) -> str:
        if len(text) < MIN_FINDING:
            return text
        known = self._seen.get(text)
        if known is None:
            return self.text(text, found)
        if not known[1]:
            return text  # this very object: an equal text seen before is not a change
        if found is not None:
            found += known[1]
        return known[0]

    def _dict(self, value: dict[Any, Any], found: list[Finding] | None, depth: int) -> Any:
        seen, changed = self._seen, None
        for key, item in value.items():
            if type(key) is str and len(key) >= MIN_FINDING:
                known = seen.get(key)  # inline: most keys are field names seen before
                if (known is None or known[1]) and self._str(key, found) is not key:
                    return {  # a key held something (rare): everything rebuilt
                        self.value(k, found, depth + 1): self.value(v, found, depth + 1)
                        for k, v in value.items()
                    }
            kind = type(item)
            if kind is str:
                if len(item) < MIN_FINDING:
                    continue
                known = seen.get(item)
                if known is not None and not known[1]:
                    continue
                new = self._str(item, found)
            elif kind in _ATOMS:
                continue
            else:
                new = self.value(item, found, depth + 1)
            if new is not item:
                changed = changed or {}
                changed[key] = new
        return {**value, **changed} if changed else value

    def _list(self, value: list[Any], found: list[Finding] | None, depth: int) -> list[Any]:
        out: list[Any] | None = None
        for i, item in enumerate(value):
            kind = type(item)
            if kind is str:
                new = self._str(item, found)
            elif kind in _ATOMS:
                continue
            else:
                new = self.value(item, found, depth + 1)
            if new is not item:
                out = out or list(value)
                out[i] = new
        return out if out is not None else value

    def _model(self, value: BaseModel, found: list[Finding] | None, depth: int) -> Any:
        names = list(type(value).model_fields)
        changed = {}
        for name in names:
            old = getattr(value, name, None)
            new = self.value(old, found, depth + 1)
            if new is not old:
                changed[name] = new
        return value.model_copy(update=changed) if changed else value

    def _dataclass(self, value: Any, found: list[Finding] | None, depth: int) -> Any:
        changed = {}
        for f in dataclasses.fields(value):
            if not f.init:
                continue
            old = getattr(value, f.name)
            new = self.value(old, found, depth + 1)
            if new is not old:
                changed[f.name] = new
        return dataclasses.replace(value, **changed) if changed else value

    def refuse(self, text: str, where: str) -> None:
        """Raise when ``text`` holds a kind the policy refuses (checked where data comes in)."""
        for finding in self.detector.find(text):
            if self.policy.action(finding.kind) == "refuse":
                raise DataPolicyError(
                    f"{where}: holds {_kind(finding)}, which the data policy "
                    f"({self.policy.source or 'default'}) refuses; remove it and try again"
                )


def _kind(finding: Finding) -> str:
    return finding.kind if finding.detail in ("pattern", finding.kind) else finding.detail


def _same(new: Any, old: Any) -> bool:
    return all(a[0] is b[0] and a[1] is b[1] for a, b in zip(new, old, strict=True))


KEY_FILE = "redaction.key"


def redaction_key() -> bytes:
    return _key(os.environ.get(KEY_ENV, ""), os.environ.get("ORCHESTRATOR_GRAPH_HOME", ""))


@cache
def _key(given: str, home: str) -> bytes:
    """The fingerprint key: ``ORCHESTRATOR_GRAPH_REDACTION_KEY``, else a random key kept in
    ``redaction.key`` (mode 0600) in the data folder, beside the audit key, made once by
    whichever process gets there first: every process masks a value the same way."""
    if given:
        return given.encode()
    from orchestrator_graph.keyfiles import kept_secret
    from orchestrator_graph.persistence import data_dir

    return kept_secret(data_dir(home or None) / KEY_FILE)


@cache
def _redactor(policy_path: str, key: bytes) -> Redactor:
    return Redactor(load_policy(policy_path or None), key)


def default_redactor() -> Redactor:
    """The process's redactor: the policy named by the environment (or the default)."""
    return _redactor(os.environ.get("ORCHESTRATOR_GRAPH_POLICY", ""), redaction_key())
