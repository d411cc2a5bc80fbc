"""Step 0 of the paper's method: a multi-objective architecture search for the baseline.

EfficientNet-B0 came from a MnasNet-style search maximising ACC(m) x [FLOPS(m)/T]^w
(:mod:`effnet.archsearch.objective`) over a space of MBConv stages
(:mod:`effnet.archsearch.space`). Here each candidate trains briefly on a proxy split with
``effnet.train.train``, is scored on its minival top-1, and the best few are trained again
for longer to confirm the ranking. The outputs (``best-arch.json``, the Table-1
description, the Pareto plot, ``report.md``) feed step 1, ``effnet search-coefficients``.

The search is an Optuna study; its storage spreads it over processes and machines: a
journal file by default, any RDB URL (PostgreSQL) for a cluster. Every worker is a plain
``effnet search-architecture --join`` process. Guarantees:

- each trial trains its candidate once, in ``trials/<trial number>``: Optuna hands each
  trial number to one worker; a trial that would take the count of complete and earlier
  running trials past ``trials`` ends as "surplus" without training, so exactly ``trials``
  complete (unless the search gives up after 5 x ``trials`` pruned or failed tries);
- a trial whose worker died (a dead pid on this host for journals, the heartbeat on RDB)
  is marked failed and queued again with the same choices; the retry resumes the run
  folder (``trials/<first trial's number>``), up to two retries. A trial that raised is
  recorded with its error and not retried;
- re-running the command on the same ``--out`` resumes: finished trials are never run
  again; a different config in the same storage is refused (only ``trials`` may change);
- a candidate that samples the same choices as a finished trial reuses its result;
- with ``prune``, a candidate whose reward could not beat the best so far even at 100%
  accuracy is pruned before training (under the hard constraint: anything costing more
  than T / best accuracy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from effnet.archsearch import workers as w
from effnet.archsearch.config import ArchSearchConfig, load_space, validate
from effnet.archsearch.confirm import confirm as confirm_best
from effnet.archsearch.report import ArchSearchResult, write_outputs
from effnet.jobs.local import helpers, in_folder, process_count
from effnet.jobs.trials import wait_for_others
from effnet.rundir import safe_name
from effnet.study.data_info import data_shape
from effnet.study.runner import default_train_fn

FOLDER_KIND = "search-architecture"


def run_archsearch(
    cfg: ArchSearchConfig | None,
    out: str | Path,
    *,
    storage: str | None = None,
    name: str | None = None,
    processes: int = 1,
    workers: int | None = None,
    train_fn: Any = None,
    log: Any = None,
    force: bool = False,
) -> ArchSearchResult:
    """Run (or join, or resume) a search in the search folder ``out``, with ``workers`` - 1
    more worker processes on this machine (``effnet.jobs.local``); writes the outputs."""
    workers = process_count(processes, workers)
    out = Path(out)
    if cfg is not None:
        validate(cfg)
    study_name = safe_name(name or (cfg.name if cfg else ArchSearchConfig.name), "search name")
    run = lambda: _run(cfg, out, storage, study_name, workers, train_fn, log)  # noqa: E731
    return in_folder(out, FOLDER_KIND, study_name, force, run)


def _run(
    cfg: ArchSearchConfig | None,
    out: Path,
    storage: str | None,
    name: str,
    workers: int,
    train_fn: Any,
    log: Any,
) -> ArchSearchResult:
    st, study, confirm_study, cfg = w.open_studies(cfg, storage, out, name)
    space, shape = load_space(cfg), data_shape(cfg.data)
    url = storage or str(out / "optuna.journal")
    train_fn = train_fn or default_train_fn()

    def search() -> None:
        w.work(cfg, space, shape, study, st, out, train_fn, log)

    def confirm() -> None:
        confirm_best(cfg, space, study, confirm_study, st, out, train_fn, log)

    with helpers("search-architecture", url, name, out, workers):
        search()
        wait_for_others(study, search, log)
        while w.work_remains(study, cfg.trials):  # a trial elsewhere failed as it ended
            search()
            wait_for_others(study, search, log)
        confirm()
        wait_for_others(confirm_study, confirm, log)
    return write_outputs(cfg, space, study, confirm_study, out)
