"""Finding secrets and personal data in text, offline.

Secrets: the regex plugins of detect-secrets (Yelp's maintained scanner), as the policy lists
them. Personal data: patterns that find candidates, then python-stdnum's validators confirm
them (SSN area/group/serial rules, Luhn for cards, the IBAN checksum and each country's length),
so ordinary numbers in tables (totals, timestamps, ids) are not taken for personal data."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from stdnum import iban, luhn
from stdnum.us import ssn

from orchestrator_graph.protection.policy import DataPolicy


@dataclass(frozen=True)
class Finding:
    kind: str  # "secret", a personal kind, or a policy pattern's kind
    detail: str  # the detector that found it
    value: str


@cache
def secret_plugins() -> dict[str, Any]:
    """detect-secrets' regex plugins (those with a ``denylist``) by class name."""
    import importlib
    import inspect
    import pkgutil

    import detect_secrets.plugins as package

    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and isinstance(
                getattr(cls, "denylist", None), tuple | list
            ):
                found[name] = cls
    return found


_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Separators or a leading '+' are required: a bare run of digits is a number, not a phone.
_PHONE = re.compile(
    r"(?<![\w.+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}"
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w.]\d|\d)"
)
_SSN = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
# not inside a word: a uuid's hex groups (``…-b278-6471-8511-64da…``) hold Luhn-valid runs
_CARD = re.compile(r"(?<![\w.-])(?:\d[ -]?){12,18}\d(?![\w.]|-\d)")
_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|6(?:011|5)|35)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")


def _card(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    return 13 <= len(digits) <= 19 and bool(_CARD_PREFIX.match(digits)) and luhn.is_valid(digits)


# kind -> (candidates, the check a candidate must pass)
PERSONAL: dict[str, tuple[re.Pattern[str], Callable[[str], bool]]] = {
    "email": (_EMAIL, lambda _v: True),
    "phone": (_PHONE, lambda _v: True),
    "ssn": (_SSN, ssn.is_valid),
    "card": (_CARD, _card),
    "iban": (_IBAN, iban.is_valid),
}
MIN_FINDING = 4  # shorter matches are noise; the redactor skips shorter texts unread
_QUICK = re.compile(r"\d|@|-----|eyJ|://")  # no digit, '@', PEM or URL: only secrets to check


class Detector:
    """Everything the policy says to look for, in one object; ``find`` is pure."""

    def __init__(self, policy: DataPolicy) -> None:
        plugins = secret_plugins()
        self.secrets = [
            (name, regex) for name in policy.detectors.secrets for regex in plugins[name].denylist
        ]
        self.personal = [(kind, PERSONAL[kind]) for kind in policy.detectors.personal]
        self.patterns = [(k, re.compile(p)) for k, p in policy.detectors.patterns.items()]

    def find(self, text: str) -> list[Finding]:
        """Every sensitive value in ``text``, none overlapping another; patterns first (a whole
        PEM block before a plugin sees only its header), then secrets, then personal data."""
        taken: list[tuple[int, int]] = []
        found: list[Finding] = []

        def take(match: re.Match[str], kind: str, detail: str) -> None:
            start, end = match.span()
            value = match.group(0)
            stripped = value.strip(" \t\"'=:")
            start += value.index(stripped) if stripped else 0
            end = start + len(stripped)
            if len(stripped) >= MIN_FINDING and not any(s < end and start < e for s, e in taken):
                taken.append((start, end))
                found.append(Finding(kind, detail, stripped))

        if _may_hold_secret(text):
            for kind, pattern in self.patterns:
                for match in pattern.finditer(text):
                    take(match, kind, "pattern")
            for name, regex in self.secrets:
                for match in regex.finditer(text):  # the whole match: a group may be a prefix
                    take(match, "secret", name)
        if _QUICK.search(text):
            for kind, (pattern, valid) in self.personal:
                for match in pattern.finditer(text):
                    if valid(match.group(0)):
                        take(match, kind, kind)
        return found


def _may_hold_secret(text: str) -> bool:
    """Every secret the plugins know is a run of 11 or more characters without a space, a PEM
    header or a URL with credentials: most text is none of these, and this is checked in C."""
    return (
        "://" in text
        or "PRIVATE KEY" in text
        or "PuTTY" in text
        or any(len(word) >= 11 for word in text.split())
    )
