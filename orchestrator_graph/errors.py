"""Error types of the package, under one base class."""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base of every error this package raises on purpose."""


class ProviderError(OrchestratorError):
    """A model provider failed a call after the retries it was worth (or at once, for errors
    retrying cannot fix). One line: the role, the model and the (redacted) provider error."""

    def __init__(self, role: str, model: str, reason: str, *, retryable: bool = False) -> None:
        self.role, self.model, self.reason, self.retryable = role, model, reason, retryable
        super().__init__(f"{role + ' ' if role else ''}model {model}: {reason}")


class BudgetSpent(OrchestratorError):
    """A run budget ran out between model calls outside the dispatcher (planning, mediation,
    synthesis); the thread stops at that node and resumes with a raised budget."""
