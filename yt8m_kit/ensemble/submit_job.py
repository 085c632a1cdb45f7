"""The planning job behind `python submit.py --budget 1GB`: candidates -> search -> artifact.

1. Candidates (yt8m_kit.ensemble.candidates): every run under `runs` (its averaged checkpoint if any,
   else its latest) at each precision, with validation predictions made AT that precision and with
   the repeats and frames inference will use (cached in RUN_DIR/predictions/, reused only if
   checkpoint fingerprint, data, precision, repeats, frames and seed all match) and the exact bytes
   its weights take in the artifact.
2. The validation videos are split by a hash of their id (yt8m_kit.ensemble.noise): the search
   (yt8m_kit.ensemble.search) and the noise rule choose on one part; the other part reports the
   chosen plan's GAP, its standard error and its margin over its best member.
3. The artifact: ensemble.keras (one graph), ensemble.json, model.tgz, plan.json, plan.png, written
   into a temporary directory and swapped with `out` in one step (fileio.atomic_path), so `out` is
   always the old complete set or the new one. ensemble.json, plan.json and the ensemble.json inside
   model.tgz carry the sha256 of ensemble.keras, which inference checks (artifact.check_artifact). The
   on-disk size is checked before the swap; if the container overhead pushed it over, the search
   reruns with that overhead counted.
"""

import dataclasses
import json
import os
import sys
import tarfile
import time

from yt8m_kit.ensemble import noise, weighting
from yt8m_kit.ensemble import search as plan_lib
from yt8m_kit.ensemble.candidates import build_candidates, run_name
from yt8m_kit.ensemble.summary import explain, format_tables, plot_plans
from yt8m_kit.errors import ConfigError
from yt8m_kit import DEFAULT_NUM_SAMPLES, DEFAULT_REPEATS
from yt8m_kit.fileio import atomic_open, atomic_path, sha256_file, write_json

MIB = 2**20  # reports in MiB: the unit --budget reads (fileio.parse_size)
# Container bytes beyond the members' arrays (zip + h5 headers, configs, ensemble.json):
# measured 0.8 KB for one video_logistic member, 17 KB for three tiny frame-level members.
# An over-estimate only costs a few KB of budget; an under-estimate is caught after writing.
BASE_OVERHEAD, MEMBER_OVERHEAD = 16 * 1024, 16 * 1024
SCORE_ALL_PLANS = 1024  # below this many plans, also score those over budget (for plan.png)
ARTIFACT_FILES = ("ensemble.keras", "ensemble.json", "model.tgz", "plan.json", "plan.png")


@dataclasses.dataclass
class SubmitConfig:
    budget: int  # bytes
    valid: str  # labelled validation TFRecord pattern
    runs: str = "checkpoints"
    out: str = "submission"
    precisions: tuple = plan_lib.PRECISIONS
    repeats: int = DEFAULT_REPEATS  # as inference.py, so the plan is scored as it will run
    seed: int = 0
    num_samples: int = DEFAULT_NUM_SAMPLES  # frames per random sub-sample (frame-level members)
    batch_size: int = 32
    max_exhaustive: int = 20000
    pool: int = 64  # classes kept per candidate and video by plan.SubsetGap (see its doc)
    report_fraction: float = 0.5  # validation videos held out from every choice, to report on
    noise_z: float = 2.0  # standard errors a lower precision or an extra member must win by
    fit_weights: bool = False  # try one weight per member (ensemble.weighting), kept only if it wins


