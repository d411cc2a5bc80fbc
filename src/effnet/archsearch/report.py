"""The architecture search's outputs: trials.csv, best.json, best-arch.json,
next-coefficients.json, pareto.png and report.md, all written atomically."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from effnet.arch import Architecture, render_table
from effnet.archsearch.config import ArchSearchConfig, recipe_of
from effnet.archsearch.objective import iso_accuracy
from effnet.archsearch.space import (
    SearchSpace,
    arch_from_params,
    choice_table,
    reachable_macs,
    space_size,
)
from effnet.io import atomic_write_text, atomic_write_with
from effnet.jobs.trials import counted
from effnet.study.data_info import data_shape
from effnet.study.report import to_csv

TOP = 5  # candidates listed in the report; the first 3 with their Table 1


@dataclass(frozen=True)
class ArchSearchResult:
    folder: Path
    rows: list[dict[str, Any]]  # one per trial that ran (not surplus), best reward first
    best: dict[str, Any] | None  # the chosen row (confirmed reward first, else proxy reward)
    arch: Architecture | None  # the best architecture (also best-arch.json)
    complete: bool  # ``trials`` trials complete


def collect(
    study: Any, confirm_study: Any, space: SearchSpace, target: float
) -> list[dict[str, Any]]:
    """One row per finished trial, best reward first; confirmation results beside them."""
    confirmed = {
        t.user_attrs["source"]: t.user_attrs
        for t in counted(confirm_study)
        if t.state == TrialState.COMPLETE and "source" in t.user_attrs
    }
    rows = []
    for t in counted(study):
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
            continue
        a, c = t.user_attrs, confirmed.get(t.number, {})
        rows.append(dict(
            trial=t.number, state=t.state.name.lower(), reward=a.get("reward"),
            minival_top1=a.get("minival_top1"), test_top1=a.get("test_top1"),
            macs=a.get("macs"), macs_over_target=round(a["macs"] / target, 4)
            if a.get("macs") else None, params=a.get("params"),
            train_time_s=a.get("train_time_s"), epochs=a.get("epochs"),
            confirmed_top1=c.get("minival_top1"), confirmed_reward=c.get("reward"),
            confirmed_epochs=c.get("epochs"), same_as=a.get("same_as"),
            retry_of=a.get("retry_of"), upper_bound=a.get("upper_bound"),
            error=a.get("error"), **{k: t.params.get(k) for k in choice_table(space)},
        ))  # fmt: skip
    rows.sort(key=lambda r: (r["state"] != "complete", -(r["reward"] or 0.0), r["trial"]))
    for i, r in enumerate(rows, start=1):
        r["rank"] = i if r["state"] == "complete" else None
    return rows


def choose_best(rows: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """The best trial and what chose it: the confirmed reward when any confirmation ran."""
    confirmed = [r for r in rows if r["confirmed_reward"] is not None]
    if confirmed:
        best = max(confirmed, key=lambda r: r["confirmed_reward"])
        return best, "confirmed reward (the confirmation runs' minival top-1)"
    done = [r for r in rows if r["state"] == "complete"]
    return (done[0] if done else None), "proxy reward (no confirmation ran)"


def throughput(study: Any) -> tuple[int, float]:
    """(candidates trained, wall minutes from the first start to the last end)."""
    trained = [t for t in counted(study)
               if t.state == TrialState.COMPLETE and "same_as" not in t.user_attrs
               and t.datetime_start and t.datetime_complete]  # fmt: skip
    if not trained:
        return 0, 0.0
    start = min(t.datetime_start for t in trained)
    end = max(t.datetime_complete for t in trained)
    return len(trained), (end - start).total_seconds() / 60


def write_outputs(
    cfg: ArchSearchConfig, space: SearchSpace, study: Any, confirm_study: Any, out: Path
) -> ArchSearchResult:
    assert cfg.target_macs is not None
    rows = collect(study, confirm_study, space, cfg.target_macs)
    best, selected_by = choose_best(rows)
    complete = sum(r["state"] == "complete" for r in rows) >= cfg.trials
    atomic_write_text(out / "trials.csv", to_csv(rows))
    arch = None
    n, minutes = throughput(study)
    if best is not None:
        arch = arch_from_params(space, _choices(space, best), name=f"{cfg.name}-best")
        arch.save(out / "best-arch.json")
        _next_config(cfg, out).save(out / "next-coefficients.json")
        summary = dict(
            best=best, selected_by=selected_by, architecture="best-arch.json",
            complete=complete, trials=cfg.trials, trained=n, wall_minutes=round(minutes, 2),
            candidates_per_minute=round(n / minutes, 3) if minutes else None,
            config=cfg.to_dict(),
        )  # fmt: skip
        atomic_write_text(out / "best.json", json.dumps(summary, indent=2) + "\n")
        plot_pareto(out / "pareto.png", rows, cfg)
    text = render_markdown(cfg, space, rows, best, selected_by, arch, (n, minutes), out)
    atomic_write_text(out / "report.md", text)
    return ArchSearchResult(out, rows, best, arch, complete)


def _choices(space: SearchSpace, row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in choice_table(space)}


def _next_config(cfg: ArchSearchConfig, out: Path) -> Any:
    """Step 1 on the found baseline: the coefficient search with this search's data and
    recipe (the step schedule its pruning needs, as its --quick proxy has), on the quick
    grid (0.1 apart, 22 candidates; ``"step": 0.05`` in the file gives 111)."""
    from effnet.study.coefficients import SearchConfig

    return SearchConfig(
        name=f"{cfg.name}-coefficients",
        baseline=str(out / "best-arch.json"),
        data=dict(cfg.data),
        recipe=cfg.recipe,
        recipe_overrides={**cfg.recipe_overrides, "schedule": "step"},
        step=0.1,
        tolerance=0.1,
        seed=cfg.seed,
    )


def _m(macs: float | None) -> str:
    return f"{macs / 1e6:.3f}M" if macs else "-"


def _f(v: float | None, spec: str) -> str:
    return format(v, spec) if v is not None else "-"


def render_markdown(
    cfg: ArchSearchConfig,
    space: SearchSpace,
    rows: list[dict[str, Any]],
    best: dict[str, Any] | None,
    selected_by: str,
    arch: Architecture | None,
    speed: tuple[int, float],
    out: Path,
) -> str:
    assert cfg.target_macs is not None
    shape = data_shape(cfg.data)
    low, high = reachable_macs(space, shape)
    objective = (
        "ACC(m) x [FLOPS(m)/T]^w with w = 0 at or under T and -1 above (MnasNet's hard "
        "constraint)" if cfg.hard else f"ACC(m) x [FLOPS(m)/T]^w with w = {cfg.w:g}"
    )  # fmt: skip
    states = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail")}
    reused = sum(r["same_as"] is not None for r in rows)
    n, minutes = speed
    rate = (
        f"{n / minutes:.2f} candidates per minute ({n} trained in {minutes:.1f} min of wall "
        "time, all workers together)" if minutes else "-"
    )  # fmt: skip
    epochs = recipe_of(cfg).epochs
    lines = [
        f"# Architecture search `{cfg.name}`",
        "",
        f"Space `{space.name}`: {len(space.stages)} stages, {space_size(space):.3g} "
        f"combinations at {space.resolution} px, from {_m(low)} to {_m(high)} multiply-adds "
        f"({shape[0]} classes, {shape[1]} input channel(s)).",
        f"Objective: {objective}, T = {_m(cfg.target_macs)} multiply-adds, ACC the minival "
        f"top-1 as a fraction. Sampler `{cfg.sampler}` ({cfg.startup_trials} random trials "
        f"first), seed {cfg.seed}.",
        f"Proxy: data `{json.dumps(cfg.data)}`, recipe `{cfg.recipe}` "
        f"`{json.dumps(cfg.recipe_overrides)}`, {epochs:g} epoch(s) per candidate; the best "
        f"{cfg.confirm_top} trained again at {cfg.confirm_epoch_multiple:g}x the epochs.",
        "",
        "## Trials",
        "",
        f"{states['complete']} of {cfg.trials} complete, {states['pruned']} pruned before "
        f"training (no accuracy could beat the best reward at their cost), {states['fail']} "
        f"failed; {reused} sampled choices an earlier trial had trained (its result reused). "
        f"Throughput: {rate}.",
        "",
        "| rank | trial | reward | minival top-1 % | multiply-adds | / T | params "
        "| confirmed top-1 % | confirmed reward |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    done = [r for r in rows if r["state"] == "complete" and r["same_as"] is None]
    for r in done[:TOP]:
        lines.append(
            f"| {r['rank']} | {r['trial']} | {r['reward']:.4f} | {r['minival_top1']:.2f} | "
            f"{_m(r['macs'])} | {r['macs_over_target']:.3f} | {_f(r['params'], ',')} | "
            f"{_f(r['confirmed_top1'], '.2f')} | {_f(r['confirmed_reward'], '.4f')} |"
        )
    lines.append("")
    for r in done[:3]:
        a = arch_from_params(space, _choices(space, r), name=f"{cfg.name}-t{r['trial']}")
        lines += [f"### Trial {r['trial']} (reward {r['reward']:.4f})", "", render_table(a), ""]
    lines += _best_section(best, selected_by, arch, done, out)
    lines += _next_steps(out)
    return "\n".join(lines) + "\n"


def _best_section(
    best: dict[str, Any] | None,
    selected_by: str,
    arch: Architecture | None,
    done: list[dict[str, Any]],
    out: Path,
) -> list[str]:
    if best is None or arch is None:
        return ["## Best architecture", "", "No trial completed yet.", ""]
    proxy_rank = next((i for i, r in enumerate(done, start=1) if r is best), None)
    lines = [
        "## Best architecture",
        "",
        f"Trial {best['trial']}, selected by {selected_by}: minival top-1 "
        f"{best['minival_top1']:.2f}% at {_m(best['macs'])} multiply-adds, reward "
        f"{best['reward']:.4f}" + (f", rank {proxy_rank} on the proxy." if proxy_rank else "."),
        "",
        render_table(arch),
        "",
        f"Saved as `{out / 'best-arch.json'}` (`effnet describe {out / 'best-arch.json'}`).",
        "",
        "![pareto](pareto.png)",
        "",
        "## What these numbers can and cannot show",
        "",
        "Each candidate trained once, with one seed, for the proxy's short schedule: a "
        "ranking between candidates closer than the seed-to-seed spread of one network "
        "(not measured by this search) is not evidence that one is better.",
    ]
    if best["confirmed_reward"] is not None:
        held = "held" if proxy_rank == 1 else "did not hold"
        lines.append(
            f"The longer confirmation runs chose the candidate ranked {proxy_rank} on the "
            f"proxy: the short runs' ranking {held} at the top."
        )
    return [*lines, ""]


def _next_steps(out: Path) -> list[str]:
    arch, cfg = out / "best-arch.json", out / "next-coefficients.json"
    return [
        "## Next steps",
        "",
        "1. Step 1 of compound scaling on the found baseline, with this search's data and "
        f"recipe (`{cfg}` names `{arch}` as its baseline):",
        "",
        f"       effnet search-coefficients {cfg} --out {out}-coefficients",
        "",
        "2. Scale it with the alpha, beta, gamma that search reports (its `best.json`):",
        "",
        f"       effnet scale {arch} --phi 1 --alpha A --beta B --gamma G "
        f"--save {out}/best-phi1.json",
        "",
    ]


def pareto_front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Complete trials no other beats on both minival top-1 and multiply-adds, cheapest first."""
    pts = [r for r in rows if r["state"] == "complete" and r["same_as"] is None]

    def dominated(r: dict[str, Any]) -> bool:
        return any(
            o["minival_top1"] >= r["minival_top1"] and o["macs"] <= r["macs"]
            and (o["minival_top1"] > r["minival_top1"] or o["macs"] < r["macs"])
            for o in pts
        )  # fmt: skip

    return sorted((r for r in pts if not dominated(r)), key=lambda r: r["macs"])


