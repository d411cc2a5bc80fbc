"""Data parallelism under ``torchrun``: process group, deterministic batch order, reductions.

``torchrun --nproc-per-node N -m effnet train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK;
without them everything runs as a single process. NCCL is used on GPUs, gloo on CPUs.
The batch order is a pure function of (seed, epoch): global batch ``b`` is the same images
whatever the number of ranks, each rank taking its contiguous slice of it, and a resumed
run starts at any batch of the epoch by skipping the consumed ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from effnet.errors import EffnetError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def main(self) -> bool:
        """Only the main process writes files and prints progress."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup(device: str | None = None) -> Dist:
    """Join the process group if launched by torchrun; pick the device for this rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and device != "cpu"
    dev = f"cuda:{local}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(local)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    return Dist(rank=rank, world=world, local_rank=local, device=dev)


def teardown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def all_sum(d: Dist, t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over ranks (in place; returned for chaining)."""
    if d.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_value(d: Dist, value: float) -> float:
    """Rank 0's value (e.g. the elapsed share of a time limit) for every rank, so all ranks
    use the same learning rate and stop at the same step."""
    if not d.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=d.device)
    dist.broadcast(t, src=0)
    return float(t.item())


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of ``n`` training images for ``epoch``: a pure function of its inputs."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


class EpochBatchSampler(Sampler[list[int]]):
    """This rank's index batches of one epoch, from batch ``start`` on (drop_last).

    ``batch_size`` is the global batch; rank r takes images [r*B/W, (r+1)*B/W) of it.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, epoch: int, d: Dist, start: int = 0
    ) -> None:
        if batch_size % d.world:
            raise EffnetError(f"batch size {batch_size} is not divisible by {d.world} processes")
        if n < batch_size:
            raise EffnetError(f"training set has {n} images, fewer than one batch of {batch_size}")
        self.n, self.batch, self.seed, self.epoch, self.d, self.start = (
            n,
            batch_size,
            seed,
            epoch,
            d,
            start,
        )

    def __len__(self) -> int:
        return self.n // self.batch - self.start

    def __iter__(self) -> Iterator[list[int]]:
        order = epoch_order(self.n, self.seed, self.epoch)
        per = self.batch // self.d.world
        for b in range(self.start, self.n // self.batch):
            lo = b * self.batch + self.d.rank * per
            yield order[lo : lo + per].tolist()


class ShardSampler(Sampler[int]):
    """Evaluation shard: indices rank, rank + world, ... (every image counted exactly once)."""

    def __init__(self, n: int, d: Dist) -> None:
        self.n, self.d = n, d

    def __len__(self) -> int:
        return len(range(self.d.rank, self.n, self.d.world))

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.d.rank, self.n, self.d.world))