def write_artifact(config, chosen, models, out, weights=None):
    """ensemble.keras + ensemble.json + model.tgz into the directory `out`; returns (ensemble.keras
    bytes, model.tgz bytes, sha256 of ensemble.keras).

    Raises ensemble.OverBudget when the upload would exceed the budget.
    """
    from yt8m_kit.ensemble import artifact as ens_lib

    runs_root = os.path.abspath(config.runs)
    specs = [{"run": run_name(c.run), "model": c.model, "overrides": c.overrides,
              "precision": c.precision} for c in chosen]
    members = [dict(s, checkpoint=os.path.relpath(models[c.run][1]["path"], runs_root),
                    fingerprint=models[c.run][1]["fingerprint"]) for s, c in zip(specs, chosen)]
    ensemble = ens_lib.build_ensemble(specs, [models[c.run][0] for c in chosen], weights=weights)
    artifact = os.path.join(out, "ensemble.keras")
    config_bytes = 4096  # ensemble.json beside it (checked below)
    artifact_bytes = ens_lib.save_ensemble(ensemble, artifact, max_bytes=config.budget - config_bytes)
    digest = sha256_file(artifact)
    config_text = json.dumps({"artifact": "ensemble.keras", "sha256": digest, "members": members,
                              "runs": "checkpoint paths are relative to the --runs directory the plan read",
                              "averaging": "mean" if weights is None else {"weights": list(weights)},
                              "load": "yt8m_kit.ensemble.artifact.load_ensemble(path)"},
                             indent=2) + "\n"
    if artifact_bytes + len(config_text) > config.budget:
        raise ens_lib.OverBudget(artifact, artifact_bytes + len(config_text), config.budget - config_bytes)
    with atomic_open(os.path.join(out, "ensemble.json")) as f:
        f.write(config_text)
    with atomic_path(os.path.join(out, "model.tgz")) as tmp:
        with tarfile.open(tmp, "w:gz") as tar:
            for name in ("ensemble.json", "ensemble.keras"):  # the small file first: cheap to check
                tar.add(os.path.join(out, name), arcname=name)
    return artifact_bytes, os.path.getsize(os.path.join(out, "model.tgz")), digest


