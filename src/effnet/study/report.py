"""A study's results as files: results.csv/json, PNG plots and report.md with a verdict.

The verdict compares the Table-7 methods at (nearly) equal multiply-adds and says whether
the winner's margin exceeds the spread over seeds; it reports what was measured, whether
or not that agrees with the paper.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path
from typing import Any

from effnet import paper
from effnet.io import atomic_write_text, atomic_write_with
from effnet.scaling import effective_multipliers
from effnet.study import verdict as words
from effnet.study.data_info import native_resolution
from effnet.study.study import SWEEP_KEYS, Point, Study, baseline_arch


def at_epoch_multiple(rows: list[dict[str, Any]], multiple: float) -> list[dict[str, Any]]:
    return [r for r in rows if epoch_multiple_of(r) == multiple]


def epoch_multiple_of(row: dict[str, Any]) -> float:
    """The row's multiple of the recipe's epochs (``training_budget`` in rows written before
    the rename, still in older journals)."""
    return float(row.get("epoch_multiple", row.get("training_budget", 1.0)))


def aggregate(rows: list[dict[str, Any]], multiple: float = 1.0) -> dict[str, dict[str, Any]]:
    """key -> mean/std of test and minival top-1 over seeds, plus cost (one epoch multiple)."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for r in at_epoch_multiple(rows, multiple):
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
    t7 = [p for p in points if p.group == "table7"]
    results = dict(
        study=study.to_dict(), runs=rows, models=list(agg.values()),
        points=[p.to_dict() for p in points],
        comparisons={
            f"{b:g}x": c.to_dict()
            for b in study.epoch_multiples
            if (c := words.compound_vs_best_single(t7, at_epoch_multiple(rows, b))) is not None
        },
        compound_vs_each={  # Holm-adjusted over the single dimensions
            f"{b:g}x": [a.to_dict() for a in words.compound_vs_each(t7, at_epoch_multiple(rows, b))]
            for b in study.epoch_multiples
        },
    )  # fmt: skip
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    if not final:
        return
    longer = {b: aggregate(rows, b) for b in study.epoch_multiples[1:]}
    figures = plot(out, points, agg, longer) + learning_curves(out, study, points, rows)
    text = render_markdown(study, points, rows, figures, native_resolution(study.data))
    atomic_write_text(out / "report.md", text)


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:  # a learning curve (rows from study workers) is in results.json only
        w = csv.DictWriter(
            buf, fieldnames=[k for k in rows[0] if k != "curve"], extrasaction="ignore"
        )
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


