"""Choices that survive validation noise, and a GAP measured on videos that made no choice.

The validation videos are split by a hash of their id (`split_videos`): the search and every choice
below see the *choose* part only; the *report* part scores the chosen plan once, with its bootstrap
standard error and its margin over its best member.

`choose_within_noise` starts from the best-scoring plan and simplifies it one step at a time while
the best plan does not beat the simpler one by more than `z` standard errors of their paired GAP
difference (yt8m_kit.evaluate.bootstrap: both scored on the same resamples of the choose videos).
A step is one member at the next higher precision (int8 -> bfloat16 -> float32; only if the plan
still fits), or one member fewer. So a lower precision stays only where it is needed to fit or wins
beyond the noise, and a member stays only where it helps beyond the noise. z = 0 keeps the
best-scoring plan, as a plain arg-max does.
"""

import hashlib

import numpy as np

from yt8m_kit.ensemble import search
from yt8m_kit.evaluate import bootstrap

# Higher precision first: a step to a lower index is a simplification.
ORDER = ("float32", "bfloat16", "int8")


def id_hash(video_id, salt):
    """A uniform 32-bit hash of an id, independent for each salt (blake2b keyed by the salt: not a CRC,
    whose linearity ties the hashes of equal-length ids under different salts together)."""
    return int.from_bytes(hashlib.blake2b(str(video_id).encode("utf-8"), digest_size=4, person=salt).digest(), "little")


def split_videos(ids, report_fraction):
    """(choose rows, report rows), ascending, from a hash of each id (stable across runs and
    machines, independent of file order). report_fraction 0: every video chooses, none reports."""
    if not 0 <= report_fraction < 1:
        raise ValueError(f"report fraction {report_fraction} must be in [0, 1)")
    cut = int(round(report_fraction * 2**32))
    report = np.array([id_hash(i, b"yt8m-report") < cut for i in ids], bool)
    return np.flatnonzero(~report), np.flatnonzero(report)


def simpler_plans(candidates, members, budget, overhead):
    """[(description, members)]: each one step simpler than `members` and within budget."""
    out = []
    by_run = {}
    for i, c in enumerate(candidates):
        by_run.setdefault(c.run, {})[c.precision] = i
    for m in members:
        c = candidates[m]
        rest = tuple(x for x in members if x != m)
        level = ORDER.index(c.precision) if c.precision in ORDER else 0
        for higher in ORDER[:level][::-1]:  # the next higher precision this run has
            if higher in by_run[c.run]:
                alt = tuple(sorted(rest + (by_run[c.run][higher],)))
                if search.plan_bytes(candidates, alt, overhead) <= budget:
                    out.append((f"{c.run}: {c.precision} -> {higher}", alt))
                break
        if rest:
            out.append((f"{c.run}: dropped", rest))
    return out


def choose_within_noise(candidates, best, scorer, budget, overhead=0, z=2.0,
                        resamples=bootstrap.DEFAULT_RESAMPLES, seed=0):
    """(plan, steps). plan: the simplest plan reached from `best` (see the module doc); steps: every
    simplification tried, [{"change", "gap", "diff", "se", "accepted"}] (diff = best GAP - its GAP)."""
    positives = bootstrap.positives_per_video(scorer.keys, scorer.n, scorer.num_classes)
    weights = bootstrap.resample_weights(scorer.n, resamples, seed)
    rankings = {}

    def ranking(members):
        if members not in rankings:
            rankings[members] = bootstrap.Ranking.of_pairs(*scorer.top_pairs(members))
        return rankings[members]

    current, steps, tried = best, [], set()
    while z > 0:
        options = []
        for change, members in simpler_plans(candidates, current.members, budget, overhead):
            if members not in tried:
                options.append((best.gap - scorer.gap(members), change, members))
        accepted = None
        for diff, change, members in sorted(options, key=lambda o: (o[0], o[2])):  # closest to best first
            tried.add(members)
            se = 0.0
            if diff > 0:
                draws = bootstrap.resample_gaps([ranking(best.members), ranking(members)], positives,
                                                weights=weights)
                se = bootstrap.standard_error(draws[:, 0] - draws[:, 1])
            ok = diff <= z * se
            steps.append({"change": change, "gap": float(best.gap - diff), "diff": float(diff),
                          "se": float(se), "accepted": bool(ok)})
            if ok:
                accepted = search.Plan(members, search.plan_bytes(candidates, members, overhead),
                                       float(best.gap - diff))
                break
        if accepted is None:
            break
        current = accepted
    return current, steps


def report(plan, scorer, candidates, resamples=bootstrap.DEFAULT_RESAMPLES, seed=0, weights=None):
    """The plan scored on other videos: {"videos", "gap", "se", "members": [{run, precision, gap}],
    "best_member", "margin" (plan - best member), "margin_se" (paired)}. weights: the plan's member
    weights, if it has them."""
    positives = bootstrap.positives_per_video(scorer.keys, scorer.n, scorer.num_classes)
    singles = [(scorer.gap((m,)), m) for m in plan.members]
    best_gap, best_member = max(singles)
    rankings = [bootstrap.Ranking.of_pairs(*scorer.top_pairs(plan.members, weights)),
                bootstrap.Ranking.of_pairs(*scorer.top_pairs((best_member,)))]
    draws = bootstrap.resample_gaps(rankings, positives, resamples, seed)
    gap = scorer.gap(plan.members, weights)
    return {"videos": int(scorer.n), "gap": float(gap), "se": bootstrap.standard_error(draws[:, 0]),
            "members": [{"run": candidates[m].run, "precision": candidates[m].precision, "gap": float(g)}
                        for g, m in singles],
            "best_member": candidates[best_member].run, "best_member_gap": float(best_gap),
            "margin": float(gap - best_gap), "margin_se": bootstrap.standard_error(draws[:, 0] - draws[:, 1])}
