"""Size-budget planning (pure): which members, at which precision, give the best GAP in budget.

A *candidate* is one run at one precision (float32, bfloat16, int8) with its exact stored
bytes and its validation scores. A *plan* picks at most one candidate per run; its score is
the GAP@20 of the plain mean of its members' scores (the paper's averaging), its size the sum
of its members' bytes plus a fixed overhead (container headers, the ensemble's config).

`SubsetGap` scores a plan with the evaluator's GAP (yt8m_kit.evaluate.metrics.gap_of_pairs, the
official tie order) without touching full (N, 3862) matrices: per video it keeps the union of the
candidates' top `pool` classes and each candidate's best score outside it, which bounds what any
class outside can reach; rows where the bound is not met, or where scores tie at the k-th place,
are recomputed from the full rows. Its speed: bench/README.md ("planner").

Search: exhaustive over all (precisions + 1)^runs plans when that is at most
`max_exhaustive` (six runs x three precisions: 4^6 = 4,096), only scoring plans within the
budget. Beyond that, the greedy rule in `greedy_search` (forward selection with precision
changes).
"""

import itertools
from dataclasses import dataclass, field

import numpy as np

from yt8m_kit import TOP_K
from yt8m_kit.ensemble.precision import PRECISIONS  # noqa: F401  (the search's default precisions)
from yt8m_kit.evaluate import metrics


@dataclass(frozen=True)
class Candidate:
    """One run at one precision. `bytes`: exact bytes its weights take in the artifact."""

    run: str
    model: str
    precision: str
    bytes: int
    overrides: dict = field(default_factory=dict, hash=False, compare=False)
    gap: float = float("nan")  # the member alone


@dataclass(frozen=True)
class Plan:
    members: tuple  # candidate indices, sorted, at most one per run
    bytes: int  # sum of members' bytes + overhead
    gap: float


def label_keys(indptr, indices, num_classes):
    """CSR labels -> sorted unique int64 keys row * num_classes + class (for membership tests)."""
    indptr = np.asarray(indptr, np.int64)
    rows = np.repeat(np.arange(indptr.size - 1, dtype=np.int64), np.diff(indptr))
    return np.unique(rows * num_classes + np.asarray(indices, np.int64))


def _is_label(keys, rows, classes, num_classes):
    k = rows.astype(np.int64) * num_classes + classes.astype(np.int64)
    pos = np.minimum(np.searchsorted(keys, k), max(keys.size - 1, 0))
    return (keys[pos] == k) if keys.size else np.zeros(k.shape, bool)


