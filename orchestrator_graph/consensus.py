"""Consensus among redundant answers: majority, weighted vote, ranked choice (Borda) and expert
arbitration. Pure functions over ballots; every decision keeps its votes, weights and reason."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from orchestrator_graph.models import Conflict

Mechanism = Literal["majority", "weighted", "borda", "arbitration"]


class Ballot(BaseModel):
    """One voter's answer. ``answer`` is a canonical key (equal answers compare equal);
    ``ranking`` lists the candidates it prefers, best first (for Borda; its answer if empty);
    ``weight`` is its expertise for this question (skill level × quality history, say)."""

    voter: str
    answer: str
    ranking: list[str] = Field(default_factory=list)
    weight: float = Field(1.0, ge=0)


class Verdict(BaseModel):
    mechanism: Mechanism
    winner: str | None = Field(description="None when the vote is tied or empty")
    votes: dict[str, float] = Field(description="points per candidate answer")
    weights: dict[str, float] = Field(description="weight per voter as used")
    reason: str


def _decide(
    mechanism: Mechanism, points: dict[str, float], weights: dict[str, float], how: str
) -> Verdict:
    if not points:
        return Verdict(
            mechanism=mechanism, winner=None, votes={}, weights=weights, reason="no ballots"
        )
    ranked = sorted(points.items(), key=lambda kv: (-kv[1], kv[0]))
    best, top = ranked[0]
    tied = [a for a, p in ranked if math.isclose(p, top)]
    if len(tied) > 1:
        return Verdict(
            mechanism=mechanism,
            winner=None,
            votes=points,
            weights=weights,
            reason=f"tie between {', '.join(tied)} at {top:g} ({how})",
        )
    runner = f"; next {ranked[1][0]} with {ranked[1][1]:g}" if len(ranked) > 1 else ""
    return Verdict(
        mechanism=mechanism,
        winner=best,
        votes=points,
        weights=weights,
        reason=f"{best} has {top:g} ({how}){runner}",
    )


def majority(ballots: Sequence[Ballot]) -> Verdict:
    points: dict[str, float] = defaultdict(float)
    for b in ballots:
        points[b.answer] += 1
    return _decide("majority", dict(points), {b.voter: 1.0 for b in ballots}, "one vote each")


def weighted(ballots: Sequence[Ballot]) -> Verdict:
    points: dict[str, float] = defaultdict(float)
    for b in ballots:
        points[b.answer] += b.weight
    return _decide(
        "weighted",
        {k: round(v, 6) for k, v in points.items()},
        {b.voter: b.weight for b in ballots},
        "votes weighted by expertise",
    )


def borda(ballots: Sequence[Ballot]) -> Verdict:
    """Each ballot gives n-1 points to its first choice, n-2 to the next, ... over the n
    candidates anyone proposed; unranked candidates share the lowest points."""
    candidates = sorted({b.answer for b in ballots} | {a for b in ballots for a in b.ranking})
    n = len(candidates)
    points: dict[str, float] = dict.fromkeys(candidates, 0.0)
    for b in ballots:
        order = list(dict.fromkeys(b.ranking or [b.answer]))
        for place, answer in enumerate(order):
            points[answer] += n - 1 - place
    return _decide("borda", points, {b.voter: 1.0 for b in ballots}, "ranked choice, Borda count")


def arbitration(ballots: Sequence[Ballot]) -> Verdict:
    """The most qualified voter decides (highest weight; ties by name)."""
    if not ballots:
        return _decide("arbitration", {}, {}, "")
    expert = min(ballots, key=lambda b: (-b.weight, b.voter))
    return Verdict(
        mechanism="arbitration",
        winner=expert.answer,
        votes={expert.answer: expert.weight},
        weights={b.voter: b.weight for b in ballots},
        reason=f"{expert.voter} is the most qualified (weight {expert.weight:g}) and "
        f"answers {expert.answer}",
    )


MECHANISMS: dict[str, Callable[[Sequence[Ballot]], Verdict]] = {
    "majority": majority,
    "weighted": weighted,
    "borda": borda,
    "arbitration": arbitration,
}


def expertise_weight(level: float, quality: float) -> float:
    """Log-odds of being right, from a skill level and a quality history in (0, 1): the weight
    that makes a weighted vote of independent voters most likely correct."""
    p = min(max(level * quality, 1e-3), 1 - 1e-3)
    return max(0.0, math.log(p / (1 - p)))


class FactClaim(BaseModel):
    """One result's value for a named fact (``output["facts"][name]``)."""

    task_id: str
    worker: str
    name: str
    value: Any
    weight: float = 1.0


def settle_facts(
    claims: Sequence[FactClaim], mechanism: Mechanism
) -> tuple[dict[str, Any], list[str], list[Conflict]]:
    """Facts every claim agrees on pass; contradicting ones go to a vote among the claims.
    Returns the settled facts, the names still disputed (tied votes), and the conflicts."""
    by_name: dict[str, list[FactClaim]] = defaultdict(list)
    for claim in claims:
        by_name[claim.name].append(claim)
    settled: dict[str, Any] = {}
    disputed: list[str] = []
    conflicts: list[Conflict] = []
    for name, group in sorted(by_name.items()):
        key = {id(c): json.dumps(c.value, sort_keys=True, default=str) for c in group}
        if len(set(key.values())) == 1:
            settled[name] = group[0].value
            continue
        ballots = [
            Ballot(voter=f"{c.task_id}/{c.worker}", answer=key[id(c)], weight=c.weight)
            for c in group
        ]
        verdict = MECHANISMS[mechanism](ballots)
        if verdict.winner is None:
            disputed.append(name)
        else:
            settled[name] = json.loads(verdict.winner)
        conflicts.append(
            Conflict(
                kind="contradicting_facts",
                parties=[b.voter for b in ballots],
                detail=f"fact {name!r}: " + ", ".join(f"{b.voter}={b.answer}" for b in ballots),
                mechanism=verdict.mechanism,
                winner=verdict.winner,
                votes=verdict.votes,
                weights=verdict.weights,
                resolution=verdict.reason,
            )
        )
    return settled, disputed, conflicts


def settle_priority(
    task_id: str, votes: dict[str, int], weights: dict[str, float], mechanism: Mechanism
) -> tuple[int | None, Conflict | None]:
    """Stakeholders' priorities for a task: the agreed one, or the vote's winner with the
    dispute recorded (``None`` priority when the vote ties: the plan's own priority stands)."""
    if not votes:
        return None, None
    if len(set(votes.values())) == 1:
        return next(iter(votes.values())), None
    ballots = [
        Ballot(voter=who, answer=str(p), weight=weights.get(who, 1.0))
        for who, p in sorted(votes.items())
    ]
    verdict = MECHANISMS[mechanism](ballots)
    conflict = Conflict(
        kind="priority_dispute",
        task_id=task_id,
        parties=[b.voter for b in ballots],
        detail=", ".join(f"{b.voter} wants {b.answer}" for b in ballots),
        mechanism=verdict.mechanism,
        winner=verdict.winner,
        votes=verdict.votes,
        weights=verdict.weights,
        resolution=verdict.reason,
    )
    return (int(verdict.winner) if verdict.winner else None), conflict
