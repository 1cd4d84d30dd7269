"""The tamper-evident audit log of a run: append-only entries in the store, each chained to the
one before by an HMAC whose key is held outside the database (a key file or an environment
variable), so that changing, deleting, inserting, reordering or re-chaining entries without the
key is detected by ``verify``.

Each entry's MAC covers its sequence number, the previous entry's MAC and the SHA-256 of its
payload (what happened, who did it, why). Purging a run removes the payloads and keeps the
digests, so the chain of a purged run still verifies."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import json
import os
import time
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from langgraph.store.base import BaseStore, PutOp
from pydantic import BaseModel, Field

from orchestrator_graph.errors import InputError
from orchestrator_graph.keyfiles import kept_secret, write_private
from orchestrator_graph.ledger import AUDIT, innermost
from orchestrator_graph.persistence import HOME_ENV, data_dir
from orchestrator_graph.protection.redact import default_redactor

KEY_ENV = "ORCHESTRATOR_GRAPH_AUDIT_KEY"  # the key itself (hex or text)
KEY_FILE_ENV = "ORCHESTRATOR_GRAPH_AUDIT_KEY_FILE"  # or a file holding it
KEY_FILE = "audit.key"  # the default: beside the data folder, never inside a database
HEADS = "audit-heads"  # one file per run beside the key: its chain's length and last MAC
GENESIS = "0" * 64
PAGE = 10_000
# The key a process's runs chain with, when its caller knows the data folder (the CLI's --home).
ACTIVE_KEY: contextvars.ContextVar[bytes | None] = contextvars.ContextVar("audit_key", default=None)
ACTIVE_HEADS: contextvars.ContextVar[Path | None] = contextvars.ContextVar("heads", default=None)


ChainEvent = tuple[str, str, str, dict[str, Any]]  # (event id, actor, action, payload)


class AuditRecord(BaseModel):
    """One link of the chain as stored. ``payload`` is None once the run has been purged."""

    seq: int
    at: float = Field(default_factory=time.time)
    event: str = Field(description="a stable id: the same event is never chained twice")
    actor: str
    action: str
    payload: dict[str, Any] | None = None
    digest: str = Field(description="SHA-256 of the canonical payload")
    prev: str
    mac: str


class Broken(BaseModel):
    """The first entry of a chain that does not verify, and why."""

    seq: int
    reason: str


class Verification(BaseModel):
    run_id: str
    entries: int
    ok: bool
    broken: Broken | None = None
    purged: int = 0
    head: int | None = Field(
        default=None, description="the length the head kept outside the database records"
    )


class ChainHead(BaseModel):
    """A chain's end as its writer last left it, kept beside the key and tagged with it:
    deleting the newest entries from the database leaves the chain shorter than its head."""

    run_id: str
    seq: int
    mac: str
    tag: str

    def valid(self, key: bytes) -> bool:
        return hmac.compare_digest(self.tag, _head_tag(key, self.run_id, self.seq, self.mac))


def _head_tag(key: bytes, run_id: str, seq: int, mac: str) -> str:
    return hmac.new(key, canonical(["head", run_id, seq, mac]), hashlib.sha256).hexdigest()


def head_file(folder: Path, run_id: str) -> Path:
    return folder / f"{hashlib.sha256(run_id.encode()).hexdigest()[:32]}.json"


def read_head(folder: Path, run_id: str) -> ChainHead | None:
    path = head_file(folder, run_id)
    if not path.is_file():
        return None
    try:
        return ChainHead.model_validate_json(path.read_text())
    except ValueError:
        raise InputError(f"audit head {path}: not a chain head; restore it or remove it") from None


def write_head(folder: Path, run_id: str, key: bytes, seq: int, mac: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    head = ChainHead(run_id=run_id, seq=seq, mac=mac, tag=_head_tag(key, run_id, seq, mac))
    write_private(head_file(folder, run_id), head.model_dump_json())


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def audit_key(home: str | os.PathLike[str] | None = None, *, create: bool = True) -> bytes:
    """The HMAC key: ``$ORCHESTRATOR_GRAPH_AUDIT_KEY``, else the file named by
    ``$ORCHESTRATOR_GRAPH_AUDIT_KEY_FILE``, else ``audit.key`` in the data folder (made, mode
    0600, the first time when ``create``)."""
    if value := os.environ.get(KEY_ENV):
        return value.encode()
    named = os.environ.get(KEY_FILE_ENV)
    path = Path(named) if named else data_dir(home) / KEY_FILE
    if not path.is_file() and (named or not create):
        raise InputError(f"audit key {path}: no such file; set {KEY_ENV} or {KEY_FILE_ENV}")
    return kept_secret(path)


def heads_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """Where the chains' heads are kept: beside the audit key file (the folder of
    ``$ORCHESTRATOR_GRAPH_AUDIT_KEY_FILE``, else the data folder), outside every database."""
    named = os.environ.get(KEY_FILE_ENV)
    return (Path(named).parent if named else data_dir(home)) / HEADS


def use_home(home: str | os.PathLike[str] | None) -> bytes:
    """This process chains with the key and keeps heads in the folder of ``home`` (the CLI's
    ``--home``); the key."""
    key = audit_key(home)
    ACTIVE_KEY.set(key)
    ACTIVE_HEADS.set(heads_dir(home))
    return key


def _mac(key: bytes, seq: int, event: str, actor: str, action: str, digest: str, prev: str) -> str:
    header = canonical([seq, event, actor, action, digest, prev])
    return hmac.new(key, header, hashlib.sha256).hexdigest()


def namespace(run_id: str) -> tuple[str, ...]:
    return (*AUDIT, run_id)


class _Head:
    """The end of one run's chain as this process last wrote it, so an append reads the chain
    from the store only once per process; and its writer, which keeps the head file behind it."""

    def __init__(self, folder: Path, run_id: str, key: bytes) -> None:
        self.file = folder, run_id, key  # where the head file goes
        self.loading: asyncio.Future[None] | None = None  # reading the stored chain
        self.loaded = False
        self.seq, self.mac, self.seen = 0, GENESIS, set[str]()
        self.stored = (0, GENESIS)  # the end of what the store holds
        self.written: tuple[int, str] | None = None
        self.writer: asyncio.Task[None] | None = None
        self.last_put: asyncio.Future[None] | None = None
        self.generation = 0  # one more at each failed write

    async def put_in_order(
        self, store: BaseStore, namespace: tuple[str, ...], entries: list[dict[str, Any]]
    ) -> None:
        """Store ``entries`` after every earlier append's, then keep the head file behind them:
        a crash leaves a prefix of the chain. Not under a lock: an ``asyncio.Lock`` hands over
        one loop pass at a time, and under a steady stream of attempts its queue never drained
        (a 1,000-task run took 430 dispatcher rounds instead of 127, and up to 70 % more CPU). A
        failed write makes this process read the chain again, and the appends chained after it
        in the meantime are not stored (they would follow a missing entry)."""
        before, mine = self.last_put, asyncio.get_running_loop().create_future()
        self.last_put, generation = mine, self.generation
        try:
            if before is not None and not before.done():
                await asyncio.wait([before])  # not ``await before``: a cancel would reach it
            if generation != self.generation:
                raise RuntimeError("an earlier write of this audit chain failed")
            puts = [PutOp(namespace, f"{e['seq']:09d}", e, index=False) for e in entries]
            await store.abatch(puts)
        except BaseException:
            if generation == self.generation:
                self.generation, self.loaded = generation + 1, False
            raise
        else:
            self.stored = entries[-1]["seq"], entries[-1]["mac"]
            self.keep()
        finally:
            mine.set_result(None)

    def keep(self) -> None:
        """Write the head file behind the appends, off the event loop and one write per burst:
        awaited on the hot path (an entry per attempt) a file write per entry cost ~5 ms a task
        on a loaded machine. ``settle`` waits for it at every pause and at the end of a run."""
        if self.writer is None or self.writer.done():
            # In an empty context: a task keeps the context it was made in, and the run's
            # (its config, its store) would then outlive the run, held by this head.
            self.writer = asyncio.create_task(self._write(), context=contextvars.Context())

    async def _write(self) -> None:
        while self.written != self.stored:
            end = self.stored
            await asyncio.to_thread(write_head, *self.file, *end)
            self.written = end

    async def settle(self) -> None:
        if self.last_put is not None and not self.last_put.done():
            await asyncio.wait([self.last_put])
        if self.writer is not None:
            await self.writer

    def load(self, records: list[AuditRecord], kept: ChainHead | None) -> None:
        """The end of the stored chain, or the head kept outside the database when that is
        further on: appends after the newest entries were deleted leave the gap in sight."""
        self.seq = records[-1].seq if records else 0
        self.mac = records[-1].mac if records else GENESIS
        if kept is not None and kept.seq > self.seq:
            self.seq, self.mac = kept.seq, kept.mac
        self.stored = self.seq, self.mac
        self.seen = {r.event for r in records}
        self.loaded = True


# per event loop (its futures belong to one loop), per store (under its wrappers: one head per
# chain whichever wrapper appends or verifies), per run
_heads: weakref.WeakKeyDictionary[Any, weakref.WeakKeyDictionary[BaseStore, dict[str, _Head]]]
_heads = weakref.WeakKeyDictionary()


class AuditLog:
    """Appends to and reads one run's chain. Appends in one process are serialised per run;
    one process drives a thread at a time (``threads.owner``), so the chain has one writer."""

    def __init__(
        self, store: BaseStore, run_id: str, key: bytes, heads: Path | None = None
    ) -> None:
        self.store, self.run_id, self.key = store, run_id, key
        self.namespace = namespace(run_id)
        self.heads = heads or ACTIVE_HEADS.get()

    async def head(self) -> ChainHead | None:
        """This chain's head as kept outside the database (read in a thread: the server
        refuses blocking file access on its event loop)."""
        return await asyncio.to_thread(read_head, await self.folder(), self.run_id)

    async def folder(self) -> Path:
        if self.heads is None:
            setting = (os.environ.get(KEY_FILE_ENV), os.environ.get(HOME_ENV))
            if setting not in _folders:  # resolved (and made) once per process and setting
                _folders[setting] = await asyncio.to_thread(heads_dir)
            self.heads = _folders[setting]
        return self.heads

    async def records(self) -> list[AuditRecord]:
        out: list[AuditRecord] = []
        offset = 0
        while True:
            page = await self.store.asearch(self.namespace, limit=PAGE, offset=offset)
            out.extend(AuditRecord.model_validate(i.value) for i in page)
            if len(page) < PAGE:
                break
            offset += PAGE
        return sorted(out, key=lambda r: r.seq)

    async def append(self, events: Iterable[ChainEvent]) -> list[AuditRecord]:
        """Chain each ``(event id, actor, action, payload)`` not chained before, in order."""
        folder = await self.folder()
        stores = _heads.setdefault(asyncio.get_running_loop(), weakref.WeakKeyDictionary())
        heads = stores.setdefault(innermost(self.store), {})
        if (head := heads.get(self.run_id)) is None:
            head = heads[self.run_id] = _Head(folder, self.run_id, self.key)
        if not head.loaded:
            if head.loading is None or head.loading.done():  # none yet, or it failed
                # in an empty context, as the writer (``_Head.keep``)
                head.loading = asyncio.get_running_loop().create_task(
                    self._load(head), context=contextvars.Context()
                )
            await asyncio.shield(head.loading)  # every waiter goes on in the same loop pass
        entries: list[dict[str, Any]] = []
        for event, actor, action, payload in events:  # chained now, in call order
            if event in head.seen:
                continue
            seq, prev = head.seq + 1, head.mac
            payload = default_redactor().value(payload)  # redacted, then hashed and kept
            digest = hashlib.sha256(canonical(payload)).hexdigest()
            mac = _mac(self.key, seq, event, actor, action, digest, prev)
            # stored as built (JSON already: the payload was just hashed as JSON); an entry
            # per attempt, so no model is validated and dumped again on the way
            entries.append(
                {"seq": seq, "at": time.time(), "event": event, "actor": actor}
                | {"action": action, "payload": payload, "digest": digest, "prev": prev}
                | {"mac": mac}
            )
            head.seen.add(event)
            head.seq, head.mac = seq, mac
        if not entries:
            return []
        await head.put_in_order(self.store, self.namespace, entries)
        return [AuditRecord.model_construct(**e) for e in entries]

    async def _load(self, head: _Head) -> None:
        kept = await self.head()
        # a head not made with this key says nothing here; verify reports it
        head.load(await self.records(), kept if kept and kept.valid(self.key) else None)

    async def settle(self) -> None:
        """Until the head file holds every entry this process appended to the chain."""
        loop = asyncio.get_running_loop()
        head = _heads.get(loop, {}).get(innermost(self.store), {}).get(self.run_id)  # type: ignore[call-overload]
        if head is not None:
            await head.settle()

    async def verify(self) -> Verification:
        await self.settle()
        kept = await self.head()
        return verify_records(self.run_id, await self.records(), self.key, kept)

    async def purge_payloads(self) -> int:
        """Drop every payload, keep the chain (digests and MACs) verifiable."""
        count = 0
        for record in await self.records():
            if record.payload is not None:
                value = record.model_copy(update={"payload": None}).model_dump(mode="json")
                await self.store.aput(self.namespace, f"{record.seq:09d}", value, index=False)
                count += 1
        return count


def verify_records(
    run_id: str, records: list[AuditRecord], key: bytes, kept: ChainHead | None = None
) -> Verification:
    """The first entry that breaks the chain: a wrong MAC (changed, inserted or re-chained
    without the key), a gap in the sequence (deleted), a ``prev`` that is not the MAC before it
    (reordered or spliced), a payload that does not match its digest, or, against the head
    ``kept`` outside the database, entries missing from the end (deleted) or a rewritten end."""
    prev, purged = GENESIS, 0
    head = kept.seq if kept else None
    for expected, record in enumerate(records, start=1):

        def broken(reason: str, seq: int = record.seq) -> Verification:
            fault = Broken(seq=seq, reason=reason)
            return Verification(
                run_id=run_id, entries=len(records), ok=False, broken=fault, head=head
            )

        if record.seq != expected:
            what = "missing (deleted)" if record.seq > expected else "repeated (inserted)"
            return broken(f"entry {expected} is {what}; found entry {record.seq} there", expected)
        if record.prev != prev:
            return broken("does not follow the entry before it (reordered or spliced)")
        mac = _mac(key, record.seq, record.event, record.actor, record.action, record.digest, prev)
        if not hmac.compare_digest(mac, record.mac):
            return broken(
                "its MAC does not match (changed, inserted or re-chained without the key)"
            )
        if record.payload is None:
            purged += 1
        elif hashlib.sha256(canonical(record.payload)).hexdigest() != record.digest:
            return broken("its payload does not match its digest (changed)")
        prev = record.mac
    fault = _against_head(records, key, kept)
    return Verification(
        run_id=run_id,
        entries=len(records),
        ok=fault is None,
        broken=fault,
        purged=purged,
        head=head,
    )


def _against_head(records: list[AuditRecord], key: bytes, kept: ChainHead | None) -> Broken | None:
    if kept is None:
        return None
    if not kept.valid(key):
        return Broken(seq=kept.seq, reason="the head kept outside the database is not this key's")
    count = len(records)
    if kept.seq > count:
        which = (
            f"entry {count + 1} is"
            if kept.seq == count + 1
            else (f"entries {count + 1}-{kept.seq} are")
        )
        reason = f"{which} missing (deleted from the end): the chain's head says {kept.seq}"
        return Broken(seq=count + 1, reason=reason)
    if kept.seq and not hmac.compare_digest(records[kept.seq - 1].mac, kept.mac):
        return Broken(seq=kept.seq, reason="does not match the chain's head (rewritten)")
    return None


def state_events(values: Mapping[str, Any]) -> list[ChainEvent]:
    """The events a run's state records (plan gate, assignments with their reasons, conflicts,
    decisions and escalation answers with who gave them, the final gate), as chain events."""
    out: list[ChainEvent] = []
    if gate := values.get("plan_review"):
        out.append(("plan_review", gate["reviewer"], f"plan {gate['verdict']}", dict(gate)))
    for i, conflict in enumerate(values.get("conflicts", [])):
        actor = conflict.get("mechanism") or "dispatcher"
        out.append((f"conflict:{i}", actor, f"conflict {conflict['kind']}", dict(conflict)))
    for task_id, record in sorted((values.get("tasks") or {}).items()):
        if worker := record.get("worker"):
            out.append(assignment_event(task_id, worker, record.get("assignment")))
    for i, decision in enumerate(values.get("decisions", [])):
        out.append(decision_event(i, decision))
    if final := values.get("final_review"):
        out.append(("final_review", final["reviewer"], f"deliverable {final['verdict']}", final))
    return out


def assignment_event(task_id: str, worker: str, reasons: Any) -> ChainEvent:
    """A task given to a worker, and why (score parts, runner-up): one entry per task and
    worker, whether chained when the dispatcher assigns or later from the state."""
    payload = {"task_id": task_id, "worker": worker, "reasons": reasons}
    return (f"assigned:{task_id}:{worker}", "dispatcher", "assignment", payload)


def decision_event(index: int, decision: Mapping[str, Any]) -> ChainEvent:
    """The run's ``index``-th decision (a human's answer names who gave it)."""
    actor = decision.get("actor") or decision["by"]
    return (f"decision:{index}", actor, f"decision {decision['action']}", dict(decision))


def attempt_event(result: Mapping[str, Any], review: Mapping[str, Any]) -> ChainEvent:
    """A ledger entry as a chain event: who did the attempt, the verdict and why."""
    key = f"{result['task_id']}#{result['attempt']}"
    payload = {
        "task_id": result["task_id"],
        "attempt": result["attempt"],
        "worker": result["worker"],
        "error": result.get("error"),
        "verdict": review["verdict"],
        "score": review["score"],
        "reviewer": review["reviewer"],
        "feedback": review.get("feedback", ""),
    }
    return (f"attempt:{key}", result["worker"], f"attempt {review['verdict']}", payload)


_keys: dict[tuple[str | None, ...], bytes] = {}
_folders: dict[tuple[str | None, ...], Path] = {}


async def run_key() -> bytes:
    """The key a run chains with: the caller's (``ACTIVE_KEY``), else ``audit_key()`` read once
    per process and setting, off the event loop (the server refuses blocking file access)."""
    if key := ACTIVE_KEY.get():
        return key
    setting = (os.environ.get(KEY_ENV), os.environ.get(KEY_FILE_ENV), os.environ.get(HOME_ENV))
    if setting not in _keys:
        _keys[setting] = await asyncio.to_thread(audit_key)
    return _keys[setting]


async def record_attempt(
    store: BaseStore, run_id: str, result: Mapping[str, Any], review: Mapping[str, Any]
) -> None:
    """The ledger's hook: a finished attempt (as stored) is chained the moment it is recorded."""
    await AuditLog(store, run_id, await run_key()).append([attempt_event(result, review)])


async def export_jsonl(store: BaseStore, run_id: str, key: bytes) -> str:
    records = await AuditLog(store, run_id, key).records()
    return "".join(json.dumps(r.model_dump(mode="json"), sort_keys=True) + "\n" for r in records)


async def chain_state(store: BaseStore, values: Mapping[str, Any], key: bytes | None = None) -> int:
    """Chain what the run's state records and the chain lacks; the number of entries added."""
    run_id = values.get("run_id")
    if not run_id:
        return 0
    events = state_events(values)
    if (report := values.get("report")) and not values.get("stopped"):  # not a budget pause
        summary = {"status": report.get("status"), "reason": report.get("reason")}
        events.append(("finished", "orchestrator", f"run {report.get('status')}", summary))
    log = AuditLog(store, run_id, key or await run_key())
    added = await log.append(events)
    await log.settle()  # called at each pause and at the end: the head is on disk from here
    return len(added)
