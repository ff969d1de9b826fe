"""bench/recipe_sweep.py's recipe words: what a README command line asks for is the method that runs."""
import importlib.util
from pathlib import Path

from tll_core.engine import Method
from tll_core.matchers import create_matcher

SWEEP = Path(__file__).resolve().parents[1] / "bench" / "recipe_sweep.py"


def _parse_recipe():
    spec = importlib.util.spec_from_file_location("recipe_sweep", SWEEP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parse_recipe


def test_recipe_words_become_the_method_with_its_options_and_re_ranker() -> None:
    parse = _parse_recipe()
    backbone, method = parse("efficientnet-lite0 metric=euclidean")  # zero-shot's metric is one of its options
    assert backbone == "efficientnet-lite0" and method == Method("zero-shot", options=(("metric", "euclidean"),))
    _, method = parse("combined method=adaptation members=3 hidden=512 rerank=sinkhorn rerank.tau=0.03 flip_tta=true")
    assert method.name == "adaptation" and method.options == (("hidden", 512), ("members", 3))
    assert method.rerank == "sinkhorn" and method.rerank_options == (("tau", 0.03),) and method.flip_tta
    _, method = parse("combined method=pair-classifier sampling=1:19")
    assert method.options == (("sampling", "1:19"),)
    assert create_matcher(method.name, **dict(method.options)).cfg.sampling == "1:19"
