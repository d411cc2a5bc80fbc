"""Training: the paper's recipe as data, exact resume, DDP under torchrun, evaluation.

from effnet.data import DataSpec
from effnet.train import RECIPES, train
result = train("efficientnet_b0", DataSpec(), RECIPES["cpu"], "runs/b0")
result.metrics["test_top1"]
"""

from effnet.train.evaluation import evaluate_run, load_run_model
from effnet.train.recipe import RECIPES, Recipe, apply_overrides, resolve
from effnet.train.run import RunResult, train

__all__ = [
    "RECIPES",
    "Recipe",
    "RunResult",
    "apply_overrides",
    "evaluate_run",
    "load_run_model",
    "resolve",
    "train",
]
