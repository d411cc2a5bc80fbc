"""A coefficient-search worker for the stress test of ``test_jobs``, forked from a server
process that imported this module once: importing it also warms up everything a trial
loads lazily (torch's meta-device kernels, sympy: over a second), so that the workers
start racing at once instead of importing."""

from __future__ import annotations

import os
from pathlib import Path

from test_study import fake_train
from test_study_search import tiny_config

from effnet.jobs import trials
from effnet.study.coefficients import fitted_candidate
from effnet.study.search_workers import open_search, wait, work

fitted_candidate(tiny_config(), 1.2, 1.1, 1.15, (10, 1))


def worker(barrier, cfg, out: str, url: str, name: str, log: str) -> None:
    os.environ.update(FAKE_TRAIN_LOG=log, FAKE_TRAIN_SLEEP="0.02")
    trials.WAIT_POLL_S = 0.2  # a worker with nothing left looks at the others this often
    barrier.wait(timeout=60)  # every worker leaves this line at the same instant
    storage, study, cfg = open_search(cfg, url, Path(out), name)  # the search, less its report
    work(cfg, study, storage, Path(out), fake_train)
    wait(cfg, study, storage, Path(out), fake_train, None)