def table7(points: list[Point], rows: list[dict[str, Any]], multiple: float) -> list[str]:
    t7 = [p for p in points if p.group == "table7"]
    if not t7:
        return []
    agg = aggregate(rows, multiple)
    rows = at_epoch_multiple(rows, multiple)
    target = t7[0].target or 0.0
    trained = "the recipe's epochs" if multiple == 1.0 else f"{multiple:g}x the recipe's epochs"
    out = [
        f"## Table 7 analogue: one method each at ~{target / 1e6:.2f}M multiply-adds, {trained}",
        "",
        "| method | depth | width | resolution | effective d / w / r | params | multiply-adds "
        "| vs target | test top-1 % (mean ± std) | minival top-1 % | paper (ImageNet) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = next((p for p in t7 if p.method == "baseline"), t7[0])
    method_of = {p.key: p.method for p in reversed(t7)}  # the first method with each network
    for p in t7:
        d, w, r = effective_multipliers(base.arch, p.arch)
        same = method_of[p.key]
        name = p.method if same == p.method else f"{p.method} (same network as {same})"
        a = agg.get(p.key)
        err = "" if p.method == "baseline" else f"{p.relative_error:+.1%}"
        params = f"{a['params'] / 1e6:.2f}M" if a and a["params"] else "-"
        mini = f"{a['minival_mean']:.2f}" if a and a["minival_mean"] is not None else "-"
        out.append(
            f"| {name} | {p.depth:.3g} | {p.width:.3g} | {p.arch.resolution} "
            f"| {d:.2f} / {w:.2f} / {r:.2f} | {params} "
            f"| {p.macs / 1e6:.2f}M | {err} | {pct(a)} | {mini} | {paper.top1_table7(p.method)} |"
        )
    return [*out, "", *words.verdict(t7, rows), ""]


def family_table(study: Study, points: list[Point], rows: list[dict[str, Any]]) -> list[str]:
    """The compound-scaled family: one row per phi, test top-1 at each epoch multiple."""
    fam = [p for p in points if p.group == "family"]
    if not fam:
        return []
    base = baseline_arch(study)
    aggs = {b: aggregate(rows, b) for b in study.epoch_multiples}
    lengths = " | ".join(f"test top-1 % at {b:g}x epochs" for b in aggs)
    out = [
        "## The compound-scaled family: the baseline x (alpha, beta, gamma)^phi with "
        f"{', '.join(f'{c:g}' for c in study.coefficients)}",
        "",
        f"| phi | nominal d / w / r | effective d / w / r | px | multiply-adds "
        f"| vs (alpha beta^2 gamma^2)^phi x baseline "
        f"| {lengths} |",
        "|---|---|---|---|---|---|" + "---|" * len(aggs),
    ]
    for phi, p in zip(study.family, fam, strict=True):
        d, w, r = effective_multipliers(base, p.arch)
        accs = " | ".join(pct(a.get(p.key)) for a in aggs.values())
        out.append(
            f"| {phi:g} | {p.depth:.3g} / {p.width:.3g} / {p.resolution_mult:.3g} "
            f"| {d:.2f} / {w:.2f} / {r:.2f} | {p.arch.resolution} | {p.macs / 1e6:.3g}M "
            f"| {p.relative_error or 0.0:+.1%} | {accs} |"
        )
    return [*out, ""]


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
    study: Study,
    points: list[Point],
    rows: list[dict[str, Any]],
    figures: list[str],
    native: int | None = None,
) -> str:
    agg = aggregate(rows)
    total = sum(r["train_time_s"] or 0.0 for r in rows)
    recipe = study.training_recipe()
    head = [
        f"# Scaling study `{study.name}`",
        "",
        f"Baseline: `{study.baseline}` (phi {study.baseline_phi}, width x{study.baseline_width:g}, "
        f"depth x{study.baseline_depth:g}) at {study.resolution or 'its own'} px; data "
        f"`{json.dumps(study.data)}`; recipe `{study.recipe}` with "
        f"`{json.dumps(study.recipe_overrides)}`; seeds {list(study.seeds)}; "
        f"{'the family' if study.budget is None and study.family else 'Table 7'} at "
        f"{', '.join(f'{b:g}x' for b in study.epoch_multiples)} the epochs. "
        f"Training time over all runs: {total / 60:.1f} min. Effective multipliers count "
        "the blocks, channels and pixels of each network over the baseline's (after "
        "rounding); nominal ones are what was asked.",
        "",
        f"Augmentation, the same for every arm (drawn in source pixels, its own random "
        f"stream per run): {recipe.augmentation()}. Test numbers: "
        f"{_reported_words(recipe.report_weights)}.",
        "",
        *[line + "\n" for line in words.limits(study, points, native)],
    ]
    t7 = [p for p in points if p.group == "table7"]
    body: list[str] = []
    for b in study.epoch_multiples:
        body += table7(points, rows, b)
    if t7:
        by_multiple = {b: at_epoch_multiple(rows, b) for b in study.epoch_multiples}
        body += [*words.convergence(t7, by_multiple), ""]
    body += family_table(study, points, rows)
    body += sweep_tables(points, agg, "fig3")
    body += sweep_tables(points, agg, "fig4")
    pics = [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(head + body + pics) + "\n"


def _reported_words(report_weights: str) -> str:
    return {
        "final": "the final weights (EMA where the recipe keeps one)",
        "raw": "the final raw weights",
        "best": "the minival-best epoch's weights",
    }[report_weights]


def plot(
    out: Path,
    points: list[Point],
    agg: dict[str, dict[str, Any]],
    longer: dict[float, dict[str, dict[str, Any]]] | None = None,
) -> list[str]:
    """fig3.png / fig4.png (top-1 vs multiply-adds, one line per method, seed spread as error
    bars), table7.png (Figure 8: the budget-matched models) and family.png (the compound
    family), with hollow squares at the ``longer`` epoch multiples. Returns the file names."""
    # matplotlib loads only when a plot is drawn
    import matplotlib

    matplotlib.use("Agg")
    # matplotlib loads only when a plot is drawn
    import matplotlib.pyplot as plt

    written = []
    for group in ("fig3", "fig4", "table7", "family"):
        names = lines_of(points, group)
        if not any(p.key in agg for p in points if p.group == group):
            continue
        fig, ax = plt.subplots(figsize=(6, 4.5))
        drawn: dict[str, str] = {}  # key -> the line that drew it (a shared network: once)
        for name in names:
            pts = [p for p in _line(points, group, name) if p.key in agg]
            if group == "table7":
                pts = [p for p in pts if p.key not in drawn]
                if not pts:
                    continue
                same = [m for p2 in points if p2.group == group and p2.key == pts[0].key
                        for m in [p2.method] if m != name]  # fmt: skip
                label = " = ".join([name, *same])
            else:
                label = _label(group, name)
            for p in pts:
                drawn[p.key] = name
            pts.sort(key=lambda p: p.macs)
            xs = [p.macs / 1e6 for p in pts]
            ys = [agg[p.key]["test_mean"] for p in pts]
            es = [agg[p.key]["test_std"] for p in pts]
            style = "o" if group == "table7" else "o-"
            line = ax.errorbar(xs, ys, yerr=es, fmt=style, capsize=3, label=label)
            longer_too = group in ("table7", "family")
            for b, agg_b in sorted((longer or {}).items()) if longer_too else ():
                done = [p for p in pts if p.key in agg_b]
                ax.errorbar(
                    [p.macs / 1e6 for p in done], [agg_b[p.key]["test_mean"] for p in done],
                    yerr=[agg_b[p.key]["test_std"] for p in done], fmt="s", mfc="none",
                    capsize=3, color=line[0].get_color(), label=f"{label} ({b:g}x epochs)",
                )  # fmt: skip
        ax.set_xlabel("multiply-adds (millions)")
        ax.set_ylabel("test top-1 (%)")
        ax.set_title({"fig3": "Scaling one dimension (Fig. 3)",
                      "fig4": "Width at fixed depth/resolution (Fig. 4)",
                      "table7": "Equal multiply-adds (Table 7 / Fig. 8)",
                      "family": "The compound-scaled family (Fig. 1 / 5)"}[group])  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
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


def curve(run_dir: Path) -> list[tuple[float, float]]:
    """(epoch, minival top-1 of the better of raw and EMA weights) from a run's metrics."""
    path = run_dir / "metrics.jsonl"
    out = []
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        r = json.loads(line) if line.strip() else {}
        tops = [v for k, v in r.items() if k.endswith("minival_top1") and v is not None]
        if r.get("kind") == "epoch" and tops:
            out.append((r["epoch"], max(tops)))
    return out


def learning_curves(
    out: Path, study: Study, points: list[Point], rows: list[dict[str, Any]]
) -> list[str]:
    """curves.png: minival top-1 against epochs for each Table-7 method, the mean over seeds
    with the seeds' range as a band; a dashed line per longer epoch multiple."""
    t7: dict[str, str] = {}
    for p in points:  # a network two methods share is drawn once, under both names
        if p.group == "table7":
            t7[p.key] = f"{t7[p.key]} = {p.method}" if p.key in t7 else p.method
    series: dict[tuple[str, float], list[list[tuple[float, float]]]] = {}
    for r in rows:
        if r["key"] in t7:
            c = curve(out / r["run_dir"]) or [tuple(x) for x in r.get("curve", ())]
            if c:
                series.setdefault((t7[r["key"]], epoch_multiple_of(r)), []).append(c)
    if not series:
        return []
    # matplotlib loads only when a plot is drawn
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colors: dict[str, Any] = {}
    for (method, multiple), runs in sorted(series.items()):
        n = min(len(c) for c in runs)
        xs = [runs[0][i][0] for i in range(n)]
        ys = [[c[i][1] for c in runs] for i in range(n)]
        mean = [statistics.fmean(v) for v in ys]
        style = "-" if multiple == 1.0 else "--"
        label = method if multiple == 1.0 else f"{method} ({multiple:g}x epochs)"
        (line,) = ax.plot(xs, mean, style, color=colors.get(method), label=label)
        colors.setdefault(method, line.get_color())
        if len(runs) > 1:
            ax.fill_between(xs, [min(v) for v in ys], [max(v) for v in ys],
                            color=colors[method], alpha=0.15)  # fmt: skip
    ax.set_xlabel("epoch")
    ax.set_ylabel("minival top-1 (%)")
    ax.set_title("Learning curves of the Table 7 models (band: range over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_with(out / "curves.png", lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return ["curves.png"]
