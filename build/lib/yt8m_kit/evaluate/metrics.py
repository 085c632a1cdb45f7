"""YouTube-8M metrics, vectorised: GAP@20, Hit@1, PERR and mAP, as the official tools compute them.

GAP@20 (DESIGN section 3): each video's 20 highest-scoring (class, score) pairs are pooled and sorted
by score, descending; GAP = sum_i precision@i * rel_i / M, M = all true (video, label) pairs (labels
that never reach a top 20 still count).

Ties. The official code (google/youtube-8m eval_util.calculate_gap and
average_precision_calculator.AveragePrecisionCalculator, also TF Model Garden's yt8m eval_utils)
orders pairs with equal scores in a fixed pseudo-random way, which changes GAP when a tie mixes true
and false pairs. We reproduce it exactly (as it runs under Python 3):
  1. the pairs are listed class-major, video-minor (top_k_by_class, then flatten);
  2. each (score, actual) tuple is heapq.heappush-ed onto a list, in that order;
  3. the heap list is permuted by random.seed(0); random.sample(range(n), n)  ("_shuffle");
  4. a stable sort by score, descending, gives the ranking.
Step 2 runs heapq (C) over Python ints; step 3 is random.sample redone in numpy (yt8m_kit.evaluate.ranking,
tested equal to it): about 3 s per million pairs on 2 busy cores, so both run only when some tie
really mixes true and false pairs; otherwise any tie order gives the same value. The ranking covers
all videos at once (calculate_gap on the whole matrix), so the result does not depend on batching.
Which classes enter a top k when scores tie at the k-th place, Hit@1's top class and PERR's cut are
decided by the lower class index (np.argmax's rule; the official top-k uses np.argpartition, whose
choice among ties is unspecified).

mAP is computed as the official tools do, from the retained top-k predictions only (per class: that
class's pairs among the videos' top 20, ranked as above; its positives counted over all videos), but
averaged only over classes that have at least one positive (the official mean also averages in the
zeros of classes without positives). Hit@1 and PERR average over every video; a video without labels
scores 0 in both, as in the official code. PERR counts a hit only for a score > 0, as the official.
"""

import numpy as np

from yt8m_kit import NUM_CLASSES, TOP_K
from yt8m_kit.errors import DataError
from yt8m_kit.evaluate.ranking import KEY_BIAS, official_ranking, order_keys


def _check_scores(scores, num_classes=None, what="scores"):
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise DataError(f"{what} must be a 2-D (videos, classes) array", value=scores.shape)
    if num_classes is not None and scores.shape[1] > num_classes:
        raise DataError(f"{what} have {scores.shape[1]} classes, more than num_classes={num_classes}: "
                        "2017 predictions (4716 classes) cannot be scored against 2018 labels")
    scores = scores.astype(np.float32, copy=False)  # ties are judged in the model's float32
    if np.isnan(scores).any():
        row = int(np.argwhere(np.isnan(scores))[0, 0])
        raise DataError(f"{what} contain NaN (first in batch row {row}): check the model's output")
    return scores


