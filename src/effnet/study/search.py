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

from typing import Any

from effnet.jobs.local import Launch, entry_point, helpers
from effnet.study.coefficients import SearchConfig, validate
from effnet.study.runner import default_train_fn
from effnet.study.search_report import write_outputs
from effnet.study.search_workers import open_search, wait, work


# -- the whole search -----------------------------------------------------------------------
def _run(cfg: SearchConfig | None, at: Launch) -> Any:
    st, study, cfg = open_search(cfg, at.storage, at.out, at.name)
    train_fn, out, log = at.train_fn or default_train_fn(), at.out, at.log
    with helpers("search-coefficients", at.url, study.study_name, out, at.processes):
        work(cfg, study, st, out, train_fn, log)
    wait(cfg, study, st, out, train_fn, log)
    return write_outputs(cfg, study, out)


run_search = entry_point("search", SearchConfig.name, validate, _run)
run_search.__doc__ = """Run (or join, or resume) the grid search in the search folder
``out`` (keywords: ``storage``, ``name``, ``processes``, ``train_fn``, ``log``, ``force``;
:func:`effnet.jobs.local.entry_point`), with ``processes`` - 1 more worker processes on
this machine; writes the outputs."""
