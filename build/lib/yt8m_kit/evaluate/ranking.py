"""The official tools' ranking of (score, actual) pairs, ties included (see yt8m_kit.evaluate.metrics).

google/youtube-8m's AveragePrecisionCalculator ranks pairs pushed in a given order this way
(as it runs under Python 3):
  2. each (score, actual) tuple is heapq.heappush-ed onto a list, in that order;
  3. the heap list is permuted by random.seed(0); random.sample(range(n), n)  ("_shuffle");
  4. a stable sort by score, descending, gives the ranking.
(Step 1, the class-major push order, is the caller's.) Step 3 is random.sample redone in numpy
(official_shuffle): the same MT19937 stream, the same rejection sampling, the same pool moves.
Scores enter as int64 keys (order_keys), which order and tie exactly as the float32 scores.
"""

import collections
import functools
import heapq
import random

import numpy as np


KEY_BIAS = 1 << 31  # order_keys lie in (-2^31, 2^31): KEY_BIAS - key is a positive "descending" key


def order_keys(values):
    """float32 -> int64 keys with the same order and the same ties (-0.0 == 0.0)."""
    bits = (np.asarray(values, np.float32) + np.float32(0.0)).view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def official_ranking(keys, rel):
    """rel (bool) in the official ranking of pairs pushed in this order (steps 2-4 of the module doc)."""
    n = keys.size
    heap = []
    # Tuples (score, actual) compare like the ints 2*key + actual; equal ones are interchangeable.
    collections.deque(map(functools.partial(heapq.heappush, heap), (keys * 2 + rel).tolist()), maxlen=0)
    shuffled = np.array(heap, dtype=np.int64)[official_shuffle(n)]
    del heap
    # Stable sort by score descending = sort of the unique (descending key, position) composites.
    ranked = np.sort((KEY_BIAS - (shuffled >> 1)) * n + np.arange(n)) % n
    return (shuffled[ranked] & 1).astype(bool)


def official_shuffle(n, seed=0):
    """random.seed(seed); random.sample(range(n), n), computed with numpy: the same list, faster.

    The same MT19937 stream as Python's random (its state copied), the same rejection sampling as
    Random._randbelow (k = m.bit_length() bits per draw, redraw while >= m) and the same pool moves
    as Random.sample (result[i] = pool[j]; pool[j] = pool[m - 1]), the pool resolved by pointer
    jumping instead of a loop. tests/test_metrics.py checks it against random.sample itself.
    """
    if n < 64:
        return np.array(random.Random(seed).sample(range(n), n), dtype=np.int64)
    state = random.Random(seed).getstate()[1]
    mt = np.random.MT19937()
    mt.state = {"bit_generator": "MT19937",
                "state": {"key": np.array(state[:624], np.uint32), "pos": state[624]}}
    draws = _randbelow_sequence(mt, n)
    return _pool_moves(draws)


def _randbelow_sequence(mt, n):
    """j_i = _randbelow(n - i) for i = 0..n-1 from the raw 32-bit stream of `mt`."""
    out = np.empty(n, np.int64)
    raw, pos, i = np.zeros(0, np.uint64), 0, 0
    while i < n:
        m = n - i
        k = m.bit_length()
        limit = m - (1 << (k - 1)) + 1  # steps left that draw k bits
        size = int(min(limit * 2 + 64, 4 * 2 ** (k / 2) + 64))
        if pos + size > raw.size:
            block = max(size, min(1 << 20, 2 * m + 256))  # ~2 draws per step at worst
            raw, pos = np.concatenate([raw[pos:], mt.random_raw(block)]), 0
        c = (raw[pos:pos + size] >> np.uint64(32 - k)).astype(np.int64)
        accept = c < m  # as if the bound stayed m; it falls by one after each accept
        before = np.cumsum(accept) - accept
        wrong = accept & (c >= m - before)
        stop = int(np.argmax(wrong)) if wrong.any() else size  # first draw truly rejected
        taken = np.flatnonzero(accept[:stop])[:limit]
        if taken.size == limit:
            used = int(taken[-1]) + 1
        else:
            used = min(stop + 1, size)
        out[i:i + taken.size] = c[taken]
        i, pos = i + taken.size, pos + used
    return out


def _pool_moves(draws):
    """The list Random.sample returns for the pool indices `draws` (j_i, i = 0..n-1)."""
    n = draws.size
    steps = np.arange(n, dtype=np.int64)
    grouped = np.sort(draws * n + steps)  # unique composites: grouped by j, steps ascending
    by_j, j_sorted = grouped % n, grouped // n
    same = np.r_[False, j_sorted[1:] == j_sorted[:-1]]
    prev_same = np.full(n, -1, np.int64)  # the last earlier step that drew the same j
    prev_same[by_j[same]] = by_j[np.flatnonzero(same) - 1]
    last = np.full(n, -1, np.int64)  # the last step that drew each pool position
    ends = np.r_[~same[1:], True]
    last[j_sorted[ends]] = by_j[ends]
    tail = n - 1 - steps  # pool[m - 1], the slot step i moves into pool[j_i]
    hit = last[tail]
    hit = np.where(hit < steps, hit, -1)  # an earlier step had already moved a value into it
    root = np.where(hit >= 0, hit, steps)
    while True:  # pointer jumping: follow `hit` back to the step whose tail was never touched
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    moved = tail[root]  # the value step i moves into pool[j_i]
    return np.where(prev_same >= 0, moved[np.maximum(prev_same, 0)], draws)
