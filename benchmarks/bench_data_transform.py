"""Cost of the batch transform against a training step, measured in the same process.

    .venv/bin/python benchmarks/bench_data_transform.py [--rounds 8] [--threads 2]

For each input resolution (28 -> 32 and 28 -> 64, batch 128, Fashion-MNIST images) it times,
interleaved round by round: BatchTransform in train mode (pad-crop, flip, RandAugment
n=2 m=9, bicubic upsampling, as the training loop uses it) and in eval mode, and one
training step (forward, backward, SGD step, channels_last) of a reduced B0 (width 0.5,
depth 0.5) and the full-width B0. Prints medians and the ratio transform / step. The CPU is
shared with other work, so absolute times are noisy; the ratios within a round are the
number to read.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from effnet.data import FASHION_MNIST_MEAN, FASHION_MNIST_STD, BatchTransform, DataSpec, load_splits
from effnet.model import build
from effnet.registry import get_arch


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def step(net, opt, transform, images, labels):
    x = transform(images).contiguous(memory_format=torch.channels_last)
    loss = torch.nn.functional.cross_entropy(net(x), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    images = load_splits(DataSpec(minival=0)).test.images[: args.batch]
    labels = torch.randint(0, 10, (args.batch,))
    models = {
        "b0 w0.5 d0.5": get_arch("efficientnet_b0", width=0.5, depth=0.5),
        "b0": get_arch("efficientnet_b0"),
    }
    for res in (32, 64):
        kw = dict(interpolation="bicubic")
        train_t = BatchTransform(res, FASHION_MNIST_MEAN, FASHION_MNIST_STD, train=True, **kw)
        eval_t = BatchTransform(res, FASHION_MNIST_MEAN, FASHION_MNIST_STD, train=False, **kw)
        nets = {}
        for name, arch in models.items():
            net = build(arch.replace(resolution=res), num_classes=10, in_chans=1)
            net = net.to(memory_format=torch.channels_last).train()
            nets[name] = (net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9))

        times: dict[str, list[float]] = {"train transform": [], "eval transform": []}
        times.update({f"step {n}": [] for n in nets})
        for r in range(args.rounds + 1):
            sample = {"train transform": timed(train_t, images)}
            sample["eval transform"] = timed(eval_t, images)
            for name, (net, opt) in nets.items():
                sample[f"step {name}"] = timed(step, net, opt, eval_t, images, labels)
            if r:  # round 0 warms up
                for k, v in sample.items():
                    times[k].append(v)
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        print(f"28 -> {res}, batch {args.batch}, {args.threads} threads, {args.rounds} rounds")
        for k, v in med.items():
            print(f"  {k:<22} {v:8.1f} ms")
        for name in nets:
            ratio = med["train transform"] / med[f"step {name}"]
            print(f"  train transform / step {name}: {ratio:.3f}")


if __name__ == "__main__":
    main()
