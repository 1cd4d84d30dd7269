"""Plan memory: every finished run, kept in Chroma and recalled by the meaning of its request.

By default an embedded ``PersistentClient`` in the data directory (``<home>/chroma``); a Chroma
server when the location is a URL (``http://host:port``). The location comes from
``create_orchestrator(memory=...)``, else ``$ORCHESTRATOR_GRAPH_CHROMA``, else the data
directory. Requests are embedded with the offline MiniLM model (``embeddings``) or a provider's
embeddings; each collection is named after its embedder so vector spaces never mix.

A memory that cannot be opened (a corrupted folder, an unreachable server, a missing model) is
reported once per run with its reason, and the run goes on without memory."""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
from collections.abc import Iterable
from difflib import SequenceMatcher
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from pydantic import BaseModel, Field

from orchestrator_graph.errors import MemoryUnavailable as MemoryUnavailable
from orchestrator_graph.models import Plan, Task
from orchestrator_graph.persistence import HOME_ENV

if TYPE_CHECKING:  # chromadb is imported when the memory is first used, not with the package
    from chromadb.api import ClientAPI
    from chromadb.api.types import Documents, EmbeddingFunction
    from langchain_core.embeddings import Embeddings

CHROMA_ENV = "ORCHESTRATOR_GRAPH_CHROMA"
MIN_SIMILARITY = 0.4  # below this a past run is not related enough to recall
_TOKEN = re.compile(r"[\w./-]*\w")


class TaskOutcome(BaseModel):
    skills: list[str]
    effort: float
    worker: str | None = None
    status: str
    attempts: int = 0
    verdicts: list[tuple[str, str]] = Field(
        default_factory=list, description="(worker, approve | reject) per attempt, in order"
    )
    score: float | None = None
    seconds: float = Field(0.0, description="time of the attempts, summed")
    cost: float = 0.0
    tokens: int = 0


class RunRecord(BaseModel):
    """What a finished run leaves for the next ones."""

    run_id: str
    request: str
    status: str
    plan: Plan
    assignments: dict[str, str] = Field(default_factory=dict, description="task -> worker")
    outcomes: dict[str, TaskOutcome] = Field(default_factory=dict)
    conflicts: list[dict[str, Any]] = Field(
        default_factory=list, description="kind, mechanism, resolution of each conflict"
    )
    makespan: float = 0.0
    planned_makespan: float = 0.0
    quality: float = Field(0.0, description="final review score times the share approved")
    qa_failures: int = 0
    planner_calls: int = 0
    tokens: int = 0
    team: list[str] = Field(default_factory=list)
    bottlenecks: list[str] = Field(default_factory=list, description="kinds found in the run")
    at: float = Field(default_factory=time.time)


class Recalled(BaseModel):
    similarity: float
    record: RunRecord

    def summary(self) -> dict[str, Any]:
        """What the graph state keeps of it (the record itself stays in the memory)."""
        r = self.record
        return {
            "run_id": r.run_id,
            "similarity": self.similarity,
            "request": r.request[:300],
            "status": r.status,
            "quality": r.quality,
        }


class PlanMemory:
    """One Chroma collection of run records. The methods block (Chroma and the model are
    synchronous): the graph calls them through ``asyncio.to_thread``."""

    def __init__(
        self, client: ClientAPI, embedder: EmbeddingFunction[Documents] | None = None
    ) -> None:
        from orchestrator_graph.embeddings import MiniLMEmbeddings, embedder_id

        self.embedder = embedder or MiniLMEmbeddings()
        # chromadb's stub wants a function over every embeddable (text and images); ours embeds
        # text, which is all this collection holds. Always explicit: the default would download.
        self.collection = client.get_or_create_collection(
            f"orchestrator-runs-{embedder_id(self.embedder)}",
            embedding_function=self.embedder,  # type: ignore[arg-type]
            metadata={"hnsw:space": "cosine"},
        )

    def remember(self, record: RunRecord) -> None:
        """The request is what gets embedded; the record itself is the stored document, so
        listing runs reads only the small metadata."""
        self.collection.upsert(
            ids=[record.run_id],
            embeddings=self.embedder([record.request]),
            documents=[record.model_dump_json(exclude_defaults=True)],
            metadatas=[
                {
                    "request": record.request[:2000],
                    "status": record.status,
                    "quality": record.quality,
                    "at": record.at,
                }
            ],
        )

    def recall(
        self, request: str, k: int = 3, min_similarity: float = MIN_SIMILARITY
    ) -> list[Recalled]:
        """The ``k`` most similar past runs (cosine similarity of the requests' embeddings),
        best first; none below ``min_similarity``."""
        count = self.collection.count()
        if not count:
            return []
        found = self.collection.query(
            query_embeddings=self.embedder([request]),
            n_results=min(k, count),
            include=["documents", "distances"],
        )
        out = []
        documents, distances = found["documents"] or [[]], found["distances"] or [[]]
        for doc, distance in zip(documents[0], distances[0], strict=True):
            similarity = round(1.0 - float(distance), 4)
            if similarity >= min_similarity:
                out.append(
                    Recalled(similarity=similarity, record=RunRecord.model_validate_json(doc))
                )
        return sorted(out, key=lambda r: (-r.similarity, -r.record.quality, r.record.run_id))

    def records(self, limit: int = 200) -> list[RunRecord]:
        """The most recent runs, newest first (only their records are read in full)."""
        index = self.collection.get(include=["metadatas"])
        newest = sorted(
            zip(index["ids"], index["metadatas"] or [], strict=True),
            key=lambda pair: -float(pair[1]["at"]),  # type: ignore[arg-type]
        )[:limit]
        if not newest:
            return []
        got = self.collection.get(ids=[i for i, _ in newest], include=["documents"])
        by_id = dict(zip(got["ids"], got["documents"] or [], strict=True))
        return [RunRecord.model_validate_json(by_id[i]) for i, _ in newest]

    def count(self) -> int:
        return self.collection.count()


