from pathlib import Path

import numpy as np
import pytest

from tll_core.dataset import Pair, load_dataset
from tll_core.errors import DataError, TLLError
from tll_core.evaluation.tasks import hard_foil_tasks, random_foil_tasks, split_pairs, candidate_tasks, validation_split


def _pairs(n: int) -> tuple[Pair, ...]:
    return tuple(Pair(f"l{i}", f"r{i}", f"train/left/l{i}.jpg", f"train/right/r{i}.jpg") for i in range(n))


def test_same_seed_same_tasks_other_seed_other_tasks(demo_dir: Path) -> None:
    ds = load_dataset(demo_dir)
    a, b, c = validation_split(ds, 0.5, 7), validation_split(ds, 0.5, 7), validation_split(ds, 0.5, 8)
    assert a.tasks.left_ids == b.tasks.left_ids
    assert np.array_equal(a.tasks.candidates, b.tasks.candidates) and np.array_equal(a.tasks.truth, b.tasks.truth)
    assert a.tasks.left_ids != c.tasks.left_ids or not np.array_equal(a.tasks.candidates, c.tasks.candidates)


def test_fixed_seed_gives_fixed_tasks_on_any_machine() -> None:
    """Pins the protocol: numpy's PCG64 streams are platform-independent, so these never change."""
    _, val = split_pairs(_pairs(40), 0.5, 0)
    tasks = random_foil_tasks(val, 0)
    assert [p.left for p in val][:6] == ["l0", "l1", "l2", "l3", "l4", "l10"]
    assert tasks.truth[:6].tolist() == [15, 1, 6, 17, 13, 7]
    assert tasks.candidates[0, :5].tolist() == [18, 9, 1, 5, 13]  # the pool in its seeded order (since issue 18)
    assert tasks.candidate_names(0)[:5] == ["r28", "r37", "r11", "r4", "r10"]
    assert tasks.right_names[:5] == ("r18", "r11", "r22", "r20", "r2")


def test_foils_never_come_from_the_fit_part() -> None:
    fit, val = split_pairs(_pairs(200), 0.25, 3)
    tasks = random_foil_tasks(val, 3)
    fit_rights = {p.right_id for p in fit}
    used = {tasks.right_ids[j] for j in tasks.candidates.ravel()}
    assert not used & fit_rights
    assert used <= {p.right_id for p in val}
    assert len(fit) == 150 and len(val) == 50
    assert not {p.left for p in fit} & {p.left for p in val}


def test_truth_present_exactly_once_and_at_the_truth_index() -> None:
    tasks = random_foil_tasks(split_pairs(_pairs(100), 1.0, 0)[1], 0)
    for i in range(len(tasks)):
        names = tasks.candidate_names(i)
        assert len(names) == 20 and len(set(names)) == 20
        assert names.count(f"r{tasks.left_names[i][1:]}") == 1
        assert names[tasks.truth[i]] == f"r{tasks.left_names[i][1:]}"
    assert len(set(tasks.truth.tolist())) > 5  # the truth's position is shuffled


def test_hard_foils_are_the_nearest_rights() -> None:
    val = _pairs(30)
    rng = np.random.default_rng(0)
    sim = rng.random((30, 30))
    tasks = hard_foil_tasks(val, sim)
    pair_of = {p.right: k for k, p in enumerate(val)}  # pool index -> pair index (the pool is shuffled)
    for i in range(30):
        cands = [pair_of[tasks.right_names[j]] for j in tasks.candidates[i]]
        foils = [j for k, j in enumerate(cands) if k != tasks.truth[i]]
        others = np.delete(np.arange(30), i)
        expected = set(others[np.argsort(-sim[i, others])[:19]].tolist())
        assert set(foils) == expected and cands[tasks.truth[i]] == i


def test_too_few_pairs_and_bad_fraction() -> None:
    with pytest.raises(DataError, match="at least 20"):
        split_pairs(_pairs(10), 1.0)
    with pytest.raises(DataError, match="validation fraction"):
        split_pairs(_pairs(40), 1.5)


def test_test_tasks_follow_the_csv(kaggle_dir: Path) -> None:
    ds = load_dataset(kaggle_dir)
    tasks = candidate_tasks(ds)
    assert tasks.left_names == ("q000", "q001", "q002") and not tasks.has_truth
    assert tasks.candidate_names(2) == [f"t{i:03d}" for i in range(2, 22)]
    assert len(tasks.right_ids) == 22  # each right embedded once, shared across rows


