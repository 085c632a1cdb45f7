"""The planning job behind `python submit.py --budget 1GB`: candidates -> search -> artifact.

1. Candidates (yt8m_kit.ensemble.candidates): every run under `runs` (its averaged checkpoint if any, else its latest) at
   each precision, with validation predictions made AT that precision (cached in
   RUN_DIR/predictions/, reused only if checkpoint fingerprint, data, precision, repeats and
   seed all match) and the exact bytes its weights take in the artifact.
2. Search (yt8m_kit.ensemble.search) for the best validation GAP within the budget.
3. Output under `out`: ensemble.keras (one graph), ensemble.json, model.tgz, plan.json,
   plan.png; every write atomic. The artifact's on-disk size is checked after writing; if the
   container overhead pushed it over, the search reruns with that overhead counted.
"""

import dataclasses
import json
import os
import sys
import tarfile
import time

from yt8m_kit.ensemble import search as plan_lib
from yt8m_kit.ensemble.candidates import build_candidates
from yt8m_kit.errors import ConfigError
from yt8m_kit.fileio import atomic_open, atomic_path, write_json

MIB = 2**20  # reports in MiB: the unit --budget reads (fileio.parse_size)
# Container bytes beyond the members' arrays (zip + h5 headers, configs, ensemble.json):
# measured 0.8 KB for one video_logistic member, 17 KB for three tiny frame-level members.
# An over-estimate only costs a few KB of budget; an under-estimate is caught after writing.
BASE_OVERHEAD, MEMBER_OVERHEAD = 16 * 1024, 16 * 1024
SCORE_ALL_PLANS = 1024  # below this many plans, also score those over budget (for plan.png)


@dataclasses.dataclass
class SubmitConfig:
    budget: int  # bytes
    valid: str  # labelled validation TFRecord pattern
    runs: str = "checkpoints"
    out: str = "submission"
    precisions: tuple = plan_lib.PRECISIONS
    repeats: int = 1
    seed: int = 0
    num_samples: int = 300  # frames per random sub-sample (frame-level members)
    batch_size: int = 32
    max_exhaustive: int = 20000
    pool: int = 64  # classes kept per candidate and video by plan.SubsetGap (see its doc)


def write_artifact(config, chosen, models):
    """ensemble.keras + ensemble.json + model.tgz; returns (ensemble.keras bytes, model.tgz bytes).

    Raises ensemble.OverBudget, replacing nothing, when the upload would exceed the budget.
    """
    from yt8m_kit.ensemble import artifact as ens_lib

    specs = [{"run": c.run, "model": c.model, "overrides": c.overrides, "precision": c.precision}
             for c in chosen]
    members = [dict(s, checkpoint=models[s["run"]][1]["path"], fingerprint=models[s["run"]][1]["fingerprint"])
               for s in specs]
    config_text = json.dumps({"artifact": "ensemble.keras", "members": members, "averaging": "mean",
                              "load": "yt8m_kit.ensemble.artifact.load_ensemble(path)"}, indent=2) + "\n"
    ensemble = ens_lib.build_ensemble(specs, [models[c.run][0] for c in chosen])
    artifact = os.path.join(config.out, "ensemble.keras")
    # The upload (ensemble.keras + ensemble.json, uncompressed) must fit, so check before renaming.
    artifact_bytes = ens_lib.save_ensemble(ensemble, artifact, max_bytes=config.budget - len(config_text))
    with atomic_open(os.path.join(config.out, "ensemble.json")) as f:
        f.write(config_text)
    names = ["ensemble.keras", "ensemble.json"]
    with atomic_path(os.path.join(config.out, "model.tgz")) as tmp:
        with tarfile.open(tmp, "w:gz") as tar:
            for name in names:
                tar.add(os.path.join(config.out, name), arcname=name)
    return artifact_bytes, os.path.getsize(os.path.join(config.out, "model.tgz"))  # what gets uploaded


