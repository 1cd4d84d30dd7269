import pytest

from orchestrator_graph.consensus import (
    Ballot,
    arbitration,
    borda,
    expertise_weight,
    majority,
    weighted,
)


def ballots(*spec):
    return [Ballot(voter=v, answer=a, weight=w, ranking=list(r)) for v, a, w, r in spec]


def test_majority_counts_and_reports_ties():
    v = majority(ballots(("a", "x", 1, ""), ("b", "x", 1, ""), ("c", "y", 1, "")))
    assert v.winner == "x" and v.votes == {"x": 2, "y": 1} and "next y with 1" in v.reason
    tie = majority(ballots(("a", "x", 1, ""), ("b", "y", 1, "")))
    assert tie.winner is None and "tie between x, y" in tie.reason
    assert majority([]).winner is None


def test_weighted_vote_lets_expertise_outweigh_numbers():
    spec = (
        ("expert", "right", 2.2, ""),
        ("n1", "wrong", 0.4, ""),
        ("n2", "wrong", 0.4, ""),
        ("n3", "wrong", 0.4, ""),
    )
    assert majority(ballots(*spec)).winner == "wrong"
    w = weighted(ballots(*spec))
    assert w.winner == "right" and w.votes == {"right": 2.2, "wrong": pytest.approx(1.2)}
    assert w.weights["expert"] == 2.2


def test_borda_uses_whole_rankings():
    # 'b' is nobody's first choice but everyone's second: it wins on points.
    v = borda(
        ballots(
            ("1", "a", 1, "abc"),
            ("2", "c", 1, "cba"),
            ("3", "b", 1, "bac"),
            ("4", "a", 1, "abc"),
            ("5", "c", 1, "cba"),
        )
    )
    assert v.votes == {"a": 5.0, "b": 6.0, "c": 4.0}
    assert v.winner == "b"


def test_arbitration_follows_the_most_qualified():
    v = arbitration(
        ballots(("junior", "x", 0.5, ""), ("senior", "y", 1.8, ""), ("peer", "x", 0.6, ""))
    )
    assert v.winner == "y" and "senior is the most qualified" in v.reason


def test_expertise_weight_is_log_odds():
    assert expertise_weight(1.0, 0.5) == 0.0
    assert expertise_weight(0.9, 1.0) == pytest.approx(2.197, abs=1e-3)
    assert expertise_weight(0.2, 0.5) == 0.0  # worse than chance counts for nothing
