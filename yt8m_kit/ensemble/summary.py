"""What submit.py shows: the printed tables and plan.png (GAP vs size of every plan scored)."""

from yt8m_kit.ensemble import search as plan_lib
from yt8m_kit.ensemble.candidates import run_name
from yt8m_kit.fileio import atomic_path

MIB = 2**20


def plot_plans(path, plans, best, budget):
    """plan.png: validation GAP vs size of every plan scored, the Pareto front, the budget; returns the
    x range shown (MiB)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([p.bytes / MIB for p in plans], [p.gap for p in plans], s=10, alpha=0.5, label="plans scored")
    front = plan_lib.pareto_front(plans)
    ax.plot([p.bytes / MIB for p in front], [p.gap for p in front], "-o", ms=3, color="C1", label="Pareto front")
    ax.scatter([best.bytes / MIB], [best.gap], marker="*", s=200, color="C2", zorder=3,
               label=f"chosen: GAP {best.gap:.4f}")
    # The axis spans the plans; a budget far beyond them is marked at the edge instead of squeezing
    # every plan against x = 0.
    largest = max(p.bytes for p in plans) / MIB
    right = largest * 1.08 + 1e-3
    label = f"budget {budget / MIB:,.1f} MiB"
    if budget / MIB <= right * 1.5:
        right = max(right, budget / MIB * 1.05)
        ax.axvline(budget / MIB, color="C3", ls="--", label=label)
    else:
        ax.annotate(f"{label} \u2192", xy=(1, 0.02), xycoords="axes fraction", ha="right", va="bottom",
                    color="C3", fontsize=9)
    ax.set_xlim(0, right)
    ax.set_xlabel("size (MiB of weights + container overhead)")
    ax.set_ylabel("validation GAP@20")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return 0.0, right  # the x range shown, in MiB


def format_tables(candidates, plan, why, budget, artifact_bytes=None, videos=None, steps=(), heldout=None):
    """The printed report: the candidate table, each run's fate in `plan` and why, the noise rule's
    steps and the held-out score."""
    width = max([len(run_name(c.run)) for c in candidates] + [3])
    lines = [f"Candidates (validation GAP@20{f' on the {videos} videos that choose' if videos else ''}; "
             "MiB = exact bytes of the stored weights / 2^20)",
             f"{'run':<{width}}  {'model':<20} {'precision':<9} {'MiB':>10} {'GAP':>8}"]
    for c in candidates:
        lines.append(f"{run_name(c.run):<{width}}  {c.model:<20} {c.precision:<9} {c.bytes / MIB:>10.3f} {c.gap:>8.4f}")
    size = sum(candidates[m].bytes for m in plan.members)
    lines += ["", f"Plan: {len(plan.members)} member(s), {size / MIB:.3f} MiB of weights"
              + (f", artifact {artifact_bytes / MIB:.3f} MiB" if artifact_bytes is not None else "")
              + f", budget {budget / MIB:.3f} MiB, validation GAP {plan.gap:.4f}",
              f"{'run':<{width}}  {'choice':<9} why"]
    chosen = {candidates[m].run: candidates[m].precision for m in plan.members}
    for run, text in why.items():
        lines.append(f"{run_name(run):<{width}}  {chosen.get(run, 'dropped'):<9} {text}")
    if steps:
        lines += ["", "Simplifications of the best-scoring plan (kept when it wins by at most z standard errors "
                      "of the paired difference):"]
        for s in steps:
            lines.append(f"  {'kept   ' if s['accepted'] else 'refused'} {s['change']}: GAP {s['gap']:.4f}, "
                         f"{-s['diff']:+.4f} \u00b1 {s['se']:.4f}")
    if heldout is not None:
        lines += ["", f"Held out from every choice ({heldout['videos']} videos): GAP {heldout['gap']:.4f} "
                      f"\u00b1 {heldout['se']:.4f}; best member alone ({heldout['best_member']}) "
                      f"{heldout['best_member_gap']:.4f}; margin {heldout['margin']:+.4f} "
                      f"\u00b1 {heldout['margin_se']:.4f} (paired bootstrap)"]
    return "\n".join(lines)


def explain(candidates, plan, gap_fn, budget, overhead=0):
    """Why each run is in the plan as it is: {run: text}, e.g. 'cast to bfloat16: -1.2 MiB,
    -0.0001 GAP vs float32' or 'dropped: adding it (int8, +3.0 MiB) goes over budget'."""
    mib = 2**20
    why = {}
    chosen = {candidates[m].run: m for m in plan.members}
    for options in plan_lib.run_options(candidates):
        run = candidates[options[0]].run
        if run in chosen:
            m = chosen[run]
            c = candidates[m]
            ref = next((o for o in options if candidates[o].precision == "float32"), None)
            if c.precision == "float32" or ref is None:
                why[run] = f"kept at {c.precision}"
                continue
            alt = tuple(sorted(set(plan.members) - {m} | {ref}))
            alt_size = plan_lib.plan_bytes(candidates, alt, overhead)
            d_gap = plan.gap - gap_fn(alt)
            fit = "fits" if alt_size <= budget else "over budget"
            why[run] = (f"cast to {c.precision}: {-(candidates[ref].bytes - c.bytes) / mib:+.3f} MiB, "
                        f"{d_gap:+.4f} GAP vs float32 (float32 plan {fit})")
            continue
        tries = []
        for o in options:
            alt = tuple(sorted(plan.members + (o,)))
            size = plan_lib.plan_bytes(candidates, alt, overhead)
            tries.append((size <= budget, o, alt, size))
        fitting = [t for t in tries if t[0]]
        if not fitting:
            o, size = min(((t[1], t[3]) for t in tries), key=lambda t: t[1])
            why[run] = (f"dropped: adding it even at {candidates[o].precision} "
                        f"(+{candidates[o].bytes / mib:.3f} MiB) exceeds the budget by {(size - budget) / mib:.3f} MiB")
        else:
            scores = [(gap_fn(alt), o) for _, o, alt, _ in fitting]
            g, o = max(scores)
            why[run] = (f"dropped: adding it at {candidates[o].precision} fits but changes GAP by {g - plan.gap:+.4f}"
                        + (", within the noise: a member stays only where it helps by more than --noise-z standard "
                           "errors of the paired difference" if g > plan.gap else ": it does not help"))
    return why

