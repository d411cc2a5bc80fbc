"""A study's results as files: results.csv/json, PNG plots and report.md with a verdict.

The verdict compares the Table-7 methods at (nearly) equal multiply-adds and says whether
the winner's margin exceeds the spread over seeds; it reports what was measured, whether
or not that agrees with the paper.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path
from typing import Any

from effnet import paper
from effnet.io import atomic_write_text, atomic_write_with
from effnet.scaling import effective_multipliers
from effnet.study.study import SWEEP_KEYS, Point, Study


def aggregate(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """key -> mean/std of test and minival top-1 over seeds, plus cost."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_key.setdefault(r["key"], []).append(r)
    out = {}
    for key, rs in by_key.items():
        test = [r["test_top1"] for r in rs]
        mini = [r["minival_top1"] for r in rs]
        out[key] = dict(
            key=key, n=len(rs), macs=rs[0]["macs"], params=rs[0]["params"],
            resolution=rs[0]["resolution"], test_mean=statistics.fmean(test),
            test_std=statistics.stdev(test) if len(test) > 1 else 0.0,
            minival_mean=statistics.fmean(mini) if None not in mini else None,  # no minival
            train_time_s=sum(r["train_time_s"] or 0.0 for r in rs),
        )  # fmt: skip
    return out


def write_report(
    out: Path, study: Study, points: list[Point], rows: list[dict[str, Any]], final: bool
) -> None:
    """results.csv and results.json always; plots and report.md when ``final``."""
    atomic_write_text(out / "results.csv", to_csv(rows))
    agg = aggregate(rows)
    results = dict(
        study=study.to_dict(), runs=rows, models=list(agg.values()),
        points=[p.to_dict() for p in points],
    )  # fmt: skip
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    if not final:
        return
    figures = plot(out, points, agg)
    atomic_write_text(out / "report.md", render_markdown(study, points, agg, figures))


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


def _line(points: list[Point], group: str, method: str) -> list[Point]:
    return [p for p in points if p.group == group and p.method == method]


def lines_of(points: list[Point], group: str) -> list[str]:
    seen: list[str] = []
    for p in points:
        if p.group == group and p.method not in seen:
            seen.append(p.method)
    return seen


def pct(a: dict[str, Any] | None) -> str:
    if a is None:
        return "not run"
    spread = f" ± {a['test_std']:.2f}" if a["n"] > 1 else ""
    return f"{a['test_mean']:.2f}{spread} (n={a['n']})"


