"""yt8m_kit.evaluate.metrics against an independent, slow, plain-Python reference of DESIGN section 3."""

import heapq
import random

import numpy as np
import pytest

from yt8m_kit.errors import DataError
from yt8m_kit.evaluate.metrics import Evaluator, official_ap, top_k


# ---- the reference: plain loops, written from DESIGN section 3 and the official tie rule ----------

def ref_top(row, k):
    """Classes of the k best scores; ties to the lower class index."""
    return sorted(range(len(row)), key=lambda c: (-row[c], c))[:k]


def ref_ap(pairs, num_positives):
    """pairs: (score, actual) in push order. Official: heap, random.seed(0) shuffle, stable sort."""
    if num_positives == 0:
        return 0.0
    heap = []
    for pair in pairs:
        heapq.heappush(heap, pair)
    saved = random.getstate()
    random.seed(0)
    perm = random.sample(range(len(heap)), len(heap))
    random.setstate(saved)
    shuffled = [heap[i] for i in perm]
    ranking = sorted(range(len(shuffled)), key=lambda i: shuffled[i][0], reverse=True)
    ap, hits = 0.0, 0
    for rank, i in enumerate(ranking, start=1):
        if shuffled[i][1] > 0:
            hits += 1
            ap += hits / rank / num_positives
    return ap


def ref_metrics(scores, labels, k=20):
    scores = [[float(x) for x in row] for row in scores]
    n, c = len(scores), len(scores[0])
    tops = [set(ref_top(row, k)) for row in scores]
    total = sum(len(lab) for lab in labels)
    pairs = [(scores[v][j], int(j in labels[v])) for j in range(c) for v in range(n) if j in tops[v]]
    hit1 = perr = 0.0
    for v in range(n):
        hit1 += ref_top(scores[v], 1)[0] in labels[v]
        if labels[v]:
            cut = ref_top(scores[v], len(labels[v]))
            perr += sum(1 for j in cut if j in labels[v] and scores[v][j] > 0) / len(labels[v])
    aps = []
    for j in range(c):
        positives = sum(j in lab for lab in labels)
        if positives:
            aps.append(ref_ap([(scores[v][j], int(j in labels[v])) for v in range(n) if j in tops[v]],
                              positives))
    return {"gap": ref_ap(pairs, total), "hit_at_1": hit1 / n, "perr": perr / n,
            "map": sum(aps) / len(aps), "videos": n}


def textbook_gap(scores, labels, k=20):
    """DESIGN section 3 literally (valid when no two pooled scores tie)."""
    pooled = []
    for v, row in enumerate(scores):
        for j in ref_top([float(x) for x in row], k):
            pooled.append((float(row[j]), j in labels[v]))
    pooled.sort(key=lambda p: -p[0])
    total = sum(len(lab) for lab in labels)
    gap, hits = 0.0, 0
    for i, (_, rel) in enumerate(pooled, start=1):
        if rel:
            hits += 1
            gap += hits / i
    return gap / total


def make_case(seed, n=60, c=40, decimals=None, max_labels=4):
    rng = np.random.default_rng(seed)
    scores = rng.random((n, c)).astype(np.float32)
    labels = [set(rng.choice(c, size=rng.integers(0, max_labels + 1), replace=False).tolist())
              for _ in range(n)]
    for v, lab in enumerate(labels):  # informative scores: true labels tend to rank high
        for j in lab:
            scores[v, j] = min(1.0, scores[v, j] + 0.5 * rng.random())
    if decimals is not None:
        scores = np.round(scores, decimals).astype(np.float32)
    return scores, labels


def evaluate(scores, labels, k=20, batch=None, num_classes=None):
    ev = Evaluator(num_classes=num_classes or scores.shape[1], top_k=k)
    batch = batch or len(scores)
    for s in range(0, len(scores), batch):
        ev.add(scores[s:s + batch], [sorted(x) for x in labels[s:s + batch]])
    return ev.result()


def assert_close(got, want):
    assert got["videos"] == want["videos"]
    for key in ("gap", "hit_at_1", "perr", "map"):
        assert got[key] == pytest.approx(want[key], abs=1e-6), key


# ---- tests ---------------------------------------------------------------------------------------

