"""Resolution accuracy per mechanism when redundant workers disagree and the truth is known.

Each trial: one question with 4 candidate answers, one of them true. Every voter is right with
its hidden accuracy, else picks a wrong answer at random; its ranking puts its answer first,
then the truth with its accuracy, then the rest. Weights come from each voter's observed track
record (20 past seeded questions), not from the hidden accuracy. Fixed seeds.

Run: python evals/bench_consensus.py"""

from __future__ import annotations

import random

from orchestrator_graph.consensus import MECHANISMS, Ballot, expertise_weight

CANDIDATES = ["A", "B", "C", "D"]
SCENARIOS = {
    "expertise differs (0.9, 0.6, 0.55, 0.5, 0.45)": [0.9, 0.6, 0.55, 0.5, 0.45],
    "one expert, four weak (0.85, 0.4 x4)": [0.85, 0.4, 0.4, 0.4, 0.4],
    "equal expertise (0.7 x5)": [0.7] * 5,
    "three voters (0.8, 0.6, 0.6)": [0.8, 0.6, 0.6],
}


def ballot(rng: random.Random, voter: str, accuracy: float, truth: str, weight: float) -> Ballot:
    wrong = [c for c in CANDIDATES if c != truth]
    answer = truth if rng.random() < accuracy else rng.choice(wrong)
    rest = [c for c in CANDIDATES if c != answer]
    rng.shuffle(rest)
    if answer != truth and rng.random() < accuracy:
        rest.remove(truth)
        rest.insert(0, truth)
    return Ballot(voter=voter, answer=answer, ranking=[answer, *rest], weight=weight)


def track_record(rng: random.Random, accuracy: float, questions: int = 20) -> float:
    right = sum(rng.random() < accuracy for _ in range(questions))
    return (right + 1) / (questions + 2)  # Laplace estimate


def run(accuracies: list[float], trials: int, seed: int) -> dict[str, tuple[float, float]]:
    rng = random.Random(seed)
    weights = [expertise_weight(1.0, track_record(rng, a)) for a in accuracies]
    right = dict.fromkeys(MECHANISMS, 0)
    undecided = dict.fromkeys(MECHANISMS, 0)
    for _ in range(trials):
        truth = rng.choice(CANDIDATES)
        ballots = [
            ballot(rng, f"w{i}", a, truth, w)
            for i, (a, w) in enumerate(zip(accuracies, weights, strict=True))
        ]
        for name, mechanism in MECHANISMS.items():
            winner = mechanism(ballots).winner
            right[name] += winner == truth
            undecided[name] += winner is None
    return {n: (right[n] / trials, undecided[n] / trials) for n in MECHANISMS}


def main() -> None:
    trials = 4000
    print(
        f"\n## Resolution accuracy with known truth ({trials} seeded trials per scenario; "
        "ties count as wrong, their share in brackets)\n"
    )
    print(
        "| voters' hidden accuracy | best single voter | majority | weighted | Borda | "
        "arbitration |"
    )
    print("|---|---|---|---|---|---|")
    for label, accuracies in SCENARIOS.items():
        r = run(accuracies, trials, seed=11)
        cells = " | ".join(f"{r[m][0]:.3f} ({r[m][1]:.2f})" for m in MECHANISMS)
        print(f"| {label} | {max(accuracies):.3f} | {cells} |")


if __name__ == "__main__":
    main()
