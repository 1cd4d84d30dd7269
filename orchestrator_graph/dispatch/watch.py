"""The running attempts the dispatcher watches, kept so that a round costs what changed, not
what runs: a round looks only at attempts whose worker has not begun yet (usually the ones just
launched), and finds stalls by popping a heap of stall times. With thousands of attempts
running at once, scanning them all every round made the dispatcher quadratic."""

from __future__ import annotations

import heapq
import itertools

from orchestrator_graph.dispatch.board import Running, TaskBoard, WorkerClocks
from orchestrator_graph.dispatch.policies import (
    hedge_worth_it,
    stall_at,
    stall_finding,
    stall_response,
)
from orchestrator_graph.models import Bottleneck

Key = tuple[str, int]


class StallWatch:
    """Attempts between launch and the end of their worker's call. ``stall_after <= 0``: no
    stall is watched, but when each worker began is still noted (pace, ETA and hedging read
    ``Running.since``)."""

    def __init__(self, clocks: WorkerClocks, run_id: str, stall_after: float) -> None:
        self.clocks, self.run_id, self.stall_after = clocks, run_id, stall_after
        self.unbegun: dict[Key, Running] = {}
        self.watched: dict[Key, Running] = {}
        # (stall time without the loop's lag, tie-break, attempt): an attempt number taken back
        # is used again, so an entry counts only while its own attempt is the one watched
        self.heap: list[tuple[float, int, Running]] = []
        self._order = itertools.count()
        self.unhedged: set[Key] = set()  # stalled when no slot was free for a hedge

    def add(self, run: Running) -> None:
        self.unbegun[run.key] = run

    def discard(self, key: Key) -> None:
        self.unbegun.pop(key, None)
        self.watched.pop(key, None)  # its heap entry is skipped when it comes up

    def poll(self) -> None:
        """Note the workers that began since the last round; each gets its stall time."""
        for key, run in list(self.unbegun.items()):
            self.clocks.note(self.run_id, run)
            if run.began is None:
                continue
            del self.unbegun[key]
            at = stall_at(run, self.stall_after)
            if self.stall_after > 0 and at is not None:
                self.watched[key] = run
                heapq.heappush(self.heap, (at, next(self._order), run))

    def waiting_to_begin(self) -> bool:
        return self.stall_after > 0 and bool(self.unbegun)

    def next_stall(self, lag: float) -> float | None:
        """The earliest stall time of a watched attempt, the loop's lateness allowed for."""
        while self.heap and not self._current(self.heap[0][2]):
            heapq.heappop(self.heap)
        return self.heap[0][0] + lag if self.heap else None

    def stalled(self, now: float, lag: float) -> list[Running]:
        """Attempts past their stall time whose worker has not returned: each found once."""
        out = []
        while self.heap and self.heap[0][0] + lag <= now:
            run = heapq.heappop(self.heap)[2]
            if not self._current(run):
                continue
            del self.watched[run.key]
            self.clocks.note(self.run_id, run)
            if run.returned is None:
                out.append(run)
        return out

    def _current(self, run: Running) -> bool:
        return self.watched.get(run.key) is run

    def check(self, board: TaskBoard, now: float, lag: float, *, adapt: bool) -> list[Bottleneck]:
        """Stalled attempts (past ``stall_after`` times their expected duration), each found
        once; with adaptation on, a hedge starts where it costs no queued work a slot, then or
        as soon as such a slot is free."""
        for key in list(self.unhedged):
            run = board.running.get(key)
            if run is None:
                self.unhedged.discard(key)
            elif hedge_worth_it(board, run):
                self.unhedged.discard(key)
                board.hedge(run.task_id)
        found = []
        for run in self.stalled(now, lag):
            hedge = adapt and hedge_worth_it(board, run)
            if hedge:
                board.hedge(run.task_id)
            elif adapt:
                self.unhedged.add(run.key)
            response = stall_response(adapt, hedge)
            found.append(stall_finding(run, now, self.stall_after, response))
        return found
