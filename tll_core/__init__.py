"""tll_core — the Totally-Looks-Like matching engine (no UI; the studio in app.py/pages/ lays out its results).

The data flows one way: :func:`load_dataset` → tasks (:mod:`tll_core.evaluation.tasks`) → embeddings (the backbone table,
:func:`create_backbone`; a persistent cache) → scores (matchers and re-rankers, each a part in the one
register, :mod:`tll_core.register`) → evaluation (:mod:`tll_core.evaluation.metrics`, :mod:`tll_core.analysis`) →
export (:mod:`tll_core.submission`). :class:`Engine` ties them together; ``python -m tll_core`` is the CLI.
"""
from .api import Data, Tasks, open_data
from .backbones.registry import BACKBONES, create_backbone
from .dataset import load_dataset
from .engine import Engine, Method
from .matchers import create_matcher
from .register import REGISTER, register
from .evaluation.results import ResultRow

__all__ = ["BACKBONES", "REGISTER", "Data", "Engine", "Method", "ResultRow", "Tasks", "create_backbone", "create_matcher",
           "load_dataset", "open_data", "register"]