def test_top_k_sorted_with_lower_index_on_ties():
    scores = np.array([[0.1, 0.5, 0.5, 0.9, 0.5, 0.0]], np.float32)
    idx, val = top_k(scores, k=3)
    assert idx.tolist() == [[3, 1, 2]]
    assert val[0].tolist() == pytest.approx([0.9, 0.5, 0.5])
    rng = np.random.default_rng(1)
    many = np.round(rng.random((30, 50)), 1).astype(np.float32)
    idx, val = top_k(many, k=20)
    for row, ids, vals in zip(many, idx, val):
        assert ids.tolist() == ref_top(row.tolist(), 20)
        assert np.all(np.diff(vals) <= 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_scores_match_reference_and_textbook(seed):
    scores, labels = make_case(seed, n=50, c=30)
    got = evaluate(scores, labels, k=20)
    assert_close(got, ref_metrics(scores, labels))
    if len(np.unique(scores)) == scores.size:  # no ties at all: the textbook formula applies
        assert got["gap"] == pytest.approx(textbook_gap(scores, labels), abs=1e-9)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_heavily_tied_scores_match_official_tie_order(seed):
    scores, labels = make_case(seed, n=80, c=30, decimals=1)
    got = evaluate(scores, labels, k=20, batch=7)  # batching must not change anything
    want = ref_metrics(scores, labels)
    assert_close(got, want)
    # The tie order matters here: the best and the worst order of each tie give other values.
    tied = [(float(scores[v, j]), int(j in labels[v])) for j in range(30) for v in range(80)
            if j in ref_top(scores[v].tolist(), 20)]
    total = sum(len(lab) for lab in labels)
    best = ref_ap_sorted(sorted(tied, key=lambda p: (-p[0], -p[1])), total)
    worst = ref_ap_sorted(sorted(tied, key=lambda p: (-p[0], p[1])), total)
    assert worst + 1e-4 < got["gap"] < best - 1e-4


def ref_ap_sorted(ranked, num_positives):
    ap, hits = 0.0, 0
    for rank, (_, rel) in enumerate(ranked, start=1):
        if rel:
            hits += 1
            ap += hits / rank / num_positives
    return ap


def test_labels_that_never_reach_top_k_count_in_denominator():
    rng = np.random.default_rng(5)
    scores = rng.random((20, 30)).astype(np.float32)
    labels = []
    for row in scores:
        worst = np.argsort(row)[:2].tolist()  # outside the top 5
        best = int(np.argmax(row))
        row[best] = 2.0  # every video's best pair ranks above all other pairs
        labels.append({best, *worst})
    got = evaluate(scores, labels, k=5)
    want = ref_metrics(scores, labels, k=5)
    assert_close(got, want)
    assert got["gap"] == pytest.approx(1 / 3, abs=1e-6)  # 20 hits at the top of 60 positives
    assert got["hit_at_1"] == 1.0


def test_map_ignores_classes_without_positives():
    scores = np.zeros((3, 100), np.float32)
    scores[0, 5] = scores[1, 6] = scores[2, 7] = 0.9
    labels = [{5}, {6}, {7}]
    got = evaluate(scores, labels, k=20, num_classes=3862)
    assert got["map"] == pytest.approx(1.0)  # 3859 classes without positives are not averaged in
    assert got["gap"] == pytest.approx(1.0) and got["hit_at_1"] == 1.0 and got["perr"] == 1.0


def test_unlabelled_videos_count_as_zero_in_hit_and_perr():
    scores = np.array([[0.9, 0.1], [0.8, 0.2]], np.float32)
    got = evaluate(scores, [{0}, set()], k=2)
    assert got["hit_at_1"] == 0.5 and got["perr"] == 0.5 and got["videos"] == 2


def test_multi_hot_list_and_topk_inputs_agree():
    scores, labels = make_case(6, n=40, c=30, decimals=2)
    multi_hot = np.zeros(scores.shape, np.float32)
    for v, lab in enumerate(labels):
        multi_hot[v, sorted(lab)] = 1
    a = Evaluator(num_classes=30)
    a.add(scores, multi_hot)
    b = Evaluator(num_classes=30)
    idx, val = top_k(scores, 20)
    shuffle = np.random.default_rng(0).permutation(20)  # add_topk accepts any order within a row
    b.add_topk(idx[:, shuffle], val[:, shuffle], [sorted(x) for x in labels])
    ra, rb = a.result(), b.result()
    for key in ("gap", "map", "hit_at_1"):
        assert ra[key] == pytest.approx(rb[key], abs=1e-12)
    assert_close(ra, ref_metrics(scores, labels))


def test_add_topk_short_rows_and_empty_rows():
    ev = Evaluator(num_classes=10, top_k=20)
    ev.add_topk([[3, 1, -1], [-1, -1, -1]], [[0.9, 0.5, 0.0], [0, 0, 0]], [[1, 3], [2]])
    r = ev.result()
    assert r["videos"] == 2 and r["hit_at_1"] == 0.5
    assert r["gap"] == pytest.approx((1 / 1 + 2 / 2) / 3)  # 2 hits on top, 3 true pairs


def test_memory_stays_top_k_per_video():
    ev = Evaluator(num_classes=3862)
    rng = np.random.default_rng(0)
    for _ in range(3):
        ev.add(rng.random((200, 3862)).astype(np.float32), [[1, 2]] * 200)
    assert ev.videos == 600
    assert ev.nbytes <= 600 * 20 * (2 + 4 + 1)  # never (N, 3862)


def test_official_ap_tie_order_is_not_class_order():
    # Two tied pairs: a true one pushed first and a false one; the official shuffle decides.
    pairs = [(0.5, 1), (0.5, 0), (0.5, 1), (0.5, 0), (0.9, 0)]
    got = official_ap(np.array([p[0] for p in pairs], np.float32), [p[1] for p in pairs], 2)
    assert got == pytest.approx(ref_ap(pairs, 2), abs=1e-12)


def test_bad_inputs_raise_data_errors():
    ev = Evaluator(num_classes=5)
    with pytest.raises(DataError, match="NaN"):
        ev.add(np.array([[np.nan, 0, 0, 0, 0]]), [[0]])
    with pytest.raises(DataError, match="out of range"):
        ev.add(np.zeros((1, 5)), [[7]])
    with pytest.raises(DataError, match="more than num_classes"):
        ev.add(np.zeros((1, 6)), [[1]])
    with pytest.raises(DataError, match="same class twice"):
        ev.add_topk([[1, 1]], [[0.5, 0.4]], [[1]])
    with pytest.raises(DataError, match="nothing to evaluate"):
        ev.result()


@pytest.mark.parametrize("n", [1, 2, 63, 64, 65, 255, 1000, 4097, 8192, 20011, 131072])
def test_fast_shuffle_is_python_random_sample(n):
    from yt8m_kit.evaluate.ranking import official_shuffle

    assert official_shuffle(n).tolist() == random.Random(0).sample(range(n), n)
