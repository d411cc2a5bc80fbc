"""The coefficient search's outputs: grid.csv, grid.md, grid.png, best.json and the implied
family (phi = 1..7) as architecture JSON files ``effnet describe`` accepts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from effnet.io import atomic_write_text, atomic_write_with
from effnet.registry import get_arch
from effnet.scaling import constraint, scale_phi
from effnet.study.coefficients import PAPER, SearchConfig, candidate_id, parse_candidate
from effnet.study.report import to_csv
from effnet.study.search_workers import candidate_of, grid_order


@dataclass(frozen=True)
class SearchResult:
    folder: Path
    rows: list[dict[str, Any]]  # one per candidate, best first
    best: dict[str, Any] | None
    complete: bool  # every candidate evaluated (or given up after max_retries)


def collect(study: Any) -> list[dict[str, Any]]:
    """One row per candidate from its counted trial (complete or pruned), best first."""

    seed = SearchConfig.from_json(study.user_attrs["config"]).seed
    grid = grid_order(list(study.user_attrs["candidates"]), seed)
    rows: dict[str, dict[str, Any]] = {}
    failed: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        cid = candidate_of(t, grid)
        if cid is None:
            continue
        if t.state == TrialState.FAIL:
            failed[cid] = failed.get(cid, 0) + 1
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED) or cid in rows:
            continue
        a, b, g = parse_candidate(cid)
        inter = t.intermediate_values
        value = t.value if t.state == TrialState.COMPLETE else inter[max(inter)] if inter else None
        rows[cid] = dict(
            candidate=cid, alpha=a, beta=b, gamma=g, constraint=round(constraint(a, b, g), 4),
            state=t.state.name.lower(), minival_top1=value,
            test_top1=t.user_attrs.get("test_top1"), epochs=t.user_attrs.get("epochs"),
            params=t.user_attrs.get("params"), macs=t.user_attrs.get("macs"),
            resolution=t.user_attrs.get("resolution"),
            train_time_s=t.user_attrs.get("train_time_s"), trial=t.number,
            phi=t.user_attrs.get("phi"), cost_ratio=t.user_attrs.get("cost_ratio"),
            network=t.user_attrs.get("network"),
        )  # fmt: skip
    for cid, r in rows.items():
        r["failed_attempts"] = failed.get(cid, 0)
    order = sorted(
        rows.values(),
        key=lambda r: (r["state"] != "complete", -(r["minival_top1"] or 0.0)),
    )
    first: dict[str, str] = {}
    for i, r in enumerate(order, start=1):
        r["rank"] = i
        network = r.pop("network")  # candidates that round to one network say so
        r["same_network_as"] = first.setdefault(network, r["candidate"]) if network else None
        if r["same_network_as"] == r["candidate"]:
            r["same_network_as"] = None
    return order


def write_outputs(cfg: SearchConfig, study: Any, out: Path) -> SearchResult:
    """grid.csv, grid.md, grid.png, best.json and family/<baseline>-phi{1..7}.json."""

    rows = collect(study)
    n_grid = len(study.user_attrs["candidates"])
    complete = [r for r in rows if r["state"] == "complete"]
    best = complete[0] if complete else None
    atomic_write_text(out / "grid.csv", to_csv(rows))
    if best is not None:
        coef = (best["alpha"], best["beta"], best["gamma"])
        base = get_arch(cfg.baseline)
        family = []
        for phi in range(1, 8):
            arch = scale_phi(base, phi, *coef).replace(name=f"{base.name}-search-phi{phi}")
            path = out / "family" / f"{base.name}-search-phi{phi}.json"
            arch.save(path)
            family.append(str(path.relative_to(out)))
        summary = dict(best=best, paper=dict(zip(("alpha", "beta", "gamma"), PAPER)),
                       family=family, evaluated=len(rows), grid=n_grid,
                       config=cfg.to_dict())  # fmt: skip
        atomic_write_text(out / "best.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / "grid.md", render_markdown(cfg, rows, n_grid))
    if rows:
        plot_grid(out / "grid.png", rows)
    return SearchResult(out, rows, best, len(rows) == n_grid)


def render_markdown(cfg: SearchConfig, rows: list[dict[str, Any]], n_grid: int) -> str:
    paper = candidate_id(*PAPER)
    lines = [
        f"# alpha, beta, gamma grid search `{cfg.name}`",
        "",
        f"Proxy: `{cfg.baseline}` (phi {cfg.baseline_phi}, width x{cfg.baseline_width:g}, "
        f"depth x{cfg.baseline_depth:g}) at {cfg.resolution or 'its own'} px, each candidate "
        f"scaled by phi = {cfg.phi:g}; grid step {cfg.step:g}, |alpha*beta^2*gamma^2 - 2| <= "
        f"{cfg.tolerance:g}: {n_grid} candidates, {len(rows)} evaluated. Data "
        f"`{json.dumps(cfg.data)}`, recipe `{cfg.recipe}` `{json.dumps(cfg.recipe_overrides)}`.",
        "",
        COST_WORDS[cfg.cost].format(phi=cfg.phi, target=2.0**cfg.phi),
        "",
    ]
    done = [r for r in rows if r["state"] == "complete"]  # best first
    if done:
        b = done[0]
        lines.append(
            f"**Best:** alpha = {b['alpha']:g}, beta = {b['beta']:g}, gamma = {b['gamma']:g} "
            f"(minival top-1 {b['minival_top1']:.2f}%); the paper found alpha = {PAPER[0]:g}, "
            f"beta = {PAPER[1]:g}, gamma = {PAPER[2]:g} on ImageNet."
        )
        p = next((r for r in rows if r["candidate"] == paper), None)
        if p is not None and p["minival_top1"] is not None:
            lines.append(
                f"The paper's coefficients rank {p['rank']} of {len(rows)} here "
                f"({p['minival_top1']:.2f}%, {p['state']})."
            )
        lines.append("")
    lines += [
        "| rank | alpha | beta | gamma | a*b^2*g^2 | phi | resolution | multiply-adds "
        "| cost / target | minival top-1 % | test top-1 % | state | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mv = f"{r['minival_top1']:.2f}" if r["minival_top1"] is not None else "-"
        te = f"{r['test_top1']:.2f}" if r["test_top1"] is not None else "-"
        macs = f"{r['macs'] / 1e6:.2f}M" if r["macs"] else "-"
        secs = f"{r['train_time_s']:.0f}" if r["train_time_s"] else "-"
        phi = f"{r['phi']:g}" if r.get("phi") is not None else "-"
        ratio = f"{r['cost_ratio']:.3f}" if r.get("cost_ratio") is not None else "-"
        state = r["state"] + (f" (same network as {r['same_network_as']})"
                              if r.get("same_network_as") else "")  # fmt: skip
        lines.append(
            f"| {r['rank']} | {r['alpha']:g} | {r['beta']:g} | {r['gamma']:g} | "
            f"{r['constraint']:.3f} | {phi} | {r['resolution'] or '-'} | {macs} | {ratio} | "
            f"{mv} | {te} | {state} | {secs} |"
        )
    return "\n".join(lines) + "\n\n![grid](grid.png)\n"


COST_WORDS = {
    "measured": "Candidates at equal measured cost: each candidate's phi is refitted so its "
    "counted multiply-adds are the nearest its rounding allows to {target:g}x the baseline's "
    "(2^{phi:g}); `phi` and `cost / target` say where each landed.",
    "nominal": "Candidates at nominal cost: each scaled by alpha^{phi:g}, beta^{phi:g}, "
    "gamma^{phi:g} as the paper does; after rounding their multiply-adds differ from "
    "{target:g}x the baseline's as `cost / target` shows, so cost is part of the ranking.",
}


def plot_grid(path: Path, rows: list[dict[str, Any]]) -> None:
    """Minival top-1 over (beta, gamma), alpha written next to each point; pruned hollow."""
    # matplotlib loads only when a plot is drawn
    import matplotlib

    matplotlib.use("Agg")
    # matplotlib loads only when a plot is drawn
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    done = [r for r in rows if r["state"] == "complete"][::-1]  # worst first, best on top
    if done:
        sc = ax.scatter(
            [r["beta"] for r in done], [r["gamma"] for r in done],
            c=[r["minival_top1"] for r in done], cmap="viridis", s=90,
        )  # fmt: skip
        fig.colorbar(sc, label="minival top-1 (%)")
    pruned = [r for r in rows if r["state"] == "pruned"]
    if pruned:
        ax.scatter(
            [r["beta"] for r in pruned], [r["gamma"] for r in pruned],
            facecolors="none", edgecolors="gray", s=90, label="pruned",
        )  # fmt: skip
        ax.legend()
    alphas: dict[tuple[float, float], list[str]] = {}
    for r in rows:  # best first: the label starts with the alpha whose colour is shown
        alphas.setdefault((r["beta"], r["gamma"]), []).append(f"{r['alpha']:g}")
    for (b, g), a in alphas.items():
        ax.annotate("α " + ", ".join(a), (b, g), fontsize=7, xytext=(5, 5),
                    textcoords="offset points")  # fmt: skip
    ax.scatter([PAPER[1]], [PAPER[2]], marker="x", color="red", s=60)
    ax.set_xlabel("beta (width)")
    ax.set_ylabel("gamma (resolution)")
    ax.set_title(f"alpha, beta, gamma grid (x: the paper's {', '.join(map(str, PAPER))})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
