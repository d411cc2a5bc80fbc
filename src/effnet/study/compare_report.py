"""A baseline comparison's results as files: results.csv/json, compare.png and report.md.

Every baseline is paired with the reference seed by seed at each phi and epoch multiple
(:func:`effnet.study.stats.compare`); the report states the difference, its 95% interval
and the verdict, whichever baseline it favours.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from effnet.io import atomic_write_text, atomic_write_with
from effnet.study import stats
from effnet.study.report import aggregate, at_epoch_multiple, pct
from effnet.study.study import Study
from effnet.study.verdict import by_seed


def family_keys(folder: Path) -> list[dict[str, Any]]:
    """The study's family points (plan.json), in phi order."""
    points = json.loads((folder / "plan.json").read_text())
    return [p for p in points if p["group"] == "family"]


def comparisons(
    cfg: Any, points: dict[str, list[dict[str, Any]]], rows: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Reference minus each other baseline, per phi and epoch multiple, paired by seed."""
    ref = cfg.reference_label
    out = []
    for multiple in cfg.epoch_multiples:
        for i, phi in enumerate(cfg.family):
            a = by_seed(at_epoch_multiple(rows[ref], multiple), points[ref][i]["key"])
            for label in cfg.baselines:
                if label == ref:
                    continue
                b = by_seed(at_epoch_multiple(rows[label], multiple), points[label][i]["key"])
                if not set(a) & set(b):
                    continue
                c = stats.compare(ref, a, label, b)
                out.append(dict(phi=phi, epoch_multiple=multiple, **c.to_dict(),
                                verdict=stats.words(c), sentence=stats.sentence(c)))  # fmt: skip
    return out


def write_comparison_report(
    out: Path, cfg: Any, studies: dict[str, Study], rows: dict[str, list[dict[str, Any]]]
) -> None:
    points = {label: family_keys(out / label) for label in studies}
    comps = comparisons(cfg, points, rows)
    # label -> epoch multiple -> key -> mean/std over the seeds: computed once, used by all
    aggs = {label: {b: aggregate(rows[label], b) for b in cfg.epoch_multiples}
            for label in studies}  # fmt: skip
    models = {label: {f"{b:g}x": a for b, a in per.items()} for label, per in aggs.items()}
    results = dict(
        comparison=cfg.to_dict(), studies={k: s.to_dict() for k, s in studies.items()},
        points=points, models=models, comparisons=comps,
    )  # fmt: skip
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "results.csv", _csv(rows))
    figure = _plot(out, cfg, points, aggs)
    text = render(cfg, studies, points, rows, aggs, comps, figure)
    atomic_write_text(out / "report.md", text)


def _csv(rows: dict[str, list[dict[str, Any]]]) -> str:
    flat = [{"baseline": label, **r} for label, rs in rows.items() for r in rs]
    buf = io.StringIO()
    if flat:
        w = csv.DictWriter(buf, fieldnames=[k for k in flat[0] if k != "curve"],
                           extrasaction="ignore")  # fmt: skip
        w.writeheader()
        w.writerows(flat)
    return buf.getvalue()


def render(
    cfg: Any,
    studies: dict[str, Study],
    points: dict[str, list[dict[str, Any]]],
    rows: dict[str, list[dict[str, Any]]],
    aggs: dict[str, dict[float, dict[str, dict[str, Any]]]],
    comps: list[dict[str, Any]],
    figure: str | None,
) -> str:
    ref = cfg.reference_label
    total = sum(r["train_time_s"] or 0.0 for rs in rows.values() for r in rs)
    lines = [
        f"# Baseline comparison `{cfg.name}`",
        "",
        f"Reference: **{ref}**. Every baseline is trained with the same data "
        f"(`{json.dumps(cfg.data)}`), recipe `{cfg.recipe}` with "
        f"`{json.dumps(cfg.recipe_overrides)}` and seeds {list(cfg.seeds)}, and compound-"
        f"scaled with (alpha, beta, gamma) = {tuple(cfg.coefficients)} at phi "
        f"{', '.join(f'{p:g}' for p in cfg.family)}"
        + (" after its width was fitted to the reference's multiply-adds" if cfg.match_macs else "")
        + f". Training time over all runs: {total / 60:.1f} min.",  # fmt: skip
        "",
        "| baseline | source | width | phi | px | multiply-adds | params "
        + "".join(f"| test top-1 % at {b:g}x epochs " for b in cfg.epoch_multiples)
        + "|",
        "|---|---|---|---|---|---|---" + "|---" * len(cfg.epoch_multiples) + "|",
    ]
    for label, study in studies.items():
        per = list(aggs[label].values())
        for phi, p in zip(cfg.family, points[label], strict=True):
            a0 = per[0].get(p["key"])
            params = f"{a0['params'] / 1e6:.3f}M" if a0 and a0["params"] else "-"
            accs = "".join(f"| {pct(a.get(p['key']))} " for a in per)
            lines.append(
                f"| {label} | `{study.baseline}` | {study.baseline_width:g} | {phi:g} "
                f"| {p['resolution']} | {p['macs'] / 1e6:.3f}M | {params} {accs}|"
            )
    lines += ["", "## Paired by seed against the reference", ""]
    for c in comps:
        lines.append(f"- phi {c['phi']:g}, {c['epoch_multiple']:g}x epochs: {c['sentence']}")
    if not comps:
        lines.append("- nothing to compare yet (no seed finished for two baselines)")
    lines += ["", *ranking_lines(cfg, points, aggs)]
    wins = [c for c in comps if c["t_low"] is not None and c["t_low"] > 0]
    losses = [c for c in comps if c["t_high"] is not None and c["t_high"] < 0]
    lines += [
        "",
        f"**Verdict:** of {len(comps)} paired comparisons, {ref} wins {len(wins)}, loses "
        f"{len(losses)}, and {len(comps) - len(wins) - len(losses)} show no detectable "
        "difference at this scale (95% t-interval over the seeds).",
        "",
    ]
    if figure:
        lines.append(f"![{Path(figure).stem}]({figure})")
    return "\n".join(lines) + "\n"


def ranking_lines(
    cfg: Any,
    points: dict[str, list[dict[str, Any]]],
    aggs: dict[str, dict[float, dict[str, dict[str, Any]]]],
) -> list[str]:
    """The baselines ordered by mean test top-1 at each phi and epoch multiple, and
    whether the longer trainings kept the first one's order."""
    order: dict[tuple[float, float], list[str]] = {}
    for multiple in cfg.epoch_multiples:
        for i, phi in enumerate(cfg.family):
            means = {label: aggs[label][multiple][pts[i]["key"]]["test_mean"]
                     for label, pts in points.items()
                     if pts[i]["key"] in aggs[label][multiple]}  # fmt: skip
            order[(phi, multiple)] = sorted(means, key=lambda k: -means[k])
    out = ["## Ranking by mean test top-1", ""]
    for (phi, multiple), names in order.items():
        out.append(f"- phi {phi:g}, {multiple:g}x epochs: {' > '.join(names)}")
    if len(cfg.epoch_multiples) > 1:
        first = cfg.epoch_multiples[0]
        changed = [(phi, b) for (phi, b), names in order.items()
                   if b != first and names != order.get((phi, first))]  # fmt: skip
        out.append("")
        out.append(
            "The ranking **held** at every longer epoch multiple."
            if not changed
            else "The ranking **changed** with more training at "
            + ", ".join(f"phi {phi:g} ({b:g}x)" for phi, b in changed)
            + "."
        )
    return out


def _plot(
    out: Path,
    cfg: Any,
    points: dict[str, list[dict[str, Any]]],
    aggs: dict[str, dict[float, dict[str, dict[str, Any]]]],
) -> str | None:
    """compare.png: test top-1 against multiply-adds, one line per baseline's family (seed
    spread as error bars; hollow squares at longer epoch multiples)."""
    # matplotlib loads only when a plot is drawn
    import matplotlib

    matplotlib.use("Agg")
    # matplotlib loads only when a plot is drawn
    import matplotlib.pyplot as plt

    if not any(a for per in aggs.values() for a in per.values()):
        return None
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, pts in points.items():
        color = None
        for i, (multiple, agg) in enumerate(aggs[label].items()):
            done = [p for p in pts if p["key"] in agg]
            if not done:
                continue
            line = ax.errorbar(
                [p["macs"] / 1e6 for p in done], [agg[p["key"]]["test_mean"] for p in done],
                yerr=[agg[p["key"]]["test_std"] for p in done], capsize=3, color=color,
                fmt="o-" if i == 0 else "s--", mfc=None if i == 0 else "none",
                label=label if i == 0 else f"{label} ({multiple:g}x epochs)",
            )  # fmt: skip
            color = line[0].get_color()
    ax.set_xlabel("multiply-adds (millions)")
    ax.set_ylabel("test top-1 (%)")
    phis = ", ".join(f"{p:g}" for p in cfg.family)
    ax.set_title(f"Baselines compound-scaled alike (phi {phis})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_with(out / "compare.png", lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return "compare.png"