def plot_pareto(path: Path, rows: list[dict[str, Any]], cfg: ArchSearchConfig) -> None:
    """Minival top-1 against multiply-adds for every trained trial, the Pareto front, the
    target and the objective's iso-reward lines (through the best and the median reward)."""
    # matplotlib loads only when a plot is drawn
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    assert cfg.target_macs is not None
    pts = [r for r in rows if r["state"] == "complete" and r["same_as"] is None]
    if not pts:
        return
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.scatter([r["macs"] for r in pts], [r["minival_top1"] for r in pts], s=25,
               color="tab:blue", alpha=0.7, label="trials")  # fmt: skip
    front = pareto_front(rows)
    ax.plot([r["macs"] for r in front], [r["minival_top1"] for r in front], "-o",
            color="tab:red", ms=6, label="Pareto front")  # fmt: skip
    lo = min([r["macs"] for r in pts] + [cfg.target_macs]) * 0.8
    hi = max([r["macs"] for r in pts] + [cfg.target_macs]) * 1.25
    x = np.geomspace(lo, hi, 200)
    rewards = sorted(r["reward"] for r in pts)
    for value, style in ((rewards[-1], "--"), (rewards[len(rewards) // 2], ":")):
        y = [100 * iso_accuracy(value, m, cfg.target_macs, cfg.w, cfg.hard) for m in x]
        ax.plot(x, y, style, color="gray", lw=1, label=f"reward {value:.3f}")
    ax.axvline(cfg.target_macs, color="black", lw=0.8, label="target T")
    confirmed = [r for r in pts if r["confirmed_top1"] is not None]
    if confirmed:
        ax.scatter([r["macs"] for r in confirmed], [r["confirmed_top1"] for r in confirmed],
                   marker="D", facecolors="none", edgecolors="tab:green", s=50,
                   label=f"confirmed ({cfg.confirm_epoch_multiple:g}x epochs)")  # fmt: skip
    tops = [r["minival_top1"] for r in pts] + [r["confirmed_top1"] for r in confirmed]
    ax.set_ylim(min(tops) - 2, max(tops) + 2)
    ax.set_xscale("log")
    ax.set_xlabel("multiply-adds")
    ax.set_ylabel("minival top-1 (%)")
    kind = "hard" if cfg.hard else f"w = {cfg.w:g}"
    ax.set_title(f"{cfg.name}: {len(pts)} trained candidates ({kind})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
