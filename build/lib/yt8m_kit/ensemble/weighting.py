"""One weight per member instead of the paper's plain mean (`submit.py --fit-weights`), kept only when
it wins on videos it was not fitted on.

The paper averages its members and notes that tuning the combination "may improve". Here the choose
videos are split again by a salted hash of the id: weights are fitted on one part (coordinate ascent
over each member's weight on a multiplicative grid, a few rounds, GAP as the objective) and compared
with the plain mean on the other part; the weights are kept only when they beat the mean there by more
than `z` standard errors of the paired GAP difference (yt8m_kit.evaluate.bootstrap). The report videos
stay untouched by this choice too. Weights are normalised to sum to the number of members, so the plain
mean is all ones.
"""

import numpy as np

from yt8m_kit.ensemble.noise import id_hash
from yt8m_kit.evaluate import bootstrap

GRID = (0.25, 0.5, 0.7, 1.0, 1.4, 2.0, 4.0)  # factors tried on one member's weight per step
ROUNDS = 3


def split_fit_check(ids, rows):
    """(fit rows, check rows): `rows` (indices into ids) halved by a hash of each id salted apart from
    noise.split_videos, so that the halves are not the report/choose cut again."""
    rows = np.asarray(rows, np.int64)
    fit = np.array([id_hash(ids[r], b"yt8m-weights") < 2**31 for r in rows], bool)
    return rows[fit], rows[~fit]


def _normalised(weights):
    total = sum(weights.values())
    return {m: w * len(weights) / total for m, w in weights.items()}


def fit(members, scorer, grid=GRID, rounds=ROUNDS):
    """({member: weight}, GAP on `scorer`'s videos): coordinate ascent from the plain mean."""
    weights = {m: 1.0 for m in members}
    best = scorer.gap(members, weights)
    for _ in range(rounds):
        improved = False
        for m in members:
            for factor in grid:
                if factor == 1.0:
                    continue
                trial = _normalised({**weights, m: weights[m] * factor})
                g = scorer.gap(members, trial)
                if g > best:
                    best, weights, improved = g, trial, True
        if not improved:
            break
    return _normalised(weights), best


def decide(members, weights, scorer, z=2.0, resamples=bootstrap.DEFAULT_RESAMPLES, seed=0):
    """{"keep", "gap_mean", "gap_weighted", "diff", "se"} on `scorer`'s videos (those the weights were
    not fitted on): keep when the weighted mean wins by more than z paired standard errors."""
    positives = bootstrap.positives_per_video(scorer.keys, scorer.n, scorer.num_classes)
    rankings = [bootstrap.Ranking.of_pairs(*scorer.top_pairs(members)),
                bootstrap.Ranking.of_pairs(*scorer.top_pairs(members, weights))]
    draws = bootstrap.resample_gaps(rankings, positives, resamples, seed)
    gap_mean, gap_weighted = (r.gap(positives) for r in rankings)
    se = bootstrap.standard_error(draws[:, 1] - draws[:, 0])
    diff = gap_weighted - gap_mean
    return {"keep": bool(diff > z * se and diff > 0), "gap_mean": float(gap_mean),
            "gap_weighted": float(gap_weighted), "diff": float(diff), "se": float(se)}
