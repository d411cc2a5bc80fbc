"""The paper's experiments: scaling studies (Fig 3, Fig 4, Table 7) and the alpha/beta/gamma
grid search (section 4), each one function call and one command."""

from effnet.study.presets import quick
from effnet.study.study import Point, Study, plan

__all__ = ["Point", "Study", "plan", "quick"]
