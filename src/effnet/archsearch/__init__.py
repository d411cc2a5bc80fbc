"""Step 0 of the paper's method: a MnasNet-style search for the baseline network
(``effnet search-architecture``; :func:`effnet.archsearch.search.run_archsearch`).

The space, the objective and the config are plain data and pure functions (no torch, no
Optuna); the search itself loads both."""

from effnet.archsearch.config import ArchSearchConfig, quick_config
from effnet.archsearch.objective import hard_reward, reward, score
from effnet.archsearch.space import (
    SearchSpace,
    StageSpace,
    arch_from_params,
    default_space,
    reachable_macs,
    sample,
)

__all__ = [
    "ArchSearchConfig",
    "SearchSpace",
    "StageSpace",
    "arch_from_params",
    "default_space",
    "hard_reward",
    "quick_config",
    "reachable_macs",
    "reward",
    "sample",
    "score",
]