def run_submit(config, log=None):
    """The whole planning job; returns the plan.json dict. ConfigError when nothing fits."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if not 0 <= config.report_fraction < 1:
        raise ConfigError(f"--report-fraction {config.report_fraction} must be at least 0 and below 1")
    handles = []
    try:
        candidates, scores, indptr, indices, models, ids = build_candidates(config, log, handles)
        if len(indices) == 0:  # every GAP would be 0 and the plan arbitrary: nothing is written
            raise ConfigError(f"--valid {config.valid}: none of its {len(ids)} videos has a label (test records?): "
                              "plans are scored on labelled validation records")
        t0 = time.time()
        choose_rows, report_rows = noise.split_videos(ids, config.report_fraction)
        if choose_rows.size == 0 or (config.report_fraction > 0 and report_rows.size == 0):
            raise ConfigError(f"{len(ids)} validation video(s) cannot be split into a part to choose on and "
                              f"a part to report on: use more videos or --report-fraction 0")
        scorer = plan_lib.SubsetGap(scores, indptr, indices, pool=config.pool, rows=choose_rows)
        reporter = plan_lib.SubsetGap(scores, indptr, indices, pool=config.pool, rows=report_rows) \
            if report_rows.size else None
        halves = None
        if config.fit_weights:
            fit_rows, check_rows = weighting.split_fit_check(ids, choose_rows)
            if fit_rows.size == 0 or check_rows.size == 0:
                raise ConfigError(f"{choose_rows.size} choose video(s) cannot be halved to fit weights and check "
                                  "them: use more validation videos or drop --fit-weights")
            halves = tuple(plan_lib.SubsetGap(scores, indptr, indices, pool=config.pool, rows=r)
                           for r in (fit_rows, check_rows))
        return plan_and_write(config, candidates, scorer, reporter, models, t0, log, halves)
    finally:
        for f in handles:
            f.close()


def _search(config, candidates, scorer, overhead):
    """(best-scoring plan, plans, how) or a ConfigError when nothing fits."""
    best, plans, how = plan_lib.search(candidates, scorer.gap, config.budget, overhead, config.max_exhaustive,
                                       score_all=plan_lib.count_plans(candidates) <= SCORE_ALL_PLANS)
    if best is None:
        smallest = plan_lib.smallest_plan_bytes(candidates, overhead)
        raise ConfigError(
            f"budget {config.budget} bytes ({config.budget / MIB:.3f} MiB): nothing fits; the smallest "
            f"possible ensemble (one member at its smallest precision plus container overhead) takes "
            f"{smallest} bytes ({smallest / MIB:.3f} MiB). Raise --budget to at least that.")
    return best, plans, how


def fitted_weights(config, members, halves):
    """({member: weight} or None, the record for plan.json): weights fitted on one half of the choose
    videos, kept only when they beat the plain mean on the other half beyond the noise."""
    if halves is None or len(members) < 2:
        return None, None
    weights, fit_gap = weighting.fit(members, halves[0])
    decision = weighting.decide(members, weights, halves[1], z=config.noise_z, seed=config.seed)
    record = dict(decision, fit_gap=float(fit_gap), fit_videos=int(halves[0].n), check_videos=int(halves[1].n),
                  weights=[float(weights[m]) for m in members])
    return (weights if decision["keep"] else None), record


def plan_and_write(config, candidates, scorer, reporter, models, t0, log, halves=None):
    """Search, apply the noise rule, write the artifact set as one directory swap, report."""
    from yt8m_kit.ensemble import artifact as ens_lib

    candidates = [dataclasses.replace(c, gap=scorer.gap((i,))) for i, c in enumerate(candidates)]
    runs = len({c.run for c in candidates})
    overhead = BASE_OVERHEAD + MEMBER_OVERHEAD * runs
    with atomic_path(config.out) as out:
        os.makedirs(out)
        for _ in range(3):
            top, plans, how = _search(config, candidates, scorer, overhead)
            best, steps = noise.choose_within_noise(candidates, top, scorer, config.budget, overhead,
                                                    z=config.noise_z, seed=config.seed)
            weights, weights_record = fitted_weights(config, best.members, halves)
            search_s = time.time() - t0  # scoring candidates + search (not the artifact writing)
            chosen = [candidates[m] for m in best.members]
            try:
                artifact_bytes, upload_bytes, digest = write_artifact(
                    config, chosen, models, out, None if weights is None else [weights[m] for m in best.members])
                break
            except ens_lib.OverBudget as e:  # the container overhead was under-estimated: use the measured one
                measured = e.size + (config.budget - e.max_bytes) - sum(c.bytes for c in chosen)
                overhead = max(overhead + 1, measured)
                log(f"{e}: searching again with {overhead} bytes of overhead")
        else:
            raise ConfigError(f"could not fit the artifact under {config.budget} bytes after 3 tries")
        why = explain(candidates, best, scorer.gap, config.budget, overhead)
        heldout = noise.report(best, reporter, candidates, seed=config.seed, weights=weights) \
            if reporter is not None else None
        if heldout is not None:
            heldout["members"] = [dict(m, run=run_name(m["run"])) for m in heldout["members"]]
            heldout["best_member"] = run_name(heldout["best_member"])
        result = {
            "budget_bytes": int(config.budget),
            "total_bytes": int(sum(c.bytes for c in chosen)),
            "validation_gap": float(scorer.gap(best.members, weights)),  # on the choose part: what chose
            "weights": weights_record,  # --fit-weights: the fit, the check, and whether they were kept
            "heldout": heldout,
            "artifact": "ensemble.keras",
            "sha256": digest,
            "artifact_bytes": int(artifact_bytes),
            "upload_bytes": int(upload_bytes),
            "members": [{"run": run_name(c.run), "model": c.model, "precision": c.precision, "bytes": int(c.bytes),
                         "gap": float(c.gap), "why": why[c.run]} for c in chosen],
            "dropped": [{"run": run_name(r), "why": w}
                        for r, w in why.items() if r not in {c.run for c in chosen}],
            "choice": {"videos": int(scorer.n), "noise_z": config.noise_z, "best_scoring_gap": float(top.gap),
                       "best_scoring_plan": [f"{run_name(candidates[m].run)}:{candidates[m].precision}"
                                             for m in top.members],
                       "simplifications": steps},
            "search": {"method": how, "plans_scored": len(plans), "seconds": round(search_s, 3),
                       "overhead_bytes": int(overhead), "valid": config.valid, "runs": config.runs,
                       "repeats": config.repeats, "seed": config.seed, "num_samples": config.num_samples,
                       "report_fraction": config.report_fraction},
        }
        write_json(os.path.join(out, "plan.json"), result)
        plot_plans(os.path.join(out, "plan.png"), plans, best, config.budget)
    print(format_tables(candidates, best, why, config.budget, artifact_bytes, scorer.n, steps, heldout))
    return result