def run_submit(config, log=None):
    """The whole planning job; returns the plan.json dict. ConfigError when nothing fits."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    handles = []
    try:
        candidates, scores, indptr, indices, models = build_candidates(config, log, handles)
        t0 = time.time()
        scorer = plan_lib.SubsetGap(scores, indptr, indices, pool=config.pool)
        return plan_and_write(config, candidates, scorer, models, t0, log)
    finally:
        for f in handles:
            f.close()


def plan_and_write(config, candidates, scorer, models, t0, log):
    """Search, write the artifact (retrying if its overhead was under-estimated), report."""
    from yt8m_kit.ensemble import artifact as ens_lib

    candidates = [dataclasses.replace(c, gap=scorer.gap((i,))) for i, c in enumerate(candidates)]
    runs = len({c.run for c in candidates})
    overhead = BASE_OVERHEAD + MEMBER_OVERHEAD * runs
    for _ in range(3):
        smallest = plan_lib.smallest_plan_bytes(candidates, overhead)
        best, plans, how = plan_lib.search(candidates, scorer.gap, config.budget, overhead, config.max_exhaustive,
                                           score_all=plan_lib.count_plans(candidates) <= SCORE_ALL_PLANS)
        search_s = time.time() - t0  # scoring candidates + search (not the artifact writing)
        if best is None:
            raise ConfigError(
                f"budget {config.budget} bytes ({config.budget / MIB:.3f} MiB): nothing fits; the smallest "
                f"possible ensemble (one member at its smallest precision plus container overhead) takes "
                f"{smallest} bytes ({smallest / MIB:.3f} MiB). Raise --budget to at least that.")
        chosen = [candidates[m] for m in best.members]
        try:
            artifact_bytes, upload_bytes = write_artifact(config, chosen, models)
            break
        except ens_lib.OverBudget as e:  # the container overhead was under-estimated: use the measured one
            measured = e.size + (config.budget - e.max_bytes) - sum(c.bytes for c in chosen)
            overhead = max(overhead + 1, measured)
            log(f"{e}: searching again with {overhead} bytes of overhead")
    else:
        raise ConfigError(f"could not fit the artifact under {config.budget} bytes after 3 tries")
    why = plan_lib.explain(candidates, best, scorer.gap, config.budget, overhead)
    result = {
        "budget_bytes": int(config.budget),
        "total_bytes": int(sum(c.bytes for c in chosen)),
        "validation_gap": float(best.gap),
        "artifact": "ensemble.keras",
        "artifact_bytes": int(artifact_bytes),
        "upload_bytes": int(upload_bytes),
        "members": [{"run": c.run, "model": c.model, "precision": c.precision, "bytes": int(c.bytes),
                     "gap": float(c.gap), "why": why[c.run]} for c in chosen],
        "dropped": [{"run": r, "why": w} for r, w in why.items() if r not in {c.run for c in chosen}],
        "search": {"method": how, "plans_scored": len(plans), "seconds": round(search_s, 3),
                   "overhead_bytes": int(overhead), "valid": config.valid, "repeats": config.repeats,
                   "seed": config.seed, "num_samples": config.num_samples,
                   "videos": int(scorer.n)},
    }
    write_json(os.path.join(config.out, "plan.json"), result)
    plot_plans(os.path.join(config.out, "plan.png"), plans, best, config.budget)
    print(format_tables(candidates, best, why, config.budget, artifact_bytes, scorer.n))
    return result


def plot_plans(path, plans, best, budget):
    """plan.png: validation GAP vs size of every plan scored, the Pareto front, the budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([p.bytes / MIB for p in plans], [p.gap for p in plans], s=10, alpha=0.5, label="plans scored")
    front = plan_lib.pareto_front(plans)
    ax.plot([p.bytes / MIB for p in front], [p.gap for p in front], "-o", ms=3, color="C1", label="Pareto front")
    ax.axvline(budget / MIB, color="C3", ls="--", label=f"budget {budget / MIB:.1f} MiB")
    ax.scatter([best.bytes / MIB], [best.gap], marker="*", s=200, color="C2", zorder=3,
               label=f"chosen: GAP {best.gap:.4f}")
    ax.set_xlabel("size (MiB of weights + container overhead)")
    ax.set_ylabel("validation GAP@20")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def format_tables(candidates, plan, why, budget, artifact_bytes=None, videos=None):
    """The printed report: the candidate table, then each run's fate in `plan` and why."""
    width = max([len(c.run) for c in candidates] + [3])
    lines = [f"Candidates (validation GAP@20{f' on {videos} videos' if videos else ''}; "
             "MiB = exact bytes of the stored weights / 2^20)",
             f"{'run':<{width}}  {'model':<20} {'precision':<9} {'MiB':>10} {'GAP':>8}"]
    for c in candidates:
        lines.append(f"{c.run:<{width}}  {c.model:<20} {c.precision:<9} {c.bytes / MIB:>10.3f} {c.gap:>8.4f}")
    size = sum(candidates[m].bytes for m in plan.members)
    lines += ["", f"Plan: {len(plan.members)} member(s), {size / MIB:.3f} MiB of weights"
              + (f", artifact {artifact_bytes / MIB:.3f} MiB" if artifact_bytes is not None else "")
              + f", budget {budget / MIB:.3f} MiB, validation GAP {plan.gap:.4f}",
              f"{'run':<{width}}  {'choice':<9} why"]
    chosen = {candidates[m].run: candidates[m].precision for m in plan.members}
    for run, text in why.items():
        lines.append(f"{run:<{width}}  {chosen.get(run, 'dropped'):<9} {text}")
    return "\n".join(lines)
