"""The full-gallery protocol: ranks among all gallery items, its figures, backends and the CLI."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tll_core.evaluation import gallery
from tll_core.cli import main
from tll_core.dataset import load_dataset
from tll_core.errors import TLLError
from tll_core.evaluation.gallery import gallery_metrics, matcher_ranks, matcher_scorer, resolve_backend, scorer_ranks
from tll_core.matchers import ZeroShot, create_matcher
from tll_core.matchers.zero_shot import cosine_scorer, unit_vectors
from tll_core.evaluation.metrics import NonFiniteScores
from tll_core.evaluation.tasks import random_candidates, validation_split


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def cosine_ranks(left: np.ndarray, right: np.ndarray, truth: np.ndarray, *, centre: bool = True, backend: str = "auto",
                 block: int | None = None) -> np.ndarray:
    """Zero-shot cosine's gallery ranks through the engine's path (``matcher_ranks``), or block by block
    (``scorer_ranks`` over zero-shot's own scorer) when ``block`` is given."""
    if block is not None:
        return scorer_ranks(cosine_scorer(*unit_vectors(left, right, centre)), truth, len(right), block=block)
    return matcher_ranks(ZeroShot("cosine", centre=centre), [(left, right)], truth, backend=backend)


def _random(n: int, m: int, d: int, seed: int = 0, noise: float = 1.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gallery vectors, lefts near their truth (a shuffled gallery index), noisy enough to rank anywhere."""
    rng = np.random.default_rng(seed)
    right = rng.normal(size=(m, d)).astype(np.float32)
    truth = rng.permutation(m)[:n]
    left = (right[truth] + noise * rng.normal(size=(n, d))).astype(np.float32)
    return left, right, truth


# ---------------------------------------------------------------- ranks and figures


def test_ranks_by_hand_ties_count_against_truth() -> None:
    right = np.array([[1, 0], [0, 1], [1, 0], [-1, 0]], dtype=np.float32)  # items 0 and 2 are the same
    left = np.array([[1, 0], [0, 1], [1, 0.1], [2, 0]], dtype=np.float32)
    truth = np.array([0, 1, 3, 2])
    # left 0: its truth ties with item 2 -> rank 2; left 1: alone on top; left 2: its truth is last;
    # left 3: truth 2 ties with item 0 -> rank 2
    for backend in ("exact", "auto", *(["faiss"] if gallery.faiss_importable() else [])):
        assert cosine_ranks(left, right, truth, centre=False, backend=backend).tolist() == [2, 1, 4, 2]


def test_constant_scorer_ranks_every_truth_last() -> None:
    ranks = scorer_ranks(lambda start, stop: np.zeros((stop - start, 6), np.float32), np.array([0, 3, 5]), 6, block=2)
    assert ranks.tolist() == [6, 6, 6]


def test_metrics_from_ranks() -> None:
    ranks = np.array([1, 2, 5, 10, 11, 40])
    g = gallery_metrics(ranks, 40)
    assert (g.n, g.pool) == (6, 40)
    assert g.recall_at_1 == pytest.approx(1 / 6) and g.recall_at_5 == pytest.approx(3 / 6)
    assert g.recall_at_10 == pytest.approx(4 / 6) and g.median_rank == 7.5
    assert g.mrr == pytest.approx(np.mean([1, 1 / 2, 1 / 5, 1 / 10, 1 / 11, 1 / 40]))
    assert g.recall_at_1_ci[0] <= g.recall_at_1 <= g.recall_at_1_ci[1]
    with pytest.raises(ValueError):
        gallery_metrics(np.array([1, 41]), 40)  # a rank past the gallery is a bug, never a figure


def test_non_finite_embeddings_are_an_error() -> None:
    left, right, truth = _random(5, 8, 4)
    left[2, 1] = np.nan
    for backend in ("exact", *(["faiss"] if gallery.faiss_importable() else [])):
        with pytest.raises(NonFiniteScores):
            cosine_ranks(left, right, truth, centre=False, backend=backend)
    if gallery.faiss_importable():  # straight to the index, past the matcher
        with pytest.raises(NonFiniteScores):
            gallery.faiss_ranks(left, right, truth)


# ---------------------------------------------------------------- backends and blocks


def test_blockwise_equals_one_block() -> None:
    left, right, truth = _random(57, 90, 16)
    whole = cosine_ranks(left, right, truth, block=10_000)
    assert len(set(whole.tolist())) > 5  # the data spreads the ranks: the comparison means something
    assert np.array_equal(cosine_ranks(left, right, truth, block=7), whole)
    assert np.array_equal(cosine_ranks(left, right, truth, block=1), whole)


def test_cosine_gallery_scores_are_the_tasks_protocols_on_its_candidates() -> None:
    """The gallery's zero-shot cosine (centred) gives each of a left's 20 candidates the score ZeroShot gives."""
    left, right, _ = _random(40, 40, 12)
    candidates, _ = random_candidates(40, np.random.default_rng(1))
    full = cosine_scorer(*unit_vectors(left, right, centre=True))(0, 40)
    tasks = ZeroShot("cosine", centre=True).score(left, right, candidates)
    assert np.allclose(np.take_along_axis(full, candidates, axis=1), tasks, atol=1e-5)


def test_learned_matcher_blockwise_equals_its_own_score() -> None:
    left, right, truth = _random(60, 60, 24, seed=3)
    matcher = create_matcher("adaptation", epochs=2, pca_dim=8)
    matcher.fit(left, right[truth])
    every = np.tile(np.arange(60), (60, 1))
    direct = matcher.score(left, right, every)
    assert np.allclose(matcher_scorer(matcher, left, right)(0, 60), direct, atol=1e-5)
    expected = (direct >= direct[np.arange(60), truth][:, None]).sum(axis=1)
    assert np.array_equal(scorer_ranks(matcher_scorer(matcher, left, right), truth, 60, block=7), expected)
    assert np.array_equal(matcher_ranks(matcher, [(left, right)], truth), expected)


def test_zero_shot_euclidean_centres_once_not_per_block() -> None:
    left, right, truth = _random(30, 50, 8)
    expected = ZeroShot("euclidean", centre=True).score(left, right, np.tile(np.arange(50), (30, 1)))
    ranks = matcher_ranks(ZeroShot("euclidean", centre=True), [(left, right)], truth)
    assert np.array_equal(ranks, (expected >= expected[np.arange(30), truth][:, None]).sum(axis=1))


def test_exact_and_faiss_agree() -> None:
    pytest.importorskip("faiss")
    left, right, truth = _random(200, 300, 32, seed=5, noise=4.0)
    exact = cosine_ranks(left, right, truth, backend="exact")
    assert len(set(exact.tolist())) > 20
    assert np.array_equal(cosine_ranks(left, right, truth, backend="faiss"), exact)
    assert np.array_equal(gallery.faiss_ranks(*unit_vectors(left, right), truth, block=13), exact)
    assert resolve_backend("auto", 300) == "exact" and resolve_backend("auto", gallery.FAISS_THRESHOLD + 1) == "faiss"


def test_faiss_missing_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss raises ImportError, as where it is not installed
    left, right, truth = _random(5, 8, 4)
    with pytest.raises(TLLError, match="pip install faiss-cpu") as info:
        cosine_ranks(left, right, truth, backend="faiss")
    assert "\n" not in str(info.value)
    assert resolve_backend("auto", gallery.FAISS_THRESHOLD + 1) == "exact"
    with pytest.raises(TLLError, match="unknown gallery backend"):
        resolve_backend("annoy", 10)


def test_faiss_refuses_what_it_cannot_search() -> None:
    left, right, truth = _random(5, 8, 4)
    with pytest.raises(TLLError, match="zero-shot cosine only"):
        matcher_ranks(ZeroShot("cosine"), [(left, right)], truth, rerank_name="csls", backend="faiss")


def test_rerank_on_a_gallery_too_large_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    left, right, truth = _random(10, 20, 4)
    assert len(matcher_ranks(ZeroShot("cosine"), [(left, right)], truth, rerank_name="sinkhorn")) == 10
    monkeypatch.setattr(gallery, "MAX_DENSE", 199)
    with pytest.raises(TLLError, match="use --rerank none"):
        matcher_ranks(ZeroShot("cosine"), [(left, right)], truth, rerank_name="sinkhorn")


# ---------------------------------------------------------------- CLI


KEYS = {"backbone", "metric", "method", "recall@1", "recall@5", "recall@10", "median_rank", "mrr", "n", "gallery"}


def test_cli_gallery_json_on_the_demo(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "evaluate", "--data", str(demo_dir), "--protocol", "gallery", "--json",
                         "--backbone", "colour-hist", "--method", "zero-shot", "--rerank", "none", "--quiet")
    assert code == 0, err
    (row,) = json.loads(out)
    n_val = len(validation_split(load_dataset(demo_dir)).validation)
    assert set(row) == KEYS and row["gallery"] == row["n"] == n_val
    assert 0 <= row["recall@1"] <= row["recall@5"] <= row["recall@10"] <= 1
    assert 1 <= row["median_rank"] <= n_val and 1 / n_val <= row["mrr"] <= 1
    assert row["recall@10"] > 10 / n_val  # above chance on the demo's look-alike pairs


def test_cli_gallery_table_and_a_learned_method(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "evaluate", "--data", str(demo_dir), "--protocol", "gallery",
                         "--backbone", "colour-hist", "--method", "adaptation", "--option", "epochs=2",
                         "--option", "pca_dim=16", "--rerank", "none", "--rerank", "csls", "--quiet")
    assert code == 0, err
    header, *lines = out.splitlines()
    assert header.split() == ["backbone", "metric", "method", "R@1", "R@5", "R@10", "medR", "MRR", "n", "gallery"]
    assert [line.split()[2] for line in lines] == ["adaptation+epochs=2+pca_dim=16", "adaptation+epochs=2+pca_dim=16+csls"]


@pytest.mark.parametrize("flag", [["--foils", "hard"], ["--fuse"]])
def test_cli_gallery_refuses_task_only_flags(demo_dir: Path, capsys: pytest.CaptureFixture[str], flag: list[str]) -> None:
    code, out, err = run(capsys, "evaluate", "--data", str(demo_dir), "--protocol", "gallery", *flag,
                         "--backbone", "colour-hist", "--quiet")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "gallery" in err