def top_k(scores, k=TOP_K):
    """(B, C) scores -> (indices (B, k) int32, values (B, k)), each row by score descending.

    Ties go to the lower class index, both for entering the top k and for the order within it.
    """
    scores = _check_scores(scores)
    b, c = scores.shape
    k = min(int(k), c)
    if k <= 0 or b == 0:
        return np.zeros((b, max(k, 0)), np.int32), np.zeros((b, max(k, 0)), np.float32)
    if k == c:
        cols = np.broadcast_to(np.arange(c, dtype=np.int32), (b, c))
    else:
        kth = np.partition(scores, c - k, axis=1)[:, c - k][:, None]  # (B, 1) k-th largest
        above, equal = scores > kth, scores == kth
        need = k - above.sum(axis=1, keepdims=True)
        take = above | (equal & (np.cumsum(equal, axis=1, dtype=np.int32) <= need))
        cols = np.nonzero(take)[1].reshape(b, k).astype(np.int32)  # class-ascending per row
    values = np.take_along_axis(scores, cols, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")  # stable: ties keep the lower class first
    return np.take_along_axis(cols, order, axis=1), np.take_along_axis(values, order, axis=1)


def ap_of_ranking(rel, num_positives):
    hits = np.cumsum(rel)
    ranks = np.flatnonzero(rel) + 1
    return float(np.sum(hits[rel] / ranks) / num_positives)


def _ap_from_keys(keys, rel, num_positives):
    """AP of pairs in push order (keys from order_keys), with the official tie order."""
    if num_positives <= 0:
        return 0.0
    ranked = np.sort((KEY_BIAS - keys) * 2 + ~rel)  # score descending; in a tie, true pairs first
    desc, r = ranked >> 1, (ranked & 1) == 0
    if np.any((desc[1:] == desc[:-1]) & (r[1:] != r[:-1])):  # a tie mixes true and false pairs
        r = official_ranking(keys, rel)
    return ap_of_ranking(r, num_positives)


def official_ap(values, rel, num_positives):
    """Average precision of (score, is-true) pairs given in push order, ties as the official code.

    num_positives: the recall denominator (true pairs overall, retained or not).
    """
    return _ap_from_keys(order_keys(values), np.asarray(rel, bool), num_positives)


def push_order(videos, classes):
    """The official push order of pairs: class-major, video-minor (top_k_by_class, then flatten)."""
    return np.lexsort((np.asarray(videos, np.int64).ravel(), np.asarray(classes, np.int64).ravel()))


def gap_of_pairs(videos, classes, values, relevant, num_positives):
    """GAP of pooled top-k pairs given in any order: (video row, class, score, is-true) each (P,),
    num_positives the true (video, label) pairs overall. Ties ranked as the official code does, so
    this is the number Evaluator gives for the same top-k pairs (the planner scores plans with it)."""
    order = push_order(videos, classes)
    values = np.asarray(values, np.float32).ravel()[order]
    return _ap_from_keys(order_keys(values), np.asarray(relevant, bool).ravel()[order], num_positives)


def gap(scores, labels, k=TOP_K):
    """GAP@k of a (N, C) score matrix: labels multi-hot (N, C) or a list of N class-index arrays."""
    scores = _check_scores(scores)
    ev = Evaluator(num_classes=scores.shape[1], top_k=k)
    ev.add(scores, labels)
    return ev.result()["gap"]


def _class_aps(cls, keys, rel, positives):
    """Per-class official AP from pairs in push order (cls ascending, then video order) -> (C,)."""
    num_classes = positives.size
    aps = np.zeros(num_classes)
    if cls.size == 0:
        return aps
    # One sort of (class, score descending, true first) composites: 15 + 33 + 1 bits.
    ranked = np.sort((cls << 34) | ((KEY_BIAS - keys) << 1) | ~rel)
    c, desc, r = ranked >> 34, ranked >> 1, (ranked & 1) == 0
    start = np.searchsorted(c, c, side="left")  # first position of each pair's class
    rank = np.arange(c.size) - start + 1
    cum = np.cumsum(r)
    hits = cum - np.where(start > 0, cum[start - 1], 0)
    sums = np.bincount(c, weights=np.where(r, hits / rank, 0.0), minlength=num_classes)
    np.divide(sums, positives, out=aps, where=positives > 0)
    mixed = (desc[1:] == desc[:-1]) & (r[1:] != r[:-1])  # same class and score, true and false
    for klass in np.unique(c[1:][mixed]):  # only those classes need the official tie order
        lo, hi = np.searchsorted(cls, [klass, klass + 1])  # cls is class-major: its pairs, video order
        aps[klass] = ap_of_ranking(official_ranking(keys[lo:hi], rel[lo:hi]), positives[klass])
    return aps


def _sparse_labels(labels, batch_size, num_classes):
    """Multi-hot (B, C') or a list of B int arrays -> sorted unique (rows, cols) int64."""
    if isinstance(labels, np.ndarray) and labels.ndim == 2:
        if labels.shape[0] != batch_size or labels.shape[1] > num_classes:
            raise DataError(f"labels of shape {labels.shape} do not fit {batch_size} videos and "
                            f"{num_classes} classes")
        rows, cols = np.nonzero(labels > 0)
        return rows.astype(np.int64), cols.astype(np.int64)
    labels = [np.asarray(x, dtype=np.int64).reshape(-1) for x in labels]
    if len(labels) != batch_size:
        raise DataError(f"{len(labels)} label lists for {batch_size} videos")
    lengths = np.array([x.size for x in labels], dtype=np.int64)
    cols = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    bad = (cols < 0) | (cols >= num_classes)
    if bad.any():
        row = int(np.repeat(np.arange(batch_size), lengths)[np.argmax(bad)])
        raise DataError(f"label out of range 0..{num_classes - 1} in batch row {row}",
                        value=int(cols[np.argmax(bad)]))
    keys = np.unique(np.repeat(np.arange(batch_size, dtype=np.int64), lengths) * num_classes + cols)
    return keys // num_classes, keys % num_classes


class Evaluator:
    """Accumulates batches and returns {"gap", "hit_at_1", "perr", "map", "videos"}.

    Keeps only each video's top-k (class int16/int32, score float32, hit bool: ~140 bytes a video
    for k=20, so 1.13M videos hold ~160 MB), never the (N, C) scores.
    """

    def __init__(self, num_classes=NUM_CLASSES, top_k=TOP_K):
        self.num_classes, self.top_k = int(num_classes), int(top_k)
        self._idx_dtype = np.int16 if self.num_classes < 2**15 else np.int32
        self._idx, self._val, self._rel = [], [], []
        self._class_positives = np.zeros(self.num_classes, np.int64)
        self._sum_hit1 = self._sum_perr = 0.0
        self.videos = 0

    @property
    def nbytes(self):
        """Bytes of per-video state held (grows with videos x top_k, not with classes)."""
        return sum(a.nbytes for part in (self._idx, self._val, self._rel) for a in part)

    def add(self, scores, labels):
        """scores (B, C) float; labels multi-hot (B, C) or a list of B int arrays of class indices."""
        scores = _check_scores(scores, self.num_classes)
        rows, cols = _sparse_labels(labels, scores.shape[0], self.num_classes)
        num_labels = np.bincount(rows, minlength=scores.shape[0])
        depth = max(self.top_k, int(num_labels.max(initial=0)))  # PERR may look past the top k
        idx, val = top_k(scores, depth)
        self._accumulate(idx, val, rows, cols, num_labels)

    def add_topk(self, indices, values, labels):
        """Already-top-k input (e.g. a CSV): indices (B, k) int, negative = no pair; values (B, k).

        Any order within a row; more than top_k pairs are cut to the top_k best.
        """
        indices = np.asarray(indices, dtype=np.int64)
        values = np.asarray(values, dtype=np.float32)
        if indices.ndim != 2 or indices.shape != values.shape:
            raise DataError(f"indices {indices.shape} and values {values.shape} must be equal 2-D shapes")
        valid = indices >= 0
        if (indices >= self.num_classes).any() or np.isnan(values[valid]).any():
            row = int(np.argwhere((indices >= self.num_classes) | (valid & np.isnan(values)))[0, 0])
            raise DataError(f"class index >= {self.num_classes} or NaN score in batch row {row}")
        b = indices.shape[0]
        order = np.lexsort((indices, -values, ~valid), axis=1)  # pairs first, score desc, class asc
        indices, values = np.take_along_axis(indices, order, 1), np.take_along_axis(values, order, 1)
        indices = np.where(indices >= 0, indices, -1)
        values = np.where(indices >= 0, values, np.float32(0.0))
        ordered = np.sort(indices, axis=1)
        same = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
        if same.any():
            raise DataError(f"batch row {int(np.argwhere(same)[0, 0])} lists the same class twice")
        rows, cols = _sparse_labels(labels, b, self.num_classes)
        self._accumulate(indices, values, rows, cols, np.bincount(rows, minlength=b))

    def _accumulate(self, idx, val, rows, cols, num_labels):
        b, depth = idx.shape
        valid = idx >= 0
        label_keys = rows * self.num_classes + cols  # sorted, unique
        pred_keys = np.arange(b, dtype=np.int64)[:, None] * self.num_classes + idx
        pos = np.minimum(np.searchsorted(label_keys, pred_keys), max(label_keys.size - 1, 0))
        rel = valid & (label_keys[pos] == pred_keys) if label_keys.size else np.zeros_like(valid)
        if depth:
            self._sum_hit1 += float(rel[:, 0].sum())
        within = np.arange(depth)[None, :] < num_labels[:, None]
        hits = (rel & within & (val > 0)).sum(axis=1)
        self._sum_perr += float(np.sum(hits / np.maximum(num_labels, 1)))
        self._class_positives += np.bincount(cols, minlength=self.num_classes)
        keep = min(depth, self.top_k)
        pad = self.top_k - keep  # fewer columns than top_k (few classes, short CSV rows)
        idx = np.pad(idx[:, :keep], ((0, 0), (0, pad)), constant_values=-1)
        self._idx.append(idx.astype(self._idx_dtype))
        self._val.append(np.pad(val[:, :keep], ((0, 0), (0, pad))).astype(np.float32))
        self._rel.append(np.pad(rel[:, :keep], ((0, 0), (0, pad))))
        self.videos += b

    def result(self):
        """The metrics over everything added so far (a read: more batches may follow)."""
        if self.videos == 0:
            raise DataError("no videos were added: nothing to evaluate")
        idx = np.concatenate(self._idx)
        valid = idx >= 0
        cls = idx[valid].astype(np.int64)
        push = push_order(np.nonzero(valid)[0], cls)
        cls = cls[push]  # class-major, video-minor, the official flatten
        keys = order_keys(np.concatenate(self._val)[valid][push])
        rel = np.concatenate(self._rel)[valid][push]
        positives = self._class_positives
        gap = _ap_from_keys(keys, rel, int(positives.sum()))
        aps = _class_aps(cls, keys, rel, positives)
        has_pos = positives > 0
        return {
            "gap": gap,
            "hit_at_1": self._sum_hit1 / self.videos,
            "perr": self._sum_perr / self.videos,
            "map": float(aps[has_pos].mean()) if has_pos.any() else 0.0,
            "videos": int(self.videos),
        }

