"""The studies effnet ships: the quick one ``make run`` trains, and the fair-proxy fields
the full Fashion-MNIST study shares with it (``examples/study-fmnist-fair.json``)."""

from __future__ import annotations

from typing import Any

from effnet.study.study import Study

# a proxy sized for small images (see docs/study.md): channels in multiples of 4, layers
# rounded to the nearest, a stride-1 stem so a 16 px input still ends at 1x1
FAIR_PROXY_FIELDS: dict[str, Any] = {
    "divisor": 4,
    "depth_rounding": "round",
    "stem": {"stride": 1},
}


def quick() -> Study:
    """What ``effnet study --quick`` (and ``make run``) trains: the Table-7 set on a CPU,
    with the full study's design at a small scale.

    B0 at 0.35 width on 16x16 Fashion-MNIST (below the images' 28 px, so the resolution
    point adds real detail) with the fair-proxy fields, fitted to 3.45x its multiply-adds
    by each method (the resolution point lands at 27 px); 3,000 training images, two
    epochs, one seed (about 6 minutes here; the report says what that cannot show).
    ``--seeds 0,1,2`` gives an interval and ``--epoch-multiples 1,2`` the convergence
    check, each multiplying the time.
    """
    return Study(
        name="quick",
        baseline="efficientnet_b0",
        baseline_width=0.35,
        resolution=16,
        baseline_fields=FAIR_PROXY_FIELDS,
        data={
            "source": "fashion-mnist",
            "subset": 3000,
            "minival": 500,
            "workers": 0,
            "download": True,
        },  # fmt: skip
        recipe="cpu",
        # short runs need small batches (more steps) and a short warm-up to learn at all
        recipe_overrides={
            "epochs": 2,
            "batch_size": 32,
            "lr": 0.032,
            "warmup_epochs": 0.1,
            "log_every": 20,
        },  # fmt: skip
        seeds=(0,),
        budget=3.45,
    )
