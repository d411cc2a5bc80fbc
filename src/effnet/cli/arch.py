"""effnet models | describe | scale."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from effnet.arch import Architecture, render_table
from effnet.cli._common import (
    add_scaling_args,
    positive_int,
    print_json,
    refuse_overwrite,
    scaling_overrides,
)
from effnet.errors import EffnetError
from effnet.memory import check_fits
from effnet.profile import family_table, params_and_macs, profile_arch
from effnet.registry import get_arch, list_models
from effnet.scaling import (
    ALPHA,
    BETA,
    GAMMA,
    check_coefficients,
    compound,
    constraint,
    fit_budget,
    formula_rows,
)

if TYPE_CHECKING:
    from effnet.latency import LatencyFit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the named models (Table 2 of the paper)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--formula",
        action="store_true",
        help="B0-B8 and L2's released coefficients beside alpha^phi, beta^phi, gamma^phi",
    )
    what = "list the published weights (NAME.TAG) with their preprocessing"
    p.add_argument("--pretrained", action="store_true", help=what)
    p.add_argument("filter", nargs="?", help="with --pretrained: a shell pattern ('*lite*')")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("describe", help="print an architecture as the paper's Table 1")
    p.add_argument("model", help="model name or architecture .json file")
    add_scaling_args(p)
    p.add_argument("--json", action="store_true", help="print the architecture as JSON")
    p.add_argument("--save", metavar="FILE", help="write the architecture JSON to FILE")
    p.add_argument("--force", action="store_true", help="overwrite --save FILE")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("scale", help="compound-scale a baseline by phi or to a budget")
    p.add_argument("model", nargs="?", default="efficientnet_b0", help="baseline (default B0)")
    p.add_argument("--phi", type=float, help="compound coefficient")
    p.add_argument("--alpha", type=float, default=ALPHA, help=f"depth base (default {ALPHA})")
    p.add_argument("--beta", type=float, default=BETA, help=f"width base (default {BETA})")
    p.add_argument("--gamma", type=float, default=GAMMA, help=f"resolution base (default {GAMMA})")
    p.add_argument(
        "--coefficients",
        metavar="BEST_JSON",
        help="alpha, beta, gamma from `effnet search-coefficients`' best.json (instead of "
        "--alpha/--beta/--gamma)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        metavar="T",
        help="require |alpha*beta^2*gamma^2 - 2| <= T",
    )
    b = p.add_mutually_exclusive_group()
    b.add_argument("--budget-flops", type=float, metavar="N", help="max multiply-adds")
    b.add_argument("--budget-params", type=float, metavar="N", help="max parameters")
    b.add_argument(
        "--budget-latency",
        type=_milliseconds,
        metavar="T",
        help="max median latency on this machine, e.g. 20ms (candidates are measured)",
    )
    lat = p.add_argument_group("latency budget")
    lat.add_argument("--backend", choices=["torch", "onnxruntime", "int8"], default="torch")
    lat.add_argument("--batch", type=positive_int, default=1, help="images per call (1)")
    lat.add_argument("--threads", type=positive_int, help="intra-op threads (default: torch's)")
    lat.add_argument("--rounds", type=positive_int, default=10, help="timed calls per model (10)")
    p.add_argument("--save", metavar="FILE", help="write the scaled architecture JSON")
    p.add_argument("--force", action="store_true", help="overwrite --save FILE")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_scale)


def _milliseconds(text: str) -> float:
    from effnet.latency import parse_ms

    try:
        return parse_ms(text)
    except EffnetError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_models(args: argparse.Namespace) -> int:
    if args.formula:
        return _formula(args)
    if args.pretrained:
        return _pretrained(args)
    rows = family_table(list_models())
    if args.json:
        print_json(rows)
        return 0
    header = "| model | width | depth | resolution | dropout | params | mult-adds | paper |"
    print(header)
    print("|" + "|".join("---" for _ in range(header.count("|") - 1)) + "|")
    for r in rows:
        paper = f"{r['paper_params_m']}M / {r['paper_macs_b']}B" if r["paper_params_m"] else "-"
        print(
            f"| {r['model']} | {r['width']:.2g} | {r['depth']:.2g} | {r['resolution']} | "
            f"{r['dropout']:.1f} | {r['params'] / 1e6:.2f}M | {r['macs'] / 1e9:.3g}B | {paper} |"
        )
    return 0


def _pretrained(args: argparse.Namespace) -> int:
    """Every published tag effnet loads, with its source, eval size and published top-1."""
    from effnet.pretrained import all_tags, list_pretrained

    tags = all_tags()
    rows = [tags[n].to_dict() | {"name": n, "default": tags[n].default}
            for n in list_pretrained(args.filter or "*")]  # fmt: skip
    if args.json:
        print_json(rows)
        return 0
    print("| name | default | weights | input | crop_pct | interpolation | top-1 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        where = r["hf_hub_id"] and f"hf-hub:{r['hf_hub_id']}" or r["torchvision"]
        top1 = f"{r['top1']:.2f}% @ {r['top1_size']}" if r["top1"] is not None else "-"
        print(
            f"| {r['name']} | {'yes' if r['default'] else ''} | {where} | "
            f"{r['input_size'][-1]} | {r['crop_pct']} | {r['interpolation']} | {top1} |"
        )
    return 0


def _formula(args: argparse.Namespace) -> int:
    from effnet.families.efficientnet import B0, RELEASED

    rows = formula_rows(RELEASED, B0.resolution)
    if args.json:
        print_json(rows)
        return 0
    print(f"alpha, beta, gamma = {ALPHA}, {BETA}, {GAMMA}; released model k beside phi = k")
    print("| model | depth | alpha^phi | width | beta^phi | px | 224 gamma^phi | nearest phi |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} (phi {r['phi']}) | {r['depth']:g} | {r['formula_depth']:.2f} | "
            f"{r['width']:g} | {r['formula_width']:.2f} | {r['resolution']} | "
            f"{r['formula_resolution']:.0f} | {r['nearest_phi']:.2f} |"
        )
    return 0


def _totals(arch: Architecture) -> str:
    p = profile_arch(arch)
    return (
        f"params {p.params:,} ({p.params / 1e6:.2f}M)  multiply-adds {p.macs:,} "
        f"({p.macs / 1e9:.3f}B) at {p.resolution}x{p.resolution}  "
        f"activations {p.activations / 2**20:.1f} MiB per image (training)"
    )


def cmd_describe(args: argparse.Namespace) -> int:
    arch = get_arch(args.model, **scaling_overrides(args))
    check_fits(arch)  # before building it, even on the meta device
    if args.save:
        target = refuse_overwrite(args.save, args.force)
        arch.save(target)
    if args.json:
        print(arch.to_json())
        return 0
    print(f"{arch.name}  (width x{arch.width:.4g}, depth x{arch.depth:.4g})")
    print(render_table(arch))
    print(_totals(arch))
    if args.save:
        print(f"saved {args.save}")
    return 0


def _latency_note(fitted: LatencyFit) -> str:
    d = fitted.to_dict()
    lat, flops = d["latency_fit"], d["flops_fit"]
    return (
        f"latency budget {fitted.budget_ms:g} ms ({d['backend']}, batch {d['batch']}, "
        f"{d['threads']} thread(s); {d['measured']} models measured): phi = {lat['phi']:.4f}, "
        f"{lat['macs'] / 1e9:.3f}B multiply-adds, {lat['median_ms']:.2f} ms measured again "
        f"({lat['off_budget']:+.1%})\n"
        f"FLOPs fit at the same nominal cost ({fitted.nominal_macs / 1e9:.3f}B: the budget "
        f"at the base's {fitted.base_ms:.2f} ms): "
        f"phi = {flops['phi']:.4f}, {flops['macs'] / 1e9:.3f}B, {flops['median_ms']:.2f} ms "
        f"({flops['off_budget']:+.1%} off the budget)"
    )


def cmd_scale(args: argparse.Namespace) -> int:
    if args.coefficients:
        from effnet.study.coefficients import searched_coefficients

        if (args.alpha, args.beta, args.gamma) != (ALPHA, BETA, GAMMA):
            raise EffnetError("give --coefficients or --alpha/--beta/--gamma, not both")
        args.alpha, args.beta, args.gamma = searched_coefficients(args.coefficients)
    check_coefficients(args.alpha, args.beta, args.gamma, args.tolerance)
    base = get_arch(args.model)
    coef = (args.alpha, args.beta, args.gamma)
    fitted = None
    if args.budget_latency:
        from effnet.latency import fit_latency_vs_flops

        fitted = fit_latency_vs_flops(
            base, args.budget_latency, *coef, backend=args.backend, batch=args.batch,
            threads=args.threads, rounds=args.rounds,
        )  # fmt: skip
        arch, phi = fitted.latency_fit.arch, fitted.latency_fit.value
        note = _latency_note(fitted)
    elif args.budget_flops or args.budget_params:
        from effnet.profile import macs_of, params_of

        cost, target = (
            (macs_of, args.budget_flops) if args.budget_flops else (params_of, args.budget_params)
        )
        f = fit_budget(base, target, cost, *coef)
        arch, phi = f.arch, f.value
        note = f"budget {target:.4g}: phi = {phi:.4f}, cost {f.cost:.4g} ({f.relative_error:+.2%})"
    elif args.phi is not None:
        arch = get_arch(base, phi=args.phi, alpha=args.alpha, beta=args.beta, gamma=args.gamma)
        phi, note = args.phi, ""
    else:
        raise EffnetError(
            "give --phi or a budget (--budget-flops / --budget-params / --budget-latency)"
        )
    d, w, r = compound(phi, *coef)
    check_fits(arch)
    params, macs = params_and_macs(arch)
    result = dict(
        model=arch.name, phi=phi, alpha=args.alpha, beta=args.beta, gamma=args.gamma,
        constraint=constraint(*coef), depth=d, width=w, resolution_mult=r,
        resolution=arch.resolution, params=params, macs=macs,
    )  # fmt: skip
    if fitted is not None:
        result["latency"] = fitted.to_dict()
    if args.save:
        arch.save(refuse_overwrite(args.save, args.force))
    if args.json:
        print_json(result)
        return 0
    print(
        f"phi={phi:g}: depth x{d:.4f}, width x{w:.4f}, resolution x{r:.4f} "
        f"(alpha*beta^2*gamma^2 = {result['constraint']:.4f})"
    )
    if note:
        print(note)
    print(render_table(arch))
    print(_totals(arch))
    if args.save:
        print(f"saved {args.save}")
    return 0
