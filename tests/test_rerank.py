import numpy as np
import pytest

from tll_core.engine import fuse_scores
from tll_core.errors import TLLError
from tll_core.metrics import evaluate_scores
from tll_core.rerank import csls, dual_softmax, hungarian, rerank, sinkhorn


def assignment_case(n: int = 60, seed: int = 0):
    """Each right is the truth of exactly one left and a candidate of ~20 lists; a few 'hub' rights score
    high everywhere, so the base scorer often ranks a hub above the truth."""
    rng = np.random.default_rng(seed)
    candidates = np.stack([np.r_[i, rng.choice(np.delete(np.arange(n), i), 19, replace=False)] for i in range(n)])
    truth = rng.integers(0, 20, size=n)
    for i, t in enumerate(truth):
        candidates[i, [0, t]] = candidates[i, [t, 0]]
    hubness = np.where(np.arange(n) < 6, 0.9, 0.0)
    scores = hubness[candidates] + 0.5 * rng.random(candidates.shape)
    scores[np.arange(n), truth] += 0.6
    return scores.astype(np.float32), candidates, truth, n


@pytest.mark.parametrize("name,least", [("csls", 0.95), ("sinkhorn", 0.95), ("hungarian", 0.95),
                                        ("dual-softmax", 0.6)])  # one step, not iterated: it helps, less
def test_rerank_recovers_the_truth_when_the_structure_holds(name: str, least: float) -> None:
    scores, candidates, truth, n = assignment_case()
    base = evaluate_scores(scores, truth).top1
    after = evaluate_scores(rerank(scores, candidates, n, name), truth).top1
    assert base < 0.3 and after > least


def test_none_leaves_scores_as_they_are() -> None:
    scores, candidates, _, n = assignment_case()
    assert rerank(scores, candidates, n, "none") is scores
    with pytest.raises(TLLError, match="unknown rerank"):
        rerank(scores, candidates, n, "magic")


def test_sinkhorn_makes_a_doubly_stochastic_assignment() -> None:
    scores, candidates, _, n = assignment_case()
    p = np.exp(sinkhorn(scores, candidates, n, tau=0.1, iters=200).astype(np.float64))
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-6)
    np.testing.assert_allclose(np.bincount(candidates.ravel(), weights=p.ravel(), minlength=n), 1, atol=1e-3)


def test_sparse_sinkhorn_equals_the_dense_reference() -> None:
    scores, candidates, _, n = assignment_case(n=30)
    dense = np.full((30, 30), -np.inf)
    np.put_along_axis(dense, candidates, scores.astype(np.float64) / 0.1, axis=1)
    for _ in range(20):
        dense -= np.logaddexp.reduce(dense, axis=1, keepdims=True)
        dense -= np.logaddexp.reduce(dense, axis=0, keepdims=True)
    np.testing.assert_allclose(sinkhorn(scores, candidates, 30, 0.1, 20), np.take_along_axis(dense, candidates, 1), atol=1e-4)


def test_hungarian_puts_one_assigned_candidate_first() -> None:
    scores, candidates, _, n = assignment_case()
    out = hungarian(scores, candidates, n)
    top = candidates[np.arange(n), out.argmax(1)]
    assert len(set(top.tolist())) == n  # a one-to-one assignment


def test_csls_k_changes_the_correction() -> None:
    scores, candidates, _, n = assignment_case()
    assert not np.allclose(csls(scores, candidates, n, 1), csls(scores, candidates, n, 10))
    # the same through the configured entry point: the setting reaches the correction
    assert not np.allclose(rerank(scores, candidates, n, "csls", {"k": 1}), rerank(scores, candidates, n, "csls"))
    np.testing.assert_array_equal(rerank(scores, candidates, n, "csls", {"k": 1}), csls(scores, candidates, n, 1))


def test_the_default_config_leaves_the_scores_alone() -> None:
    scores, candidates, _, n = assignment_case()
    np.testing.assert_array_equal(rerank(scores, candidates, n, "none"), scores)
    np.testing.assert_array_equal(rerank(scores, candidates, n), scores)
    assert not np.allclose(rerank(scores, candidates, n, "sinkhorn"), scores)


def test_rerank_options_are_checked_and_reach_the_reranker() -> None:
    scores, candidates, _, n = assignment_case()
    np.testing.assert_array_equal(rerank(scores, candidates, n, "sinkhorn", {"tau": 0.2, "iters": 3}),
                                  sinkhorn(scores, candidates, n, 0.2, 3))
    with pytest.raises(TLLError, match="option tau=0: must be at least"):
        rerank(scores, candidates, n, "dual-softmax", {"tau": 0})
    with pytest.raises(TLLError, match="hungarian: unknown option k; settable: none"):
        rerank(scores, candidates, n, "hungarian", {"k": 3})


def test_fusion_of_identical_scores_keeps_the_ranking() -> None:
    scores, _, truth, _ = assignment_case()
    fused = fuse_scores([scores, 3 * scores + 1])
    np.testing.assert_array_equal(np.argsort(fused, 1), np.argsort(scores, 1))


def test_sparse_dual_softmax_equals_the_dense_reference() -> None:
    scores, candidates, _, n = assignment_case(n=30)
    dense = np.full((30, 30), -np.inf)
    np.put_along_axis(dense, candidates, scores.astype(np.float64) / 0.1, axis=1)
    rows = dense - np.logaddexp.reduce(dense, axis=1, keepdims=True)
    columns = dense - np.logaddexp.reduce(dense, axis=0, keepdims=True)
    np.testing.assert_allclose(dual_softmax(scores, candidates, 30, 0.1), np.take_along_axis(rows + columns, candidates, 1),
                               atol=1e-4)


def test_dual_softmax_demotes_a_right_claimed_by_another_left() -> None:
    """Two lefts share candidates a and b; both prefer a, the second only slightly: dual-softmax gives b to it."""
    candidates = np.array([[0, 1] + list(range(2, 20)), [0, 1] + list(range(20, 38))])
    scores = np.full((2, 20), -1.0, dtype=np.float32)
    scores[0, :2] = [0.9, 0.1]
    scores[1, :2] = [0.52, 0.5]
    out = dual_softmax(scores, candidates, 38, 0.05)
    assert out[0].argmax() == 0 and out[1].argmax() == 1
