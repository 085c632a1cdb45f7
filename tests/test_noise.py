"""Choices that survive noise: the bootstrap, the video split, and the planner's simplification rule."""

import numpy as np
import pytest

from yt8m_kit.ensemble import noise
from yt8m_kit.ensemble import search as P
from yt8m_kit.evaluate import bootstrap, metrics


def problem(rng, n=400, classes=200, signal=2.0):
    labels = [rng.choice(classes, rng.integers(1, 4), replace=False) for _ in range(n)]
    base = rng.standard_normal((n, classes)).astype(np.float32) - 3
    for i, t in enumerate(labels):
        base[i, t] += signal
    indptr = np.concatenate([[0], np.cumsum([len(t) for t in labels])])
    return base, labels, indptr, np.concatenate(labels)


def sigmoid(x):
    return (1 / (1 + np.exp(-x))).astype(np.float32)


@pytest.mark.parametrize("coarse", [False, True])
def test_bootstrap_full_sample_is_metrics_gap(coarse):
    rng = np.random.default_rng(0)
    base, labels, indptr, indices = problem(rng)
    scores = sigmoid(base + rng.standard_normal(base.shape))
    if coarse:  # ties that mix true and false pairs: the official order decides
        scores = np.round(scores * 8) / 8
    keys = P.label_keys(indptr, indices, scores.shape[1])
    ranking = bootstrap.Ranking.of_scores(scores, keys)
    positives = bootstrap.positives_per_video(keys, len(labels), scores.shape[1])
    assert ranking.gap(positives) == metrics.gap(scores, labels)
    assert ranking.gap(positives, np.ones(len(labels), np.int64)) == metrics.gap(scores, labels)
    # A resample that draws every video twice scores like the full sample (pairs and labels doubled).
    assert ranking.gap(positives, np.full(len(labels), 2)) == pytest.approx(metrics.gap(scores, labels), abs=0.02)
    draws = bootstrap.resample_gaps([ranking], positives, resamples=100)
    se = bootstrap.standard_error(draws[:, 0])
    # The spread of GAP over independent samples of 400 videos of the same distribution: about the same.
    others = [metrics.gap(sigmoid(b + rng.standard_normal(b.shape)), lab)
              for b, lab, *_ in (problem(np.random.default_rng(s)) for s in range(1, 9))]
    assert 0.3 < se / np.std(others, ddof=1) < 3


def test_paired_difference_is_tighter_than_either_gap():
    rng = np.random.default_rng(1)
    base, labels, indptr, indices = problem(rng)
    a = sigmoid(base + rng.standard_normal(base.shape))
    b = sigmoid(np.log(a / (1 - a)) + 0.05 * rng.standard_normal(a.shape))  # a, slightly perturbed
    keys = P.label_keys(indptr, indices, a.shape[1])
    pos = bootstrap.positives_per_video(keys, len(labels), a.shape[1])
    draws = bootstrap.resample_gaps([bootstrap.Ranking.of_scores(s, keys) for s in (a, b)], pos, resamples=100)
    se_a = bootstrap.standard_error(draws[:, 0])
    se_diff = bootstrap.standard_error(draws[:, 0] - draws[:, 1])
    assert se_diff < se_a / 3


def test_split_is_stable_disjoint_and_by_id():
    ids = [f"v{i:05d}" for i in range(2000)]
    choose, report = noise.split_videos(ids, 0.5)
    assert np.intersect1d(choose, report).size == 0 and choose.size + report.size == 2000
    assert 0.45 < report.size / 2000 < 0.55
    shuffled = ids[::-1]  # the same videos in another order land in the same part
    c2, r2 = noise.split_videos(shuffled, 0.5)
    assert {shuffled[i] for i in r2} == {ids[i] for i in report}
    assert noise.split_videos(ids, 0)[1].size == 0
    with pytest.raises(ValueError):
        noise.split_videos(ids, 1.0)


def planner(members_scores, labels, indptr, indices):
    return P.SubsetGap(members_scores, indptr, indices)


