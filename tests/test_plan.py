"""The pure planner: GAP arithmetic, the fast subset scorer, and the search (vs brute force)."""

import itertools

import numpy as np
import pytest

from yt8m_kit.ensemble import search as P
from yt8m_kit.ensemble.summary import explain, format_tables
from yt8m_kit.evaluate import metrics


def naive_gap(scores, labels, k=20):
    """Textbook GAP@k with Python loops: the reference the fast paths must match."""
    pairs = []
    for row, true in zip(scores, labels):
        top = np.argsort(-row, kind="stable")[:k]
        pairs += [(row[c], c in set(true)) for c in top]
    pairs.sort(key=lambda p: -p[0])
    hits, total = 0, 0.0
    for i, (_, rel) in enumerate(pairs, 1):
        if rel:
            hits += 1
            total += hits / i
    return total / sum(len(set(t)) for t in labels)


def random_problem(rng, n=60, classes=300, members=4, signal=2.0):
    labels = [rng.choice(classes, rng.integers(1, 5), replace=False) for _ in range(n)]
    base = rng.standard_normal((n, classes)).astype(np.float32) - 3
    for i, t in enumerate(labels):
        base[i, t] += signal
    scores = [1 / (1 + np.exp(-(base + rng.standard_normal(base.shape).astype(np.float32))))
              for _ in range(members)]
    indptr = np.concatenate([[0], np.cumsum([len(t) for t in labels])])
    return scores, labels, indptr, np.concatenate(labels)