@pytest.mark.slow
def test_engine_hard_foils_are_harder_than_random(demo_dir: Path, warm_demo_cache: Path) -> None:
    from tll_core.cache import EmbeddingCache
    from tll_core.engine import Engine

    engine = Engine(load_dataset(demo_dir), EmbeddingCache(warm_demo_cache))
    random_row, = engine.evaluate(["combined"], ["cosine"], val_fraction=1.0)
    hard_row, = engine.evaluate(["combined"], ["cosine"], val_fraction=1.0, foils="hard", foil_backbone="combined")
    assert hard_row.n == random_row.n and hard_row.top2 < random_row.top2
    # each left's foils are the 19 validation rights nearest to it (centred cosine), the pool being shuffled
    hard = engine.validation(1.0, foils="hard", foil_backbone="combined").tasks
    left, right = engine.task_embeddings(hard, "combined")
    both = np.concatenate([left, right])
    left, right = left - both.mean(0), right - both.mean(0)
    sim = (left / np.linalg.norm(left, axis=1, keepdims=True)) @ (right / np.linalg.norm(right, axis=1, keepdims=True)).T
    truth = hard.candidates[np.arange(len(hard)), hard.truth]
    for i in range(len(hard)):
        others = np.delete(np.arange(len(right)), truth[i])
        nearest = set(others[np.argsort(-sim[i, others], kind="stable")[:19]].tolist())
        assert set(hard.candidates[i].tolist()) - {truth[i]} == nearest
    with pytest.raises(TLLError, match="unknown foil mode"):
        engine.evaluate(["combined"], ["cosine"], foils="impossible")


# ------------------------------------------------------------------ k folds and the confirmation part


def _left_ids(pairs) -> set[str]:
    return {p.left_id for p in pairs}


def test_folds_validate_every_pair_once_per_seed_and_never_fit_on_it() -> None:
    from tll_core.evaluation.tasks import fold_splits

    pairs = _pairs(103)
    splits = fold_splits(pairs, 3, seed=4)
    assert len(splits) == 3
    seen = [_left_ids(s.validation) for s in splits]
    assert set().union(*seen) == _left_ids(pairs) and sum(map(len, seen)) == 103  # a partition
    for s in splits:
        assert not _left_ids(s.fit) & _left_ids(s.validation)
        assert len(s.fit) + len(s.validation) == 103
        assert set(s.tasks.left_ids) == _left_ids(s.validation)  # tasks drawn among the fold's own pairs
        assert set(s.tasks.right_ids) == {p.right_id for p in s.validation}
    again, other = fold_splits(pairs, 3, seed=4), fold_splits(pairs, 3, seed=5)
    assert [s.validation for s in again] == [s.validation for s in splits]
    assert [s.validation for s in other] != [s.validation for s in splits]


def test_two_folds_are_the_half_and_half_ratio() -> None:
    from tll_core.evaluation.tasks import fold_splits

    assert [(len(s.fit), len(s.validation)) for s in fold_splits(_pairs(80), 2, 0)] == [(40, 40), (40, 40)]


def test_the_confirmation_part_does_not_move_with_the_fold_seed_and_no_fold_sees_it() -> None:
    from tll_core.evaluation.tasks import confirmation_part, confirmation_split, fold_splits

    pairs = _pairs(200)
    development, confirmation = confirmation_part(pairs, 0.2)
    assert len(confirmation) == 40 and not _left_ids(development) & _left_ids(confirmation)
    assert confirmation_part(pairs, 0.2) == (development, confirmation)
    for seed in (0, 1, 2):
        for s in fold_splits(development, 2, seed):
            assert not (_left_ids(s.fit) | _left_ids(s.validation)) & _left_ids(confirmation)
        check = confirmation_split(development, confirmation, 80, seed)
        assert len(check.fit) == 80 and set(check.fit) <= set(development)
        assert set(check.tasks.left_ids) == _left_ids(confirmation)
    assert confirmation_part(pairs, 0.0) == (pairs, ())


@pytest.mark.parametrize("folds", [1, 0, 2.5, True])
def test_a_fold_count_below_two_or_not_whole_is_refused(folds) -> None:
    from tll_core.evaluation.tasks import fold_splits

    with pytest.raises(DataError, match="folds"):
        fold_splits(_pairs(100), folds)


def test_folds_too_small_for_a_task_are_refused() -> None:
    from tll_core.evaluation.tasks import confirmation_part, fold_splits

    with pytest.raises(DataError, match="at least 20"):
        fold_splits(_pairs(50), 3)
    with pytest.raises(DataError, match="confirmation"):
        confirmation_part(_pairs(50), 0.5)
