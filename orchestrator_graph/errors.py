"""Every error the package raises on purpose, under one base class.

Each subclass keeps the built-in base it had before (``ValueError`` for bad input,
``RuntimeError`` for an unusable resource), so ``except ValueError`` in user code still works;
``except OrchestratorError`` catches all of them. Messages are one line: what is wrong, where,
and what to change. The modules that raised them before re-export them under the same names."""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base of every error orchestrator-graph raises on purpose."""


class InputError(OrchestratorError, ValueError):
    """Bad input found at a boundary (a request, a plan, a roster, a setting, a file)."""


class ToolArgumentsError(InputError):
    """A task's inputs are not valid arguments for the tool that should run it."""


class ContextError(InputError):
    """A ``Context`` field with a value it does not allow. ``field`` names it, ``allowed`` says
    what it takes (choices or a range), ``value`` is what was given."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"context field {field}: {value!r} is not allowed; {allowed}")


class LimitError(InputError):
    """An input beyond a size limit (request length, plan tasks, file size, nesting depth)."""


class PlanValidationError(InputError):
    """A plan that must not run. ``problems`` lists every defect found, each naming its tasks."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid plan: " + "; ".join(problems))


class PlanRejectedError(OrchestratorError, ValueError):
    """The plan gate's reviewer rejected the plan (after one re-plan, for a model's plan)."""


class StoreValueError(OrchestratorError, ValueError):
    """A worker's output holds a value the store cannot keep (named, with its task)."""


class DamagedStoreError(OrchestratorError, RuntimeError):
    """A state or store database that cannot be read: says which file and what to do."""


class ConnectionFailed(OrchestratorError, RuntimeError):
    """A database (Postgres) that cannot be reached or opened: one line saying which and why."""


class MemoryUnavailable(OrchestratorError, RuntimeError):
    """The plan memory cannot be used; the run goes on without it."""


class ProviderError(OrchestratorError):
    """A model provider failed a call after the retries it was worth (or at once, for errors
    retrying cannot fix). One line: the role, the model and the (redacted) provider error."""

    def __init__(self, role: str, model: str, reason: str, *, retryable: bool = False) -> None:
        self.role, self.model, self.reason, self.retryable = role, model, reason, retryable
        super().__init__(f"{role + ' ' if role else ''}model {model}: {reason}")


class StructuredOutputError(OrchestratorError, RuntimeError):
    """The model did not produce a valid answer within the allowed re-asks."""


class EmbeddingUnavailable(MemoryUnavailable):
    """The embedding model cannot be loaded: memory goes without it (and says why)."""


class BudgetExceeded(OrchestratorError):
    """A run budget is spent inside the dispatcher: it stops, the run pauses at the budget gate,
    resumable with more."""


class BudgetSpent(OrchestratorError):
    """A run budget ran out between model calls outside the dispatcher (planning, mediation,
    synthesis); the thread stops at that node and resumes with a raised budget."""


class ThreadBusy(OrchestratorError, RuntimeError):
    """A thread another live process is running: one runner per thread (names the holder)."""


class DataPolicyError(InputError):
    """Data the policy refuses (a private key in a request), or a task whose classification
    does not allow the model or region chosen: names the task, the classification and what is
    not allowed."""


class SandboxError(InputError):
    """A path outside the roots the deployment allows (``sandbox``): names the path and the
    roots."""


class AccessDenied(OrchestratorError, PermissionError):
    """An identity acting beyond its roles or tenant, or no identity where one is required."""