def default_location() -> str:
    home = os.environ.get(HOME_ENV) or ".orchestrator-graph"
    return os.environ.get(CHROMA_ENV) or str(Path(home).expanduser() / "chroma")


_clients: dict[str, ClientAPI] = {}
_clients_lock = threading.Lock()


def client_for(location: str) -> ClientAPI:
    """One client per location and process: a folder (embedded) or ``http(s)://host:port``."""
    import chromadb
    from chromadb.config import Settings

    with _clients_lock:
        if location not in _clients:
            settings = Settings(anonymized_telemetry=False)
            try:
                if location.startswith(("http://", "https://")):
                    url = urlparse(location)
                    _clients[location] = chromadb.HttpClient(
                        host=url.hostname or "127.0.0.1",
                        port=url.port or (443 if url.scheme == "https" else 8000),
                        ssl=url.scheme == "https",
                        settings=settings,
                    )
                else:
                    Path(location).mkdir(parents=True, exist_ok=True)
                    _clients[location] = chromadb.PersistentClient(path=location, settings=settings)
            except Exception as err:  # chromadb raises many kinds; all mean "not usable"
                raise MemoryUnavailable(
                    f"plan memory at {location} cannot be opened: {type(err).__name__}: {err}"
                ) from err
        return _clients[location]


