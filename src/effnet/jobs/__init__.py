"""The one experiment-execution layer under the study, the coefficient search and the
architecture search: Optuna storages shared by worker processes on one or many machines.

- :mod:`effnet.jobs.storage`: open a journal file or an RDB URL; the lock that makes
  creating a study and storing its attributes one step, as every worker sees it;
- :mod:`effnet.jobs.join`: create or join a study with its attributes (the config,
  the candidates) stored atomically;
- :mod:`effnet.jobs.trials`: claim a trial, fail the trials of dead workers, end a
  surplus trial without running it, and the work / wait loops every queue runs.

Each queue (``effnet.study.study_workers``, ``effnet.study.search_workers``,
``effnet.archsearch.workers``) only says what its trials are, how a failed one is queued
again, and when work remains.
"""