def test_gap_matches_naive_and_metrics_module():
    rng = np.random.default_rng(0)
    scores, labels, indptr, indices = random_problem(rng, members=1)
    expected = naive_gap(scores[0], labels)
    assert 0.05 < expected < 0.95
    assert metrics.gap(scores[0], labels) == pytest.approx(expected, abs=1e-9)
    ev = metrics.Evaluator(num_classes=scores[0].shape[1])
    multihot = np.zeros_like(scores[0])
    for i, t in enumerate(labels):
        multihot[i, t] = 1
    ev.add(scores[0], multihot)
    assert ev.result()["gap"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("pool", [20, 48])
def test_subset_gap_is_exact_for_every_subset(pool):
    rng = np.random.default_rng(1)
    scores, labels, indptr, indices = random_problem(rng)
    copies = [s.copy() for s in scores]
    scorer = P.SubsetGap(scores, indptr, indices, pool=pool, block=25)  # 60 rows: 3 blocks
    assert all(np.array_equal(a, b) for a, b in zip(scores, copies))  # inputs untouched
    for r in range(1, len(scores) + 1):
        for members in itertools.combinations(range(len(scores)), r):
            expected = naive_gap(sum(scores[m] for m in members) / len(members), labels)
            assert scorer.gap(members) == pytest.approx(expected, abs=1e-9), members
    if pool == 20:  # a pool equal to k must hit the bound check and recompute rows
        assert scorer.fallback_rows > 0


@pytest.mark.parametrize("pool", [20, 40])
def test_subset_gap_ranks_ties_as_the_evaluator(pool):
    """Saturated and coarse scores (ties mixing true and false pairs, also at the 20th place): the
    planner's GAP is the evaluator's, to the last bit, for every subset. (It once ranked a tie
    pessimistically: 0.331 where the evaluator said 0.591.)"""
    rng = np.random.default_rng(3)
    n, classes = 40, 60
    labels = [rng.choice(classes, rng.integers(1, 4), replace=False) for _ in range(n)]
    scores = [np.round(rng.random((n, classes)) * 4).astype(np.float32) / 4 for _ in range(2)]
    scores.append(np.ones((n, classes), np.float32))  # saturated: everything ties
    for i, t in enumerate(labels):
        scores[0][i, t] = np.maximum(scores[0][i, t], 0.75)
    indptr = np.concatenate([[0], np.cumsum([len(t) for t in labels])])
    scorer = P.SubsetGap(scores, indptr, np.concatenate(labels), pool=pool)
    mixed = 0
    for r in range(1, 4):
        for members in itertools.combinations(range(3), r):
            mean = sum(scores[m] for m in members) / np.float32(len(members))
            expected = metrics.gap(mean, labels)
            assert scorer.gap(members) == expected, members
            mixed += expected != naive_gap(mean, labels)  # the textbook order differs: ties matter here
    assert mixed > 0
    assert scorer.gap((2,)) == metrics.gap(scores[2], labels) > 0


def random_table(rng, runs, precisions=P.PRECISIONS):
    cands = []
    for r in range(runs):
        size = int(rng.integers(100, 1000))
        for p, div in zip(precisions, (1, 2, 4)):
            cands.append(P.Candidate(f"run{r}", "m", p, size // div + int(rng.integers(0, 5))))
    return cands


def brute_force(cands, gap_of, budget, overhead):
    best = None
    for r in range(1, len(cands) + 1):
        for members in itertools.combinations(range(len(cands)), r):
            if len({cands[m].run for m in members}) < r:
                continue  # at most one precision per run
            size = overhead + sum(cands[m].bytes for m in members)
            if size <= budget and (best is None or gap_of(members) > best[0]):
                best = (gap_of(members), members)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_search_finds_the_true_optimum(seed):
    rng = np.random.default_rng(seed)
    cands = random_table(rng, runs=4)
    table = {}

    def gap_of(members):  # arbitrary (non-additive) GAP per plan, fixed once drawn
        return table.setdefault(tuple(sorted(members)), float(rng.random()))

    total = sum(c.bytes for c in cands if c.precision == "float32")
    for budget in (total // 5, total // 2, total * 2):
        best, plans, how = P.search(cands, gap_of, budget, overhead=7)
        expected = brute_force(cands, gap_of, budget, 7)
        assert how == "exhaustive"
        assert best is not None and best.bytes <= budget
        assert best.gap == expected[0] and best.members == expected[1]


def test_search_with_real_scores_matches_brute_force():
    rng = np.random.default_rng(3)
    scores, labels, indptr, indices = random_problem(rng, members=6)
    cands = [P.Candidate(f"run{i // 2}", "m", ("float32", "int8")[i % 2], (i // 2 + 1) * 100 // (1 + i % 2))
             for i in range(6)]
    scorer = P.SubsetGap(scores, indptr, indices)
    best, _, _ = P.search(cands, scorer.gap, budget=260)
    expected = brute_force(cands, lambda m: naive_gap(sum(scores[i] for i in m) / len(m), labels), 260, 0)
    assert best.members == expected[1]
    assert best.gap == pytest.approx(expected[0], abs=1e-9)


def test_greedy_beyond_the_exhaustive_limit():
    rng = np.random.default_rng(4)
    cands = random_table(rng, runs=8)
    gains = {i: float(rng.random()) for i in range(len(cands))}

    def gap_of(members):  # additive with diminishing returns: greedy's home ground
        return sum(gains[m] for m in members) / (1 + 0.1 * len(members))

    budget = sum(c.bytes for c in cands) // 4
    best, plans, how = P.search(cands, gap_of, budget, max_exhaustive=100)
    assert how == "greedy"
    assert best.bytes <= budget
    assert best.gap >= max(gap_of((i,)) for i, c in enumerate(cands) if c.bytes <= budget)
    assert len(plans) < P.count_plans(cands)  # it did not enumerate everything


def test_nothing_fits_and_smallest_plan():
    cands = random_table(np.random.default_rng(5), runs=3)
    smallest = P.smallest_plan_bytes(cands, overhead=10)
    assert smallest == 10 + min(c.bytes for c in cands)
    best, plans, _ = P.search(cands, lambda m: 1.0, smallest - 1, overhead=10)
    assert best is None and plans == []
    best, _, _ = P.search(cands, lambda m: 1.0, smallest, overhead=10)
    assert best.bytes == smallest


def test_explain_and_pareto():
    cands = [P.Candidate("a", "m", "float32", 400), P.Candidate("a", "m", "bfloat16", 200),
             P.Candidate("b", "m", "float32", 900), P.Candidate("b", "m", "int8", 300)]
    gap = {(0,): 0.5, (1,): 0.49, (2,): 0.6, (3,): 0.58, (0, 3): 0.7, (1, 3): 0.69, (0, 2): 0.72, (1, 2): 0.71}
    best, plans, _ = P.search(cands, lambda m: gap[m], budget=550, score_all=True)
    assert best.members == (1, 3) and best.gap == 0.69  # (0, 3) is 700 bytes: over
    why = explain(cands, best, lambda m: gap[m], 550)
    assert why["a"].startswith("cast to bfloat16: -0.000 MiB, -0.0100 GAP")
    assert "over budget" in why["a"] and "cast to int8" in why["b"]
    best, _, _ = P.search(cands, lambda m: gap[m], budget=450)
    why = explain(cands, best, lambda m: gap[m], 450)
    assert best.members == (3,) and "exceeds the budget" in why["a"]
    text = format_tables(cands, best, why, 450)
    assert "dropped" in text and "exceeds the budget" in text
    front = P.pareto_front(plans)
    assert [p.members for p in front] == [(1,), (3,), (1, 3), (0, 3), (1, 2), (0, 2)]


def test_a_member_dropped_for_a_gain_within_the_noise_says_so():
    """Was 'dropped: adding it at int8 fits but changes GAP by +0.0042': a gain, dropped, the reason elsewhere."""
    cands = [P.Candidate("a", "m", "float32", 400), P.Candidate("b", "m", "float32", 400)]
    plan = P.Plan((0,), 400, 0.70)
    why = explain(cands, plan, {(0,): 0.70, (1,): 0.60, (0, 1): 0.7042}.__getitem__, 1000)
    assert why["b"] == ("dropped: adding it at float32 fits but changes GAP by +0.0042, within the noise: a member "
                        "stays only where it helps by more than --noise-z standard errors of the paired difference")
    why = explain(cands, plan, {(0,): 0.70, (1,): 0.60, (0, 1): 0.69}.__getitem__, 1000)
    assert why["b"] == "dropped: adding it at float32 fits but changes GAP by -0.0100: it does not help"