class MemoryHandle:
    """Where the memory lives, opened on first use (never at import or graph build)."""

    def __init__(
        self,
        memory: PlanMemory | str | None = None,
        embeddings: Embeddings | EmbeddingFunction[Documents] | None = None,
    ) -> None:
        self._memory = memory if isinstance(memory, PlanMemory) else None
        self._location = memory if isinstance(memory, str) else None
        self.embeddings = embeddings
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return self._location or default_location()

    def open(self) -> PlanMemory:
        with self._lock:
            if self._memory is None:
                self._memory = self._open()
            return self._memory

    def _open(self) -> PlanMemory:
        from orchestrator_graph.embeddings import embedding_function

        location = self.location
        try:
            return PlanMemory(client_for(location), embedding_function(self.embeddings))
        except MemoryUnavailable:
            raise
        except Exception as err:
            _clients.pop(location, None)
            raise MemoryUnavailable(
                f"plan memory at {location} cannot be used: {type(err).__name__}: {err}"
            ) from err

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A memory method in a worker thread; any failure becomes ``MemoryUnavailable``."""

        def run() -> Any:
            memory = self.open()
            try:
                return getattr(memory, method)(*args, **kwargs)
            except MemoryUnavailable:
                raise
            except Exception as err:
                raise MemoryUnavailable(
                    f"plan memory at {self.location} failed ({method}): {type(err).__name__}: {err}"
                ) from err

        return await asyncio.to_thread(run)


# --- using what was recalled --------------------------------------------------------------


def reusable(recalled: list[Recalled], threshold: float, request: str) -> Plan | None:
    """The best recalled plan that adapts to ``request``, when it is similar enough and its run
    succeeded."""
    for r in recalled:
        if r.similarity >= threshold and r.record.status == "done":
            adapted = adapt_plan(r.record.plan, r.record.request, request)
            if adapted is not None:
                return adapted
    return None


def substitutions(old: str, new: str) -> dict[str, str]:
    """Words the new request puts in place of the old one's, one for one (``by region`` ->
    ``by product``, ``q3.csv`` -> ``q4.csv``); insertions and deletions map nothing."""
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    out: dict[str, str] = {}
    matcher = SequenceMatcher(a=[w.lower() for w in a], b=[w.lower() for w in b], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "replace" and i2 - i1 == j2 - j1:
            out.update(zip(a[i1:i2], b[j1:j2], strict=True))
    return out


def adapt_plan(plan: Plan, old_request: str, new_request: str) -> Plan | None:
    """The recalled plan for the new request: every input value the old request named is
    replaced by what the new request says in its place; the goal follows the new request.
    ``None`` when an input names something the new request neither keeps nor replaces (the
    plan would do the old job)."""
    swap = substitutions(old_request, new_request)
    named = {w.lower() for w in _TOKEN.findall(old_request)}
    kept = {w.lower() for w in _TOKEN.findall(new_request)}
    stale: list[str] = []

    def adapt(value: Any) -> Any:
        if isinstance(value, list):
            return [adapt(v) for v in value]
        if isinstance(value, dict):
            return {k: adapt(v) for k, v in value.items()}
        if not isinstance(value, str):
            return value
        words = _TOKEN.findall(value)
        for word in words:
            if word in swap:
                value = re.sub(rf"(?<![\w./-]){re.escape(word)}(?![\w./-])", swap[word], value)
            elif word.lower() in named and word.lower() not in kept:
                stale.append(word)
        return value

    tasks = [t.model_copy(update={"inputs": adapt(t.inputs)}) for t in plan.tasks]
    if stale:
        return None
    return plan.model_copy(update={"tasks": tasks, "goal": new_request, "source": "recalled"})


class FailurePattern(BaseModel):
    """A kind of task (its skills) on which a worker failed often in past runs."""

    skills: list[str]
    worker: str
    attempts: int
    failures: int

    @property
    def rate(self) -> float:
        return self.failures / self.attempts if self.attempts else 0.0


def failure_patterns(
    records: Iterable[RunRecord], min_attempts: int = 2, min_rate: float = 0.5
) -> list[FailurePattern]:
    """(skills × worker) pairs that failed at least ``min_rate`` of ``min_attempts`` or more.

    Each run counts once, however many times it is passed (a run both recent and recalled)."""
    counts: dict[tuple[tuple[str, ...], str], list[int]] = {}
    for record in {r.run_id: r for r in records}.values():
        for outcome in record.outcomes.values():
            for worker, verdict in outcome.verdicts:
                tally = counts.setdefault((tuple(sorted(outcome.skills)), worker), [0, 0])
                tally[0] += 1
                tally[1] += verdict != "approve"
    patterns = [
        FailurePattern(skills=list(skills), worker=worker, attempts=n, failures=f)
        for (skills, worker), (n, f) in counts.items()
    ]
    return sorted(
        (p for p in patterns if p.attempts >= min_attempts and p.rate >= min_rate),
        key=lambda p: (-p.rate, p.worker, p.skills),
    )


def mitigations(
    tasks: Iterable[Task], patterns: list[FailurePattern], able: dict[str, list[str]]
) -> dict[str, dict[str, Any]]:
    """Per task, what the patterns call for: ``avoid`` the workers that failed such tasks (when
    another able worker is left), else a ``strict`` QA policy (a closer check of the result);
    and ``pad``, the factor on its expected duration for the retries to expect."""
    out: dict[str, dict[str, Any]] = {}
    for task in tasks:
        key = sorted(task.skills)
        hits = [p for p in patterns if p.skills == key]
        if not hits:
            continue
        bad = sorted({p.worker for p in hits})
        left = [w for w in able.get(task.id, []) if w not in bad]
        worst = max(p.rate for p in hits)
        out[task.id] = {
            "avoid": bad if left else [],
            "qa_policy": None if left else "strict",
            "pad": round(1.0 + worst, 4),
            "why": ", ".join(f"{p.worker} failed {p.failures}/{p.attempts}" for p in hits),
        }
    return out


def examples(recalled: list[Recalled], n: int = 2, limit: int = 8000) -> str:
    """The best recalled runs for the planner's prompt: request, plan, and how it went."""
    lines = []
    for entry in recalled[:n]:
        r = entry.record
        failed = sorted(t for t, o in r.outcomes.items() if o.status != "approved")
        lines.append(
            json.dumps(
                {
                    "request": r.request,
                    "plan": r.plan.model_dump(mode="json", include={"goal", "tasks"}),
                    "outcome": {"status": r.status, "quality": r.quality, "failed": failed},
                },
                default=str,
            )
        )
    return "\n".join(lines)[:limit]
