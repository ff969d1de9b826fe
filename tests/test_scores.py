"""Scores a person can read: each part declares what its score means, and every score shown comes with its rank
and its share of the task's 20 standardised scores (tll_core/evaluation/shares.py, tll_core/scores.py)."""
from pathlib import Path

import numpy as np
import pytest

import tll_core.matchers  # noqa: F401  (enters the matchers)
import tll_core.rerank  # noqa: F401  (enters the re-rankers)
from tll_core.analysis import ranked_task
from tll_core.engine import Method
from tll_core.evaluation.metrics import NonFiniteScores
from tll_core.evaluation.shares import task_ranks, task_shares
from tll_core.evaluation.tasks import TaskSet
from tll_core.imported import add_scores, forget_imports
from tll_core.register import REGISTER, Score
from tll_core.scores import reading, score_help, shown_score, why_relation

RNG = np.random.default_rng(7)


def _built_in(kind: str) -> list:
    """The parts the engine itself enters (a test's own toy parts may be in the register too)."""
    return [p for p in REGISTER.parts(kind) if type(p.build).__module__.startswith("tll_core")
            or getattr(p.build, "__module__", "").startswith("tll_core")]


# ---------------------------------------------------------------- share and rank


def test_shares_are_a_softmax_of_the_standardised_scores() -> None:
    scores = RNG.normal(size=(5, 20))
    shares = task_shares(scores)
    z = (scores - scores.mean(1, keepdims=True)) / scores.std(1, keepdims=True)
    assert np.allclose(shares, np.exp(z) / np.exp(z).sum(1, keepdims=True))
    assert np.allclose(shares.sum(1), 1) and (shares > 0).all()
    assert (np.argsort(-shares, 1, kind="stable") == np.argsort(-scores, 1, kind="stable")).all()  # same order


def test_shares_ignore_a_constant_added_and_a_positive_scale() -> None:
    """A cosine and the same cosine minus a hub mean, or Sinkhorn's log weights at another temperature, read alike."""
    scores = RNG.normal(size=(4, 20))
    shifted = scores + np.array([[3.0], [-100.0], [0.5], [1e4]])
    assert np.allclose(task_shares(shifted), task_shares(scores), atol=1e-9)
    assert np.allclose(task_shares(scores * 37.0), task_shares(scores))
    assert (task_ranks(shifted) == task_ranks(scores)).all()


def test_a_constant_row_shares_equally_and_ranks_by_column() -> None:
    scores = np.vstack([np.full(20, 0.3), np.full(20, -5e6), np.zeros(20)]).astype(np.float32)
    assert np.allclose(task_shares(scores), 1 / 20)
    assert (task_ranks(scores) == np.arange(1, 21)).all()


def test_ties_share_equally_and_rank_by_column() -> None:
    row = np.linspace(0, 1, 20)
    row[[4, 9]] = 2.0  # two candidates tie at the top
    row[[0, 19]] = -1.0  # and two at the bottom
    shares, ranks = task_shares(row[None])[0], task_ranks(row[None])[0]
    assert shares[4] == shares[9] and shares[0] == shares[19] and shares[4] == shares.max()
    assert ranks[4] == 1 and ranks[9] == 2  # c4 before c9, as the Ranked page lists them
    assert ranks[0] == 19 and ranks[19] == 20
    assert sorted(ranks) == list(range(1, 21))


def test_one_standout_has_the_largest_share_possible() -> None:
    """One candidate sqrt(19) standard deviations above 19 equal ones: the ceiling the docstring names (~0.8)."""
    row = np.zeros((1, 20))
    row[0, 3] = 1.0
    share = task_shares(row)[0, 3]
    assert share == pytest.approx(np.exp(np.sqrt(19)) / (np.exp(np.sqrt(19)) + 19 * np.exp(-1 / np.sqrt(19))))
    assert 0.75 < share < 0.85


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_score_is_an_error_never_a_share(bad: float) -> None:
    scores = RNG.normal(size=(3, 20))
    scores[1, 5] = bad
    with pytest.raises(NonFiniteScores):
        task_shares(scores)
    with pytest.raises(NonFiniteScores):
        task_ranks(scores)


