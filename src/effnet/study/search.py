"""Step 1 of compound scaling: grid-search alpha, beta, gamma at phi = 1 on a proxy task.

The grid holds every (alpha, beta, gamma) >= 1 on a ``step`` lattice with
alpha * beta^2 * gamma^2 within ``tolerance`` of 2 (section 3.3). Each candidate scales the
baseline by (alpha^phi, beta^phi, gamma^phi), is trained with ``effnet.train.train`` and
ranked by minival top-1.

The search is an Optuna study with a :class:`~optuna.samplers.GridSampler` over candidate
ids; its storage is how it spreads over processes and machines: a journal file by default,
any RDB URL (PostgreSQL) for a cluster. Every worker is a plain ``effnet search-coefficients
--storage URL`` process. Guarantees:

- each candidate is trained to completion once: GridSampler gives trial n < grid size grid
  point n (trial numbers are unique in the storage); a later trial that finds its
  candidate done, or being run by an earlier trial (a race between workers), ends as a
  "surplus" failure without training;
- a trial that raises, or whose worker died (heartbeat on RDB, a dead pid on this host for
  journals), is marked failed and re-queued with the same candidate (up to ``max_retries``);
  failed trials are never counted in the results;
- hopeless candidates are pruned after the first rung of epochs (bottom quartile of
  minival top-1 among trials at the same rung), when the schedule allows extending a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from effnet.jobs.local import helpers, in_folder, process_count
from effnet.rundir import safe_name
from effnet.study.coefficients import SearchConfig, validate
from effnet.study.runner import default_train_fn
from effnet.study.search_report import write_outputs
from effnet.study.search_workers import open_search, wait, work


# -- the whole search -----------------------------------------------------------------------
def run_search(
    cfg: SearchConfig | None,
    out: str | Path,
    *,
    storage: str | None = None,
    name: str | None = None,
    processes: int = 1,
    workers: int | None = None,
    train_fn: Any = None,
    log: Any = None,
    force: bool = False,
) -> Any:
    """Run (or join, or resume) the grid search in the search folder ``out``, with
    ``workers`` - 1 more worker processes on this machine (``effnet.jobs.local``); writes
    the outputs."""
    workers = process_count(processes, workers)
    out = Path(out)
    if cfg is not None:
        validate(cfg)
    study_name = safe_name(name or (cfg.name if cfg else SearchConfig.name), "search name")
    run = lambda: _run(cfg, out, storage, name, workers, train_fn, log)  # noqa: E731
    return in_folder(out, "search", study_name, force, run)


def _run(
    cfg: SearchConfig | None,
    out: Path,
    storage: str | None,
    name: str | None,
    workers: int,
    train_fn: Any,
    log: Any,
) -> Any:

    st, study, cfg = open_search(cfg, storage, out, name)
    url = storage or str(out / "optuna.journal")
    train_fn = train_fn or default_train_fn()
    with helpers("search-coefficients", url, study.study_name, out, workers):
        work(cfg, study, st, out, train_fn, log)
    wait(cfg, study, st, out, train_fn, log)
    return write_outputs(cfg, study, out)
