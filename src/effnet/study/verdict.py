"""The words of a study's report: who wins at equal multiply-adds, with what certainty, and
whether that held when every Table-7 model trained twice as long.

Every sentence follows from numbers in ``results.csv``: the paired difference between
compound scaling and the best single dimension over seeds (``effnet.study.stats``), the
ranking of the methods at each epoch multiple, and what the study's design can and
cannot show (seeds, multiples, resolutions above the data's own).
"""

from __future__ import annotations

import statistics
from typing import Any

from effnet import paper
from effnet.study import stats
from effnet.study.study import Point

SINGLE = ("depth", "width", "resolution")


def by_seed(rows: list[dict[str, Any]], key: str) -> dict[int, float]:
    return {r["seed"]: r["test_top1"] for r in rows if r["key"] == key}


def ranking(t7: list[Point], rows: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """(method, mean test top-1) of the scaled Table-7 models, best first; a method whose
    network is an earlier method's (rounding made them equal) is ranked once, as "a = b"."""
    out = []
    names: dict[str, str] = {}
    for p in t7:
        values = list(by_seed(rows, p.key).values())
        if p.method == "baseline" or not values:
            continue
        if p.key in names:
            names[p.key] += f" = {p.method}"
            continue
        names[p.key] = p.method
    for p in t7:
        if p.method == names.get(p.key, "").split(" = ")[0]:
            values = list(by_seed(rows, p.key).values())
            out.append((names[p.key], statistics.fmean(values)))
    return sorted(out, key=lambda mv: -mv[1])


def compound_vs_best_single(t7: list[Point], rows: list[dict[str, Any]]) -> stats.Comparison | None:
    """Compound minus the single dimension with the best mean, paired by seed."""
    order = [m.split(" = ")[0] for m, _ in ranking(t7, rows)]
    order = [m for m in order if m in SINGLE]
    comp = next((p for p in t7 if p.method == "compound"), None)
    if comp is None or not order or not by_seed(rows, comp.key):
        return None
    best = next(p for p in t7 if p.method == order[0])
    return stats.compare("compound", by_seed(rows, comp.key), best.method, by_seed(rows, best.key))


def compound_vs_each(t7: list[Point], rows: list[dict[str, Any]]) -> list[stats.Adjusted]:
    """Compound minus depth, width and resolution (those trained), Holm-adjusted over the
    three; empty below two shared seeds."""
    comp = next((p for p in t7 if p.method == "compound"), None)
    if comp is None:
        return []
    comps = []
    for p in t7:
        if p.method in SINGLE:
            a, b = by_seed(rows, comp.key), by_seed(rows, p.key)
            if len(set(a) & set(b)) >= 2:
                comps.append(stats.compare("compound", a, p.method, b))
    return stats.holm(comps) if comps else []


def verdict(t7: list[Point], rows: list[dict[str, Any]]) -> list[str]:
    """The Table-7 paragraph for one epoch multiple."""
    order = ranking(t7, rows)
    if len(order) < 2:
        return ["Verdict: fewer than two scaled models finished; nothing to compare yet."]
    lines = ["Ranking by mean test top-1: " + " > ".join(f"{m} {v:.2f}" for m, v in order) + "."]
    c = compound_vs_best_single(t7, rows)
    if c is not None:
        lines.append(f"**Verdict.** {stats.sentence(c)}")
        if len(c.seeds) < 5:
            lines.append(
                f"With {len(c.seeds)} seed(s) the interval is wide or missing; a verdict "
                "needs 5 or more seeds."
            )
        each = compound_vs_each(t7, rows)
        if each:
            lines.append(
                "Against each single dimension, adjusted for the "
                f"{len(each)} comparisons (Holm): " + " ".join(a.sentence() for a in each)
            )
        else:
            lines.append(
                "The best single dimension is chosen after seeing the results, so the "
                "interval flatters it slightly (a selection effect, not corrected)."
            )
    paper_best = max(paper.top1_table7(m) for m in SINGLE)
    lines.append(
        f"The paper (ImageNet, Table 7): compound {paper.top1_table7('compound')}% vs "
        f"{paper_best}% for the best single dimension."
    )
    return [" ".join(lines)]


def convergence(t7: list[Point], rows_by_multiple: dict[float, list[dict[str, Any]]]) -> list[str]:
    """Did the ranking and the verdict hold at the longer training multiples?"""
    multiples = sorted(rows_by_multiple)
    if len(multiples) < 2:
        return [
            "**Convergence check: not run.** Every model trained at one length; whether the "
            "ranking holds with longer training is unknown (set `epoch_multiples: [1, 2]`)."
        ]
    first = [m for m, _ in ranking(t7, rows_by_multiple[multiples[0]])]
    lines = ["**Convergence check.**"]
    for b in multiples[1:]:
        later = [m for m, _ in ranking(t7, rows_by_multiple[b])]
        if not later:
            lines.append(f"At {b:g}x the epochs: not finished yet.")
            continue
        held = "held" if later == first else "changed"
        c0 = compound_vs_best_single(t7, rows_by_multiple[multiples[0]])
        c1 = compound_vs_best_single(t7, rows_by_multiple[b])
        words = ""
        if c0 is not None and c1 is not None:
            same = stats.words(c0) == stats.words(c1)
            words = (
                f" The verdict {'held' if same else 'changed'}: "
                f"“{stats.words(c0)}” at 1x, “{stats.words(c1)}” at {b:g}x."
            )
        lines.append(
            f"At {b:g}x the epochs the ranking {held} ({' > '.join(later)}; at 1x: "
            f"{' > '.join(first)}).{words}"
        )
    return [" ".join(lines)]


def limits(study: Any, points: list[Point], native: int | None) -> list[str]:
    """What this study's design can and cannot conclude, in plain words."""
    out = []
    base = next((p for p in points if p.method == "baseline"), points[0])
    if native is not None and base.arch.resolution > native:
        out.append(
            f"**Warning:** the baseline runs at {base.arch.resolution} px, above the "
            f"{native} px the images hold: every resolution in this study is upsampled and "
            "adds no detail, unlike the paper's larger photographs. Use a baseline "
            f"resolution below {native} px for a fair resolution axis."
        )
    elif native is not None:
        above = sorted({p.arch.resolution for p in points if p.arch.resolution > native})
        if above:
            out.append(
                f"Resolutions above the images' {native} px ({', '.join(map(str, above))} px) "
                "are upsampled: past that point resolution scaling adds pixels but no detail."
            )
    if len(study.seeds) < 5 or len(study.epoch_multiples) < 2:
        out.append(
            f"**What this run can conclude:** {len(study.seeds)} seed(s) and "
            f"{len(study.epoch_multiples)} epoch multiple(s). It shows the pipeline and "
            "a first ranking; it cannot separate methods closer than the seed-to-seed "
            "spread, nor say whether the ranking survives longer training. A verdict needs "
            "5 or more seeds and the convergence check (see docs/study.md)."
        )
    return out
