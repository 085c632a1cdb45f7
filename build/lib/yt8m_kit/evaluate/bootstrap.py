"""How much a GAP@20 would move on other videos: bootstrap standard errors, paired differences.

A resample draws the N videos again with replacement; a video drawn w times brings its top-k pairs w
times and its true labels w times into GAP's denominator. Several rankings scored on the SAME
resamples give paired draws, whose difference has a much smaller spread than either GAP when the
rankings agree on most videos (two ensembles sharing members, a model and its cast copy).

    rankings = [Ranking(*pairs) for pairs in ...]          # pooled (video, class, score, is-true) pairs
    draws = resample_gaps(rankings, positives, resamples=200, seed=0)   # (resamples, rankings)
    se = draws.std(axis=0, ddof=1); se_diff = (draws[:, 1] - draws[:, 0]).std(ddof=1)

Every ranking is put in the official order once (yt8m_kit.evaluate.metrics, ties as the official code
orders them); a resample only repeats pairs, so copies of one pair sit together and the order of
different pairs is the full sample's. With every video drawn once the value is exactly metrics' GAP.
"""

from dataclasses import dataclass

import numpy as np

from yt8m_kit.evaluate import metrics
from yt8m_kit.evaluate.ranking import KEY_BIAS, official_ranking, order_keys

DEFAULT_RESAMPLES = 200


@dataclass(frozen=True)
class Ranking:
    """Pooled top-k pairs of one set of scores in ranked order: each pair's video row and is-true."""

    videos: np.ndarray  # (P,) int64, ranked
    relevant: np.ndarray  # (P,) bool, ranked

    @classmethod
    def of_pairs(cls, videos, classes, values, relevant):
        """From (video row, class, score, is-true) pairs in any order (e.g. SubsetGap.top_pairs)."""
        order = metrics.push_order(videos, classes)
        videos = np.asarray(videos, np.int64).ravel()[order]
        rel = np.asarray(relevant, bool).ravel()[order]
        keys = order_keys(np.asarray(values, np.float32).ravel()[order])
        desc = KEY_BIAS - keys
        ranked = np.lexsort((~rel, desc))  # score descending; in a tie, true pairs first (as metrics)
        by_rank, rel_ranked = desc[ranked], rel[ranked]
        if not np.any((by_rank[1:] == by_rank[:-1]) & (rel_ranked[1:] != rel_ranked[:-1])):
            return cls(videos[ranked], rel_ranked)
        # A tie mixes true and false pairs: the official permutation decides where the true ones sit.
        # It orders (score, is-true) values only; pairs equal in both are interchangeable, so the true
        # pairs of each score go to that score's true places, and likewise the false ones.
        official = official_ranking(keys, rel)
        places = np.lexsort((~official, by_rank))  # per score: its true places, then its false ones
        out = np.empty_like(videos)
        out[places] = videos[ranked]
        return cls(out, official)

    @classmethod
    def of_scores(cls, scores, positives_keys, k=metrics.TOP_K):
        """From a (N, C) score matrix; positives_keys: sorted row * C + class of the true labels."""
        idx, values = metrics.top_k(scores, k)
        n, c = np.asarray(scores).shape
        rows = np.repeat(np.arange(n, dtype=np.int64), idx.shape[1])
        keys = rows * c + idx.ravel().astype(np.int64)
        pos = np.minimum(np.searchsorted(positives_keys, keys), max(positives_keys.size - 1, 0))
        rel = positives_keys[pos] == keys if positives_keys.size else np.zeros(keys.shape, bool)
        return cls.of_pairs(rows, idx.ravel(), values.ravel(), rel)

    def gap(self, positives, weights=None):
        """GAP with each video counted `weights[v]` times (None: once). positives: (N,) true labels
        per video."""
        if weights is None:
            total = float(np.sum(positives))
            return metrics.ap_of_ranking(self.relevant, total) if total > 0 else 0.0
        rel = np.repeat(self.relevant, weights[self.videos])
        total = float(np.dot(weights, positives))
        return metrics.ap_of_ranking(rel, total) if total > 0 else 0.0


def resample_weights(n, resamples=DEFAULT_RESAMPLES, seed=0):
    """(resamples, n) int64: how often each of n videos is drawn in each resample."""
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(resamples)])


def resample_gaps(rankings, positives, resamples=DEFAULT_RESAMPLES, seed=0, weights=None):
    """(resamples, len(rankings)) GAPs, every ranking scored on the same resamples of the videos."""
    positives = np.asarray(positives, np.float64)
    if weights is None:
        weights = resample_weights(positives.size, resamples, seed)
    return np.array([[r.gap(positives, w) for r in rankings] for w in weights])


def standard_error(draws):
    """Sample standard deviation of bootstrap draws (0.0 for fewer than two)."""
    draws = np.asarray(draws, np.float64)
    return float(draws.std(ddof=1)) if draws.size > 1 else 0.0


def positives_per_video(keys, n, num_classes):
    """(n,) number of true labels of each video from sorted keys row * num_classes + class."""
    return np.bincount(np.asarray(keys, np.int64) // num_classes, minlength=n)[:n]
