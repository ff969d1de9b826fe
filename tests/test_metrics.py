import numpy as np
import pytest

from tll_core.errors import TLLError
from tll_core.matchers import ZeroShot, create_matcher
from tll_core.evaluation.metrics import evaluate_scores, score_candidates, truth_ranks
from tll_core.evaluation.significance import bootstrap_ci


def _brute_force(left, right, candidates, metric):
    out = np.zeros(candidates.shape)
    for i in range(len(left)):
        for k, j in enumerate(candidates[i]):
            a, b = left[i].astype(np.float64), right[j].astype(np.float64)
            if metric == "cosine":
                out[i, k] = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
            elif metric == "euclidean":
                out[i, k] = -np.sqrt(((a - b) ** 2).sum())
            else:
                out[i, k] = -np.abs(a - b).sum()
    return out


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "manhattan"])
def test_scores_match_brute_force(metric: str) -> None:
    rng = np.random.default_rng(1)
    left, right = rng.normal(size=(37, 11)), rng.normal(size=(50, 11))
    candidates = np.stack([rng.choice(50, 20, replace=False) for _ in range(37)])
    got = score_candidates(left, right, candidates, metric)
    np.testing.assert_allclose(got, _brute_force(left, right, candidates, metric), rtol=1e-5, atol=1e-5)


def test_chunking_does_not_change_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    import tll_core.evaluation.metrics as m

    rng = np.random.default_rng(2)
    left, right = rng.normal(size=(30, 8)), rng.normal(size=(40, 8))
    candidates = rng.integers(0, 40, size=(30, 20))
    whole = score_candidates(left, right, candidates, "manhattan")
    monkeypatch.setattr(m, "_CHUNK_ELEMENTS", 200)  # forces chunks of one left
    np.testing.assert_array_equal(score_candidates(left, right, candidates, "manhattan"), whole)


def _brute_ranks(scores, truth):
    ranks = []
    for row, t in zip(scores, truth):
        ranks.append(1 + sum(1 for k, s in enumerate(row) if k != t and s >= row[t]))
    return np.array(ranks)


def test_ranks_match_brute_force_with_ties() -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(500, 20)).astype(np.float32)  # many ties
    truth = rng.integers(0, 20, size=500)
    np.testing.assert_array_equal(truth_ranks(scores, truth), _brute_ranks(scores, truth))


def test_ties_count_against_the_truth() -> None:
    scores = np.zeros((2, 20))
    assert truth_ranks(scores, np.array([0, 19])).tolist() == [20, 20]
    result = evaluate_scores(scores, np.array([0, 5]))
    assert result.top1 == result.top2 == result.top5 == 0.0 and result.mean_rank == 20


def test_evaluation_figures_match_definitions() -> None:
    rng = np.random.default_rng(4)
    scores = rng.normal(size=(300, 20))
    truth = rng.integers(0, 20, size=300)
    ranks = _brute_ranks(scores, truth)
    result = evaluate_scores(scores, truth)
    assert result.n == 300
    assert result.top1 == pytest.approx((ranks == 1).mean())
    assert result.top2 == pytest.approx((ranks <= 2).mean())
    assert result.top5 == pytest.approx((ranks <= 5).mean())
    assert result.mrr == pytest.approx((1 / ranks).mean())
    assert result.mean_rank == pytest.approx(ranks.mean())
    lo, hi = result.top2_ci
    assert lo <= result.top2 <= hi and hi - lo < 0.2


def test_bootstrap_is_seeded_and_sensible() -> None:
    hits = np.random.default_rng(5).random(400) < 0.3
    assert bootstrap_ci(hits, seed=1) == bootstrap_ci(hits, seed=1)
    lo, hi = bootstrap_ci(hits, seed=1)
    se = np.sqrt(0.3 * 0.7 / 400)
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.25)


def test_zero_shot_centres_on_the_mean_of_the_scored_images() -> None:
    rng = np.random.default_rng(6)
    left, right = rng.normal(size=(30, 8)) + 3, rng.normal(size=(45, 8)) + 3
    candidates = rng.integers(0, 45, size=(30, 20))
    mean = np.concatenate([left, right]).mean(axis=0)
    expected = _brute_force(left - mean, right - mean, candidates, "cosine")
    centred = ZeroShot("cosine", centre=True).score(left, right, candidates)
    raw = ZeroShot("cosine", centre=False).score(left, right, candidates)
    np.testing.assert_allclose(centred, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(raw, _brute_force(left, right, candidates, "cosine"), rtol=1e-4, atol=1e-5)
    assert not np.allclose(centred, raw, atol=1e-3)


def test_unknown_metric_and_method() -> None:
    with pytest.raises(TLLError, match="option metric='hamming': choose from cosine, euclidean, manhattan"):
        create_matcher("zero-shot", metric="hamming")
    with pytest.raises(TLLError, match="unknown metric 'hamming'"):
        score_candidates(np.ones((1, 2)), np.ones((20, 2)), np.arange(20)[None], "hamming")
    with pytest.raises(TLLError, match="unknown method"):
        create_matcher("magic")