def test_ranked_task_carries_each_candidates_rank_and_share() -> None:
    n = 6
    tasks = TaskSet("t", tuple(f"l{i}" for i in range(n)), tuple(f"l{i}.png" for i in range(n)),
                    tuple(f"r{j}" for j in range(40)), tuple(f"r{j}.png" for j in range(40)),
                    RNG.integers(0, 40, size=(n, 20)), RNG.integers(0, 20, size=n))
    scores = RNG.normal(size=(n, 20)).astype(np.float32)
    shares, ranks = task_shares(scores), task_ranks(scores)
    task = ranked_task(tasks, scores, 2)
    assert [c.rank for c in task.candidates] == list(range(1, 21))
    assert all(c.rank == ranks[2, c.position] and c.share == pytest.approx(shares[2, c.position]) for c in task.candidates)
    scores[2, 0] = np.nan
    with pytest.raises(NonFiniteScores):
        ranked_task(tasks, scores, 2)


# ---------------------------------------------------------------- what a score means, declared by its part


@pytest.mark.parametrize("kind", ["matcher", "rerank", "metric"])
def test_every_registered_part_declares_what_its_score_means(kind: str) -> None:
    parts = _built_in(kind)
    assert len(parts) >= 3
    for part in parts:
        score = part.score_of()
        assert isinstance(score, Score) and len(score.meaning) > 10, part.name
        assert score.lo is None or score.hi is None or score.lo < score.hi


def test_an_imported_method_declares_its_score(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("left," + ",".join(f"c{k}" for k in range(20)) + "\n" + "a," + ",".join(["0.5"] * 20) + "\n")
    try:
        name = add_scores(f"mine={path}")
        score = REGISTER.get("matcher", name).score_of()
        assert score is not None and "mine.csv" in score.meaning
    finally:
        forget_imports()


def test_zero_shot_takes_its_metrics_range() -> None:
    part = REGISTER.get("matcher", "zero-shot")
    assert (part.score_of().lo, part.score_of().hi) == (-1, 1)  # cosine, the default
    distance = part.score_of({"metric": "euclidean"})
    assert (distance.lo, distance.hi) == (None, 0) and "Euclidean" in distance.meaning


def test_the_score_shown_is_the_re_rankers_when_it_re_ranks() -> None:
    sinkhorn = REGISTER.get("rerank", "sinkhorn").score
    plain, reranked = Method("zero-shot"), Method("zero-shot", rerank="sinkhorn")
    assert sinkhorn.meaning in shown_score(reranked) and sinkhorn.meaning not in shown_score(plain)
    assert "cosine" in shown_score(plain) and "from -1 to 1" in shown_score(plain)
    text = score_help(reranked)
    assert "cosine" in text and sinkhorn.meaning in text and "at most 0" in text and "Share" in text


def test_a_part_without_a_declaration_is_said_to_have_none() -> None:
    from tll_core.register import Part

    REGISTER.add(Part("rerank", "test-silent", build=lambda: None))
    try:
        assert "declares no meaning" in score_help(Method("zero-shot", rerank="test-silent"))
    finally:
        REGISTER.remove("rerank", "test-silent")


def test_why_says_which_score_it_explains_and_how_it_relates() -> None:
    reranked = why_relation(Method("zero-shot", rerank="sinkhorn"), "lite0", "lite0", 0.2114, True, -0.9503, 1, 0.41)
    assert reranked == ("The selection scores this candidate -0.950 (rank 1 of 20, share 41%) after sinkhorn "
                        "re-ranking; the map explains the lite0 member's centred cosine 0.211 (the zero-shot "
                        "similarity, before sinkhorn re-ranking), one input to it.")
    learned = why_relation(Method("adaptation", rerank="sinkhorn"), "lite0+combined", "lite0", 0.2, True, -1, 2, 0.2)
    assert "(the zero-shot similarity, before adaptation and sinkhorn re-ranking), one input to it" in learned
    same = why_relation(Method("zero-shot"), "lite0", "lite0", 0.2114, True, 0.2114, 3, 0.12)
    assert "that very score" in same and "rank 3 of 20" in same
    assert "one input" in why_relation(Method("zero-shot"), "lite0", "lite0", 0.2, False, 0.1, 3, 0.1)  # not centred
    assert "one input" in why_relation(Method("zero-shot"), "lite0+combined", "lite0", 0.2, True, 0.1, 3, 0.1)
    assert "one input" in why_relation(Method("adaptation"), "lite0", "lite0", 0.2, True, 0.1, 3, 0.1)
    euclid = Method("zero-shot", (("metric", "euclidean"),))
    assert "one input" in why_relation(euclid, "lite0", "lite0", 0.2, True, -3.0, 3, 0.1)
    assert reading(-0.95, 1, 0.4149) == "-0.950 (rank 1 of 20, share 41%)"
