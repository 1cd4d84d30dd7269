"""The task board's invariants, checked directly on random interleavings (hypothesis stateful
testing): finish, fail, cancel, hedge, offline, register, late and repeated results, and a crash
with a resume that replays the ledger into a fresh board."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from orchestrator_graph.dag import analyse_plan
from orchestrator_graph.dispatch.board import (
    BoardRules,
    Running,
    TaskBoard,
    replay,
    with_redundancy,
)
from orchestrator_graph.models import Plan, Review, Task, TaskResult
from orchestrator_graph.registry import Registry
from orchestrator_graph.workers import Worker


def _noop(payload):  # never called: the board runs nothing
    return {}


@st.composite
def plans(draw) -> Plan:
    n = draw(st.integers(2, 9))
    tasks = []
    for i in range(n):
        deps = draw(st.lists(st.integers(0, i - 1), max_size=3, unique=True)) if i else []
        tasks.append(
            Task(
                id=f"t{i}",
                title=f"t{i}",
                skills=["s"],
                effort=draw(st.floats(0.01, 1.0)),
                depends_on=[f"t{d}" for d in deps],
                redundancy=draw(st.sampled_from([1, 1, 1, 2])),
            )
        )
    return Plan(tasks=tasks)


class BoardMachine(RuleBasedStateMachine):
    @initialize(plan=plans(), capacities=st.lists(st.integers(1, 2), min_size=1, max_size=3))
    def setup(self, plan: Plan, capacities: list[int]) -> None:
        self.team = [
            Worker(name=f"w{i}", skills=["s"], capacity=c, run=_noop)
            for i, c in enumerate(capacities)
        ]
        tasks = with_redundancy(plan.tasks, analyse_plan(plan), self.team, "off")
        self.plan = plan.model_copy(update={"tasks": tasks})  # as the planner fixes it
        self.ledger: list[tuple[TaskResult, Review]] = []
        self.cancelled: list[Running] = []
        self.applied: set[tuple[str, int]] = set()
        self.approved_once: Counter[str] = Counter()
        self.now = 0.0
        self._new_board([])

    def _new_board(self, ledger: list[tuple[TaskResult, Review]]) -> None:
        self.registry = Registry(self.team)
        self.board = TaskBoard(
            self.plan.tasks,
            analyse_plan(self.plan),
            {},
            self.registry,
            BoardRules(max_attempts=2, loop_guard=3),
        )
        replay(self.board, ledger)

    # --- the runner's moves ----------------------------------------------------------------
    @rule()
    def schedule_round(self) -> None:
        """What the runner does each round, with the simplest worker choice: every ready task
        goes to an able worker with a free slot."""
        board = self.board
        while True:
            free = [
                w for w in self.registry.assignable() if self.registry.load(w.name) < w.capacity
            ]
            started = 0
            for tid in board.ready(free):
                free = [w.name for w in self.registry.assignable() if board.can_start(tid, w.name)]
                if free:
                    self.now += 0.01
                    board.start(tid, free[0], self.now, 0.1, None)
                    started += 1
                else:
                    board.push(tid)
            if not started:
                break
        for tid, rec in board.records.items():  # nothing ready is left beside a free worker
            if rec.status in ("pending", "running") and not board.unmet[tid] and board.needed(tid):
                free = [w.name for w in self.registry.assignable() if board.can_start(tid, w.name)]
                assert not free, f"{tid} is ready and {free} are free after a round"

    @rule(data=st.data(), approve=st.booleans())
    def finish(self, data, approve: bool) -> None:
        if not self.board.running:
            return
        run = data.draw(st.sampled_from(sorted(self.board.running.values(), key=lambda r: r.key)))
        self._finish(run, approve)

    def _finish(self, run: Running, approve: bool) -> None:
        self.now += 0.01
        result = TaskResult(
            task_id=run.task_id,
            attempt=run.attempt,
            worker=run.worker,
            output={"value": 1 if approve else None},
            started_at=self.now - 0.01,
            finished_at=self.now,
        )
        review = Review(
            task_id=run.task_id,
            attempt=run.attempt,
            verdict="approve" if approve else "reject",
            score=1.0 if approve else 0.2,
            feedback="" if approve else "wrong",
        )
        done = self.board.finish(result, review, 0.0)
        key = (run.task_id, run.attempt)
        if done.applied:
            assert key not in self.applied, f"attempt {key} applied twice"
            assert run not in self.cancelled, f"cancelled attempt {key} applied"
            self.applied.add(key)
            self.ledger.append((result, review))
        if done.approved:
            self.approved_once[run.task_id] += 1
            for hedge in done.hedges:  # the runner cancels the approved task's other attempts
                self.board.cancel(hedge, self.now)
                self.cancelled.append(hedge)

    @rule(data=st.data(), approve=st.booleans())
    def late_or_repeated_result(self, data, approve: bool) -> None:
        """A result for an attempt no longer running (cancelled, taken back, or delivered
        twice) changes nothing."""
        gone = [*self.cancelled, *self._finished_runs()]
        if not gone:
            return
        run = data.draw(st.sampled_from(gone))
        if run.key in self.board.running:
            return
        before = {t: r.model_copy() for t, r in self.board.records.items()}
        applied = len(self.applied)
        self._finish(run, approve)
        assert len(self.applied) == applied
        assert self.board.records == before

    def _finished_runs(self) -> list[Running]:
        return [Running(r.task_id, r.worker, r.attempt, 0.0, 0.1) for r, _ in self.ledger]

    @rule(data=st.data())
    def hedge(self, data) -> None:
        runs = [
            r
            for r in self.board.running.values()
            if self.board.redundancy[r.task_id] == 1 and self.board.needed(r.task_id) == 0
        ]
        if runs:
            self.board.hedge(data.draw(st.sampled_from(sorted(r.task_id for r in runs))))

    @rule(data=st.data())
    def worker_goes_offline(self, data) -> None:
        name = data.draw(st.sampled_from([w.name for w in self.registry.workers()]))
        self.registry.set_offline(name)
        for run in [r for r in self.board.running.values() if r.worker == name]:
            self.board.take_back(run)
            self.cancelled.append(run)

    @rule(data=st.data())
    def worker_comes_back(self, data) -> None:
        name = data.draw(st.sampled_from([w.name for w in self.registry.workers()]))
        self.registry.resume_work(name)

    @rule()
    def register_a_worker(self) -> None:
        name = f"w{len(self.team)}"
        worker = Worker(name=name, skills=["s"], capacity=1, run=_noop)
        self.team.append(worker)
        self.registry.register(worker)

    @rule()
    def crash_and_resume(self) -> None:
        """The process dies: running attempts are lost (never in the ledger), and a new board
        replays the ledger. Everything approved stays approved, from the same attempt."""
        approved = {
            t: r.result_key for t, r in self.board.records.items() if r.status == "approved"
        }
        self.cancelled.extend(self.board.running.values())
        self._new_board(self.ledger)
        after = {t: r.result_key for t, r in self.board.records.items() if r.status == "approved"}
        assert after == approved
        self.approved_once = Counter(list(approved))

    # --- invariants ------------------------------------------------------------------------
    @invariant()
    def a_running_task_has_every_dependency_approved(self) -> None:
        if not hasattr(self, "board"):
            return
        for run in self.board.running.values():
            for dep in self.board.tasks[run.task_id].depends_on:
                rec = self.board.records[dep]
                assert rec.status == "approved" and rec.result_key, (run.task_id, dep)

    @invariant()
    def a_task_is_approved_once(self) -> None:
        if hasattr(self, "board"):
            assert all(n <= 1 for n in self.approved_once.values()), self.approved_once

    @invariant()
    def capacity_is_never_exceeded(self) -> None:
        if not hasattr(self, "board"):
            return
        held = Counter(r.worker for r in self.board.running.values())
        for worker in self.team:
            assert held[worker.name] <= worker.capacity
            assert self.registry.load(worker.name) == held[worker.name]

    @invariant()
    def counts_match_the_records(self) -> None:
        if not hasattr(self, "board"):
            return
        actual = Counter(r.status for r in self.board.records.values())
        assert {k: v for k, v in self.board.counts.items() if v} == dict(actual)

    @invariant()
    def replicas_are_on_different_workers(self) -> None:
        if not hasattr(self, "board"):
            return
        per_task = Counter((r.task_id, r.worker) for r in self.board.running.values())
        assert all(n == 1 for n in per_task.values())


TestBoard = BoardMachine.TestCase
TestBoard.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_the_same_tick_hedge_finish_is_applied_once_and_unlocks_dependents_once():
    """The crash found from outside, on the board: a stalled attempt and its hedge both finish
    before the runner reacts; b must wait for c whatever order the results come in."""
    plan = Plan(
        tasks=[
            Task(id="a", title="a", skills=["s"]),
            Task(id="c", title="c", skills=["s"]),
            Task(id="b", title="b", skills=["s"], depends_on=["a", "c"]),
        ]
    )
    registry = Registry([Worker(name=f"w{i}", skills=["s"], run=_noop) for i in range(3)])
    board = TaskBoard(plan.tasks, analyse_plan(plan), {}, registry, BoardRules())
    replay(board, [])
    team = registry.workers()
    assert sorted(board.ready(team)) == ["a", "c"]
    first = board.start("a", "w0", 0.0, 0.1, None)[1]
    board.start("c", "w1", 0.0, 0.1, None)
    board.hedge("a")
    assert board.ready(team) == ["a"]
    second = board.start("a", "w2", 0.1, 0.1, None)[1]

    def ok(run: Running) -> tuple[TaskResult, Review]:
        return (
            TaskResult(task_id="a", attempt=run.attempt, worker=run.worker, output={"v": 1}),
            Review(task_id="a", attempt=run.attempt, verdict="approve", score=1.0),
        )

    assert board.finish(*ok(first), 0.0).approved
    again = board.finish(*ok(second), 0.0)
    assert again.applied and not again.approved  # it ran: history and cost, not a second approval
    assert board.unmet["b"] == 1 and board.ready(team) == []


def test_a_reused_attempt_number_is_watched_from_its_own_start_not_the_taken_back_one():
    """An attempt taken back gives its number to the next launch of the task. The stall watch
    keys attempts by (task, number): the earlier attempt's stall time, still queued, must not
    make the new one count as stalled before its own time."""
    from orchestrator_graph.dispatch.board import Running, WorkerClocks
    from orchestrator_graph.dispatch.watch import StallWatch

    clocks = WorkerClocks()
    watch = StallWatch(clocks, "r", stall_after=2.0)
    first = Running("t", "w1", 1, dispatched=0.0, expected=1.0)
    watch.add(first)
    clocks.began[("r", "t", 1)] = 0.0
    watch.poll()  # stalls at 2.0
    watch.discard(first.key)  # taken back: its worker went offline
    clocks.forget("r", first)
    again = Running("t", "w2", 1, dispatched=5.0, expected=1.0)
    watch.add(again)
    clocks.began[("r", "t", 1)] = 5.0
    watch.poll()  # stalls at 7.0
    assert watch.next_stall(lag=0.0) == 7.0
    assert watch.stalled(now=3.0, lag=0.0) == []
    assert watch.stalled(now=7.5, lag=0.0) == [again]