def test_a_lower_precision_that_wins_only_by_noise_is_not_chosen():
    """Two copies of one member that differ only by noise (float32 and an 'int8' copy with tiny
    perturbations): at a budget where float32 fits, the choice is float32 whichever scores higher."""
    picked_lower_without_rule = 0
    for seed in range(8):
        rng = np.random.default_rng(seed)
        base, labels, indptr, indices = problem(rng)
        shared = base + rng.standard_normal(base.shape)  # one model; each copy adds its own small noise
        f32, noisy = (sigmoid(shared + 0.2 * rng.standard_normal(base.shape)) for _ in range(2))
        cands = [P.Candidate("a", "m", "float32", 400), P.Candidate("a", "m", "int8", 100)]
        scorer = planner([f32, noisy], labels, indptr, indices)
        best, _, _ = P.search(cands, scorer.gap, budget=1000)
        picked_lower_without_rule += cands[best.members[0]].precision == "int8"
        chosen, steps = noise.choose_within_noise(cands, best, scorer, budget=1000, z=2.0)
        assert [cands[m].precision for m in chosen.members] == ["float32"], steps
        # Where float32 does not fit, the lower precision is kept: it is needed.
        tight_best, _, _ = P.search(cands, scorer.gap, budget=200)
        tight, _ = noise.choose_within_noise(cands, tight_best, scorer, budget=200, z=2.0)
        assert [cands[m].precision for m in tight.members] == ["int8"]
    assert picked_lower_without_rule > 0  # the plain arg-max did follow the noise in some seeds


def test_a_lower_precision_that_wins_beyond_noise_is_kept():
    rng = np.random.default_rng(3)
    base, labels, indptr, indices = problem(rng)
    weak = sigmoid(base + 2.0 * rng.standard_normal(base.shape))
    strong = sigmoid(base + 0.3 * rng.standard_normal(base.shape))  # much better "int8" copy
    cands = [P.Candidate("a", "m", "float32", 400), P.Candidate("a", "m", "int8", 100)]
    scorer = planner([weak, strong], labels, indptr, indices)
    best, _, _ = P.search(cands, scorer.gap, budget=1000)
    chosen, steps = noise.choose_within_noise(cands, best, scorer, budget=1000, z=2.0)
    assert [cands[m].precision for m in chosen.members] == ["int8"]
    assert steps and not steps[0]["accepted"] and steps[0]["diff"] > 2 * steps[0]["se"]


def test_a_member_stays_only_when_it_helps_beyond_noise():
    rng = np.random.default_rng(4)
    base, labels, indptr, indices = problem(rng, signal=1.5)
    a = sigmoid(base + rng.standard_normal(base.shape))
    echo = sigmoid(np.log(a / (1 - a)) + 0.05 * rng.standard_normal(a.shape))  # adds nothing but noise
    independent = sigmoid(base + rng.standard_normal(base.shape))  # independent errors: averaging helps
    cands = [P.Candidate("a", "m", "float32", 100), P.Candidate("echo", "m", "float32", 100),
             P.Candidate("b", "m", "float32", 100)]
    scorer = planner([a, echo, independent], labels, indptr, indices)
    best, _, _ = P.search(cands, scorer.gap, budget=10**6)
    chosen, steps = noise.choose_within_noise(cands, best, scorer, budget=10**6, z=2.0)
    runs = sorted(cands[m].run for m in chosen.members)
    assert "echo" not in runs or "a" not in runs  # never both copies
    assert len(runs) == 2  # two members with independent errors stay together
    # z = 0 is the plain arg-max.
    same, no_steps = noise.choose_within_noise(cands, best, scorer, budget=10**6, z=0)
    assert same == best and no_steps == []


