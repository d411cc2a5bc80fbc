"""Which Optuna sampler finds the better baseline: TPE, NSGA-II or random, at equal trials.

    .venv/bin/python benchmarks/archsearch_samplers.py \
        benchmarks/results/archsearch-fmnist benchmarks/results/archsearch-fmnist-nsga2 \
        benchmarks/results/archsearch-fmnist-random --trials 60

Reads each search's trials.csv (written by ``effnet search-architecture``) and compares
them over their first N completed trials, in trial order: the best proxy reward after 20,
40 and N trials, the mean reward of the last third (does the sampler keep proposing good
networks?), the best minival top-1 within 10% of the target cost, how many candidates it
spent far from the target (> 1.5x or < 0.5x T), and the size of the accuracy/cost Pareto
front. Writes archsearch-samplers.json and .md into --out (default beside the first
search). One search per sampler: the report states the minival noise (binomial standard
error at the best accuracy) that any difference must exceed.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from pathlib import Path
from typing import Any


def trials(folder: Path) -> list[dict[str, Any]]:
    with open(folder / "trials.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["state"] == "complete"]
    for r in rows:
        for k in ("trial", "reward", "minival_top1", "macs", "macs_over_target"):
            r[k] = float(r[k])
    return sorted(rows, key=lambda r: r["trial"])


def pareto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if not any(
        o["minival_top1"] >= r["minival_top1"] and o["macs"] <= r["macs"]
        and (o["minival_top1"] > r["minival_top1"] or o["macs"] < r["macs"]) for o in rows
    )]  # fmt: skip


def summary(folder: Path, n: int, minival_images: int) -> dict[str, Any]:
    rows = trials(folder)[:n]
    best = json.loads((folder / "best.json").read_text())
    near = [r for r in rows if 0.9 <= r["macs_over_target"] <= 1.1]
    tail = rows[-max(1, len(rows) // 3) :]
    top = max(r["minival_top1"] for r in rows)
    return dict(
        search=str(folder), sampler=best["config"]["sampler"], trials=len(rows),
        best_reward_at={k: round(max(r["reward"] for r in rows[:k]), 4)
                        for k in (20, 40, len(rows)) if k <= len(rows)},
        mean_reward_last_third=round(statistics.fmean(r["reward"] for r in tail), 4),
        se_last_third=round(statistics.stdev(r["reward"] for r in tail) / math.sqrt(len(tail)), 4),
        best_minival_near_target=max((r["minival_top1"] for r in near), default=None),
        near_target=len(near),
        far_from_target=sum(not 0.5 <= r["macs_over_target"] <= 1.5 for r in rows),
        pareto_front=len(pareto(rows)),
        minival_se_points=round(100 * math.sqrt(top / 100 * (1 - top / 100) / minival_images), 2),
        chosen=dict(trial=best["best"]["trial"], macs=best["best"]["macs"],
                    confirmed_top1=best["best"].get("confirmed_top1")),
        wall_minutes=best.get("wall_minutes"),
        candidates_per_minute=best.get("candidates_per_minute"),
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("searches", nargs="+", type=Path, help="search-architecture output folders")
    ap.add_argument("--trials", type=int, default=60, help="first N completed trials of each")
    ap.add_argument("--minival", type=int, default=500, help="minival images (for the noise)")
    ap.add_argument("--out", type=Path, help="folder for the JSON and Markdown")
    args = ap.parse_args()
    rows = [summary(f, args.trials, args.minival) for f in args.searches]
    out = args.out or args.searches[0].parent
    (out / "archsearch-samplers.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        f"# Samplers at {args.trials} completed trials",
        "",
        "| sampler | best reward at 20 / 40 / N | mean reward, last third (± s.e.) | best minival "
        "within 10% of T | trials within 10% of T | > 1.5x or < 0.5x T | Pareto front "
        "| candidates / min |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        at = " / ".join(f"{v:.4f}" for v in r["best_reward_at"].values())
        lines.append(
            f"| {r['sampler']} | {at} "
            f"| {r['mean_reward_last_third']:.4f} ± {r['se_last_third']:.4f} "
            f"| {r['best_minival_near_target']} | {r['near_target']} | {r['far_from_target']} "
            f"| {r['pareto_front']} | {r['candidates_per_minute']} |"
        )
    se = max(r["minival_se_points"] for r in rows)
    lines += ["", f"One search per sampler; one minival top-1 near the best has a binomial "
              f"standard error of about {se} points ({args.minival} images), so best-reward "
              f"differences below about {2 * se / 100:.3f} are noise."]  # fmt: skip
    (out / "archsearch-samplers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
