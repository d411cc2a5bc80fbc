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

from effnet.archsearch import workers as w
from effnet.archsearch.config import ArchSearchConfig, load_space, validate
from effnet.archsearch.confirm import confirm as confirm_best
from effnet.archsearch.report import ArchSearchResult, write_outputs
from effnet.jobs.local import Launch, entry_point, helpers
from effnet.jobs.trials import wait_for_others
from effnet.study.data_info import data_shape
from effnet.study.runner import default_train_fn

FOLDER_KIND = "search-architecture"


def _run(cfg: ArchSearchConfig | None, at: Launch) -> ArchSearchResult:
    st, study, confirm_study, cfg = w.open_studies(cfg, at.storage, at.out, at.study_name)
    space, shape = load_space(cfg), data_shape(cfg.data)
    train_fn, out, log = at.train_fn or default_train_fn(), at.out, at.log

    def search() -> None:
        w.work(cfg, space, shape, study, st, out, train_fn, log)

    def confirm() -> None:
        confirm_best(cfg, space, study, confirm_study, st, out, train_fn, log)

    with helpers("search-architecture", at.url, at.study_name, out, at.processes):
        search()
        wait_for_others(study, search, log)
        while w.work_remains(study, cfg.trials):  # a trial elsewhere failed as it ended
            search()
            wait_for_others(study, search, log)
        confirm()
        wait_for_others(confirm_study, confirm, log)
    return write_outputs(cfg, space, study, confirm_study, out)


run_archsearch = entry_point(FOLDER_KIND, ArchSearchConfig.name, validate, _run)
run_archsearch.__doc__ = """Run (or join, or resume) a search in the search folder ``out``
(keywords: ``storage``, ``name``, ``processes``, ``train_fn``, ``log``, ``force``;
:func:`effnet.jobs.local.entry_point`), with ``processes`` - 1 more worker processes on
this machine; writes the outputs."""