def test_report_scores_the_plan_on_other_videos():
    rng = np.random.default_rng(5)
    base, labels, indptr, indices = problem(rng, n=600)
    scores = [sigmoid(base + rng.standard_normal(base.shape)) for _ in range(3)]
    cands = [P.Candidate(r, "m", "float32", 100) for r in "abc"]
    rows = np.arange(300, 600)
    scorer = P.SubsetGap(scores, indptr, indices, rows=rows)
    out = noise.report(P.Plan((0, 1, 2), 300, 0.0), scorer, cands, resamples=50)
    mean = sum(scores) / 3
    assert out["gap"] == pytest.approx(metrics.gap(mean[rows], [labels[r] for r in rows]), abs=1e-12)
    assert out["videos"] == 300 and 0 < out["se"] < 0.05
    singles = [metrics.gap(s[rows], [labels[r] for r in rows]) for s in scores]
    assert out["best_member_gap"] == pytest.approx(max(singles), abs=1e-12)
    assert out["margin"] == pytest.approx(out["gap"] - max(singles), abs=1e-12)
    assert out["margin"] > 2 * out["margin_se"] > 0  # three independent members: a real gain


# ---------------------------------------------------------------- fitted member weights

def test_weighted_subset_gap_is_exact():
    rng = np.random.default_rng(6)
    base, labels, indptr, indices = problem(rng)
    scores = [sigmoid(base + s * rng.standard_normal(base.shape)) for s in (0.5, 1.0, 2.0)]
    scorer = P.SubsetGap(scores, indptr, indices, pool=24)
    w = {0: 2.5, 1: 1.0, 2: 0.3}
    mean = sum(w[m] * scores[m] for m in w) / sum(w.values())
    assert scorer.gap((0, 1, 2), w) == pytest.approx(metrics.gap(mean, labels), abs=1e-9)
    assert scorer.gap((0, 1, 2), {0: 1.0, 1: 1.0, 2: 1.0}) == pytest.approx(scorer.gap((0, 1, 2)), abs=1e-12)
    with pytest.raises(ValueError):
        scorer.gap((0, 1), {0: 1.0, 1: 0.0})


def test_weights_are_kept_only_when_they_win_on_other_videos():
    from yt8m_kit.ensemble import weighting

    rng = np.random.default_rng(7)
    base, labels, indptr, indices = problem(rng, n=800)
    ids = [f"v{i}" for i in range(800)]
    fit_rows, check_rows = weighting.split_fit_check(ids, np.arange(800))
    assert 300 < fit_rows.size < 500 and np.intersect1d(fit_rows, check_rows).size == 0
    strong, weak = sigmoid(base + 0.4 * rng.standard_normal(base.shape)), sigmoid(base + 3 * rng.standard_normal(base.shape))
    fitter, checker = (P.SubsetGap([strong, weak], indptr, indices, rows=r) for r in (fit_rows, check_rows))
    weights, fit_gap = weighting.fit((0, 1), fitter)
    assert weights[0] > 2 * weights[1] and fit_gap > fitter.gap((0, 1))
    decision = weighting.decide((0, 1), weights, checker)
    assert decision["keep"] and decision["diff"] > 2 * decision["se"]
    # Two members of equal quality: whatever the fit finds on one half does not hold beyond noise on the other.
    twins = [sigmoid(base + rng.standard_normal(base.shape)) for _ in range(2)]
    fitter, checker = (P.SubsetGap(twins, indptr, indices, rows=r) for r in (fit_rows, check_rows))
    weights, _ = weighting.fit((0, 1), fitter)
    assert not weighting.decide((0, 1), weights, checker)["keep"]


def test_the_two_splits_are_independent():
    """The fit/check halves cut across the choose/report split (a CRC-based salt did not: for ids of
    one length it put every choose video in one half)."""
    from yt8m_kit.ensemble import weighting

    ids = [f"{i:06x}" for i in range(4000)]  # all the same length
    choose, report = noise.split_videos(ids, 0.5)
    fit, check = weighting.split_fit_check(ids, choose)
    assert 0.45 < fit.size / choose.size < 0.55
    fit_r, _ = weighting.split_fit_check(ids, report)
    assert 0.45 < fit_r.size / report.size < 0.55