def table7(points: list[Point], agg: dict[str, dict[str, Any]]) -> list[str]:
    t7 = [p for p in points if p.group == "table7"]
    if not t7:
        return []
    target = t7[0].target or 0.0
    out = [
        f"## Table 7 analogue: one method each at ~{target / 1e6:.2f}M multiply-adds",
        "",
        "| method | depth | width | resolution | effective d / w / r | params | multiply-adds "
        "| vs target | test top-1 % (mean ± std) | minival top-1 % | paper (ImageNet) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = next((p for p in t7 if p.method == "baseline"), t7[0])
    for p in t7:
        d, w, r = effective_multipliers(base.arch, p.arch)
        a = agg.get(p.key)
        err = "" if p.method == "baseline" else f"{p.relative_error:+.1%}"
        params = f"{a['params'] / 1e6:.2f}M" if a and a["params"] else "-"
        mini = f"{a['minival_mean']:.2f}" if a and a["minival_mean"] is not None else "-"
        out.append(
            f"| {p.method} | {p.depth:.3g} | {p.width:.3g} | {p.arch.resolution} "
            f"| {d:.2f} / {w:.2f} / {r:.2f} | {params} "
            f"| {p.macs / 1e6:.2f}M | {err} | {pct(a)} | {mini} | {paper.top1_table7(p.method)} |"
        )
    return [*out, "", *verdict(t7, agg), ""]


def verdict(t7: list[Point], agg: dict[str, dict[str, Any]]) -> list[str]:
    """Plain words: who wins at equal multiply-adds, by how much, beyond seed noise or not."""
    scaled = [(p, agg[p.key]) for p in t7 if p.method != "baseline" and p.key in agg]
    if len(scaled) < 2:
        return ["Verdict: fewer than two scaled models finished; nothing to compare yet."]
    scaled.sort(key=lambda pa: -pa[1]["test_mean"])
    (best, a), (second, b) = scaled[0], scaled[1]
    margin = a["test_mean"] - b["test_mean"]
    noise = math.hypot(a["test_std"], b["test_std"])
    lines = [
        f"**Verdict.** At equal multiply-adds, **{best.method}** scaling wins here with "
        f"{a['test_mean']:.2f}% test top-1, {margin:.2f} points ahead of "
        f"{second.method} ({b['test_mean']:.2f}%)."
    ]
    if min(a["n"], b["n"]) < 2:
        lines.append(
            "With one seed per model the seed-to-seed spread is unmeasured, so this margin "
            "may be noise; run more seeds before drawing a conclusion."
        )
    elif margin > noise:
        lines.append(
            f"The margin exceeds the combined seed spread ({noise:.2f} points, "
            f"{a['n']} and {b['n']} seeds)."
        )
    else:
        lines.append(
            f"The margin is within the combined seed spread ({noise:.2f} points, "
            f"{a['n']} and {b['n']} seeds): the two are not distinguishable here."
        )
    compound = next(((p, x) for p, x in scaled if p.method == "compound"), None)
    if compound is not None and best.method != "compound":
        gap = a["test_mean"] - compound[1]["test_mean"]
        lines.append(
            f"Compound scaling is {gap:.2f} points behind the winner; the paper found "
            f"compound best on ImageNet (Table 7: {paper.top1_table7('compound')}% vs "
            f"{max(paper.top1_table7(m) for m in ('depth', 'width', 'resolution'))}% for the "
            "best single dimension)."
        )
    elif compound is not None:
        lines.append("This agrees with the paper's Table 7, where compound scaling is best.")
    base = next((p for p in t7 if p.method == "baseline"), None)
    if base is not None and base.key in agg:
        gains = ", ".join(
            f"{p.method} {(x['test_mean'] - agg[base.key]['test_mean']):+.2f}" for p, x in scaled
        )
        lines.append(f"Gain over the baseline (points): {gains}.")
    return [" ".join(lines)]


def sweep_tables(points: list[Point], agg: dict[str, dict[str, Any]], group: str) -> list[str]:
    title = {"fig3": "Figure 3 analogue: one dimension at a time",
             "fig4": "Figure 4 analogue: width at fixed depth and resolution"}[group]  # fmt: skip
    names = lines_of(points, group)
    if not names:
        return []
    out = [f"## {title}", ""]
    for name in names:
        out += [
            f"**{name}**",
            "",
            "| depth | width | resolution | multiply-adds | test top-1 % |",
            "|---|---|---|---|---|",
        ]
        for p in _line(points, group, name):
            out.append(
                f"| {p.depth:.3g} | {p.width:.3g} | {p.arch.resolution} | "
                f"{p.macs / 1e6:.2f}M | {pct(agg.get(p.key))} |"
            )
        out.append("")
    return out


def render_markdown(
    study: Study, points: list[Point], agg: dict[str, dict[str, Any]], figures: list[str]
) -> str:
    total = sum(a["train_time_s"] for a in agg.values())
    head = [
        f"# Scaling study `{study.name}`",
        "",
        f"Baseline: `{study.baseline}` (phi {study.baseline_phi}, width x{study.baseline_width:g}, "
        f"depth x{study.baseline_depth:g}) at {study.resolution or 'its own'} px; data "
        f"`{json.dumps(study.data)}`; recipe `{study.recipe}` with "
        f"`{json.dumps(study.recipe_overrides)}`; seeds {list(study.seeds)}. "
        f"Training time over all runs: {total / 60:.1f} min.",
        "",
    ]
    body = table7(points, agg) + sweep_tables(points, agg, "fig3")
    body += sweep_tables(points, agg, "fig4")
    pics = [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(head + body + pics) + "\n"


def plot(out: Path, points: list[Point], agg: dict[str, dict[str, Any]]) -> list[str]:
    """fig3.png / fig4.png (top-1 vs multiply-adds, one line per method, seed spread as error
    bars) and table7.png (Figure 8: the budget-matched models). Returns the file names."""
    # matplotlib loads only when a plot is drawn
    import matplotlib

    matplotlib.use("Agg")
    # matplotlib loads only when a plot is drawn
    import matplotlib.pyplot as plt

    written = []
    for group in ("fig3", "fig4", "table7"):
        names = lines_of(points, group)
        if not any(p.key in agg for p in points if p.group == group):
            continue
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for name in names:
            pts = [p for p in _line(points, group, name) if p.key in agg]
            pts.sort(key=lambda p: p.macs)
            xs = [p.macs / 1e6 for p in pts]
            ys = [agg[p.key]["test_mean"] for p in pts]
            es = [agg[p.key]["test_std"] for p in pts]
            style = "o" if group == "table7" else "o-"
            ax.errorbar(xs, ys, yerr=es, fmt=style, capsize=3, label=_label(group, name))
        ax.set_xlabel("multiply-adds (millions)")
        ax.set_ylabel("test top-1 (%)")
        ax.set_title({"fig3": "Scaling one dimension (Fig. 3)",
                      "fig4": "Width at fixed depth/resolution (Fig. 4)",
                      "table7": "Equal multiply-adds (Table 7 / Fig. 8)"}[group])  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        name = f"{group}.png"
        atomic_write_with(out / name, lambda tmp, f=fig: f.savefig(tmp, format="png", dpi=110))
        plt.close(fig)
        written.append(name)
    return written


def _label(group: str, name: str) -> str:
    if group == "fig3" and name in SWEEP_KEYS:
        return f"{name} only"
    return name