class SubsetGap:
    """Exact GAP@k of the mean of any subset of candidates' score matrices, fast.

    scores: list of C array-likes (N, num_classes) in the same video order: numpy arrays or
    h5py datasets (read in blocks of `block` rows, so memory stays bounded; rows are read
    again only for the rare rows that need the full recomputation). indptr, indices: CSR
    true labels of the N videos. pool: classes kept per candidate and video.

    Per video it keeps the union U of the candidates' top-`pool` classes, each candidate's
    scores on U, and each candidate's best score outside U (its "floor"). For a plan, a class
    outside U scores at most the mean of the members' floors, so if the k-th best mean inside
    U reaches that bound the top k inside U is the true top k; rows where it does not are
    recomputed from the full rows (counted in `fallback_rows`).
    """

    def __init__(self, scores, indptr, indices, k=TOP_K, pool=64, block=1024, rows=None):
        self.full = scores
        total, c = scores[0].shape
        # rows: the videos (ascending indices into the score matrices) this scorer covers; None: all
        self.rows = np.arange(total) if rows is None else np.asarray(rows, np.int64)
        n = self.rows.size
        self.n, self.num_classes, self.k = n, c, min(k, c)
        pool = min(max(pool, self.k), c)
        indptr = np.asarray(indptr, np.int64)
        lengths = np.diff(indptr)[self.rows]
        starts = np.repeat(indptr[self.rows] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        indices = np.asarray(indices)[starts + np.arange(lengths.sum())] if lengths.sum() else np.zeros(0, np.int64)
        self.keys = label_keys(np.concatenate([[0], np.cumsum(lengths)]), indices, c)
        starts = sorted({int(r) // block * block for r in self.rows})  # blocks holding some of the rows
        parts = [self._prepare_rows(scores, a, min(a + block, total), pool) for a in starts]
        width = max(p[0].shape[1] for p in parts)
        pad = [(0, 0), (0, 0), (0, 0)]
        self.classes = np.concatenate([np.pad(p[0], [(0, 0), (0, width - p[0].shape[1])]) for p in parts])
        self.pooled = np.concatenate([np.pad(p[1], pad[:2] + [(0, width - p[1].shape[2])], constant_values=-np.inf)
                                      for p in parts], axis=1)  # (C, N, W); -inf = padding
        self.floors = np.concatenate([p[2] for p in parts], axis=1)  # (C, N)
        valid = np.isfinite(self.pooled[0])
        self.rel = _is_label(self.keys, np.arange(n)[:, None], self.classes, c) & valid  # (N, W)
        self.fallback_rows = 0  # rows recomputed from full scores, over all gap() calls
        self._prefix = None

    def _prepare_rows(self, scores, a, b, pool):
        take = self.rows[(self.rows >= a) & (self.rows < b)] - a
        rows = [np.array(s[a:b], dtype=np.float32)[take] for s in scores]  # C x (B, num_classes), copies
        shapes = {r.shape[1] for r in rows} | {self.num_classes}
        if len(shapes) != 1:
            raise ValueError(f"score matrices differ in their number of classes: {sorted(shapes)}")
        union = np.sort(np.concatenate([np.argpartition(-r, pool - 1, axis=1)[:, :pool] for r in rows], axis=1), 1)
        dup = np.zeros(union.shape, bool)
        dup[:, 1:] = union[:, 1:] == union[:, :-1]
        order = np.argsort(dup, axis=1, kind="stable")  # unique classes first, repeats last
        width = int((~dup).sum(axis=1).max())
        classes = np.take_along_axis(union, order, axis=1)[:, :width]  # (B, W)
        valid = ~np.take_along_axis(dup, order, axis=1)[:, :width]
        pooled, floors = [], []
        for r in rows:
            p = np.take_along_axis(r, classes, axis=1)
            p[~valid] = -np.inf
            pooled.append(p)
            np.put_along_axis(r, classes, -np.inf, axis=1)  # what is left: the classes outside U
            floors.append(r.max(axis=1))
        return classes, np.stack(pooled), np.stack(floors)

    def _sum(self, members):
        """Sum of the members' pooled scores (N, W); the sum of all but the last member is
        cached, so enumerating plans in order (as exhaustive_search does) costs one add each."""
        prefix = tuple(members[:-1])
        if self._prefix is None or self._prefix[0] != prefix:
            total = np.zeros(self.pooled.shape[1:], np.float32)
            for m in prefix:
                total += self.pooled[m]
            self._prefix = (prefix, total)
        return self._prefix[1] + self.pooled[members[-1]]

    def top_pairs(self, members, weights=None):
        """(videos, classes, values, relevant) of the k best classes of every video under the mean
        of `members`' scores, pooled (N*k of each, in no particular order); exact, with ties at the
        k-th place broken as metrics.top_k does (the lower class index enters). weights: {member:
        weight > 0} for a weighted mean instead (the bound below holds for any positive weights)."""
        members = sorted(members)
        if not members:
            raise ValueError("a plan needs at least one member")
        if weights is None:
            coef = np.ones(len(members), np.float32)
            total = self._sum(members)  # (N, W); the sum ranks like the mean: one count for all videos
        else:
            coef = np.array([weights[m] for m in members], np.float32)
            if not np.all(coef > 0):
                raise ValueError(f"member weights must be positive: {weights}")
            total = sum(c * self.pooled[m] for c, m in zip(coef, members))
        scale = float(coef.sum())
        w = total.shape[1]
        kth = np.partition(total, w - self.k, axis=1)[:, w - self.k]  # k-th best per video (N,)
        keep = total >= kth[:, None]  # (N, W): the top k, plus any ties with the k-th
        # Rows recomputed from the full scores: a class outside U might reach the k-th, or a tie at
        # the k-th place needs the evaluator's rule (the lower class index enters).
        bad = (kth <= np.tensordot(coef, self.floors[members], 1)) | (keep.sum(axis=1) > self.k)
        keep[bad] = False
        videos, cols = np.nonzero(keep)
        classes, values, rel = self.classes[videos, cols], total[keep] / scale, self.rel[keep]
        bad = np.flatnonzero(bad)
        if bad.size:
            self.fallback_rows += bad.size
            full = sum(c * np.asarray(self.full[m][self.rows[bad]], dtype=np.float32)
                       for c, m in zip(coef, members)) / scale
            top, top_values = metrics.top_k(full, self.k)
            videos = np.concatenate([videos, np.repeat(bad, self.k)])
            classes = np.concatenate([classes, top.ravel()])
            values = np.concatenate([values, top_values.ravel()])
            rel = np.concatenate([rel, _is_label(self.keys, bad[:, None], top, self.num_classes).ravel()])
        return videos, classes, values, rel

    def gap(self, members, weights=None):
        """GAP@k of the plain (or weighted) mean of `members`, as yt8m_kit.evaluate.metrics scores it."""
        return metrics.gap_of_pairs(*self.top_pairs(members, weights), self.keys.size)


def run_options(candidates):
    """Per run (in first-seen order): the candidate indices available for it."""
    runs = {}
    for i, c in enumerate(candidates):
        runs.setdefault(c.run, []).append(i)
    return list(runs.values())


def plan_bytes(candidates, members, overhead=0):
    return int(overhead + sum(candidates[m].bytes for m in members))


def exhaustive_search(candidates, gap_fn, budget, overhead=0, score_all=False):
    """Score every plan within budget (every plan if score_all, e.g. for the plot).
    Returns the scored plans sorted by GAP (best first); pick the first that fits."""
    plans = []
    for choice in itertools.product(*[[None] + o for o in run_options(candidates)]):
        members = tuple(sorted(m for m in choice if m is not None))
        size = plan_bytes(candidates, members, overhead)
        if members and (score_all or size <= budget):
            plans.append(Plan(members, size, gap_fn(members)))
    return sorted(plans, key=lambda p: (-p.gap, p.bytes, p.members))


def greedy_search(candidates, gap_fn, budget, overhead=0):
    """Forward selection: from the empty plan, repeatedly take the move (add a run at some
    precision, or change one member's precision) that gives the highest GAP within budget;
    stop when no move improves GAP. Returns every plan scored, best first."""
    options = run_options(candidates)
    run_of = {m: r for r, o in enumerate(options) for m in o}
    scored, current, best_gap = {}, (), -1.0
    while True:
        moves = set()
        used = {run_of[m]: m for m in current}
        for r, o in enumerate(options):
            for m in o:
                if r not in used:
                    moves.add(tuple(sorted(current + (m,))))
                elif used[r] != m:
                    moves.add(tuple(sorted(set(current) - {used[r]} | {m})))
        best_move = None
        for members in moves:
            size = plan_bytes(candidates, members, overhead)
            if size > budget:
                continue
            if members not in scored:
                scored[members] = Plan(members, size, gap_fn(members))
            if scored[members].gap > best_gap:
                best_gap, best_move = scored[members].gap, members
        if best_move is None:
            break
        current = best_move
    return sorted(scored.values(), key=lambda p: (-p.gap, p.bytes, p.members))


def count_plans(candidates):
    return int(np.prod([len(o) + 1 for o in run_options(candidates)], dtype=np.float64)) - 1


def search(candidates, gap_fn, budget, overhead=0, max_exhaustive=20000, score_all=False):
    """(best plan within budget or None, every plan scored best first, "exhaustive"|"greedy").

    Exhaustive when count_plans <= max_exhaustive, else greedy_search. score_all: also score
    the plans over budget (exhaustive only; for the size/GAP plot)."""
    if count_plans(candidates) <= max_exhaustive:
        plans, how = exhaustive_search(candidates, gap_fn, budget, overhead, score_all), "exhaustive"
    else:
        plans, how = greedy_search(candidates, gap_fn, budget, overhead), "greedy"
    best = next((p for p in plans if p.bytes <= budget), None)
    return best, plans, how


def smallest_plan_bytes(candidates, overhead=0):
    return plan_bytes(candidates, (min(range(len(candidates)), key=lambda i: candidates[i].bytes),),
                      overhead)


def pareto_front(plans):
    """Plans not beaten by a smaller-or-equal plan with a higher GAP, by increasing size."""
    front, best = [], -np.inf
    for p in sorted(plans, key=lambda p: (p.bytes, -p.gap)):
        if p.gap > best:
            front.append(p)
            best = p.gap
    return front
