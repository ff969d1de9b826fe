"""20-candidate tasks: from test_candidates.csv, or built from train pairs by a seeded split.

A :class:`TaskSet` holds unique left and right *pools* and, per left, the indices of its 20
candidates in the right pool. Embedding each pool image once and gathering by index keeps all
scoring vectorised.

No order carries the answer. Built from pairs, right *i* of the pool would be left *i*'s truth, and a
re-ranker that resolves ties by index (``linear_sum_assignment`` returns the diagonal on a constant matrix)
would read it: so the right pool is put in a seeded random order (:func:`pool_order`) before anything scores,
and the truth's column among the 20 candidates is seeded too. The test pool (first-appearance order in
``test_candidates.csv``) is shuffled the same way. Ties between scores count against the truth everywhere
(:func:`tll_core.evaluation.metrics.truth_ranks`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..dataset import N_CANDIDATES, Dataset, Pair
from ..errors import DataError

DEFAULT_VAL_FRACTION = 0.25
DEFAULT_SEED = 0
UNKNOWN = -1


@dataclass(frozen=True)
class TaskSet:
    """Lefts, their candidate rights (indices into ``right_ids``) and the truth's position (or -1)."""

    name: str
    left_names: tuple[str, ...]
    left_ids: tuple[str, ...]
    right_names: tuple[str, ...]
    right_ids: tuple[str, ...]
    candidates: np.ndarray  # [n, 20] int, index into the right pool
    truth: np.ndarray  # [n] int in 0..19, or UNKNOWN

    def __len__(self) -> int:
        return len(self.left_ids)

    @property
    def has_truth(self) -> bool:
        return bool(len(self.truth)) and bool((self.truth >= 0).all())

    def candidate_names(self, i: int) -> list[str]:
        return [self.right_names[j] for j in self.candidates[i]]


def truth_rights(tasks: TaskSet) -> np.ndarray:
    """Each left's truth as an index into the right pool (tasks with known truth)."""
    return tasks.candidates[np.arange(len(tasks)), tasks.truth]


@dataclass(frozen=True)
class Split:
    """The fit part (for learned matchers) and the validation tasks built from the held-out pairs."""

    fit: tuple[Pair, ...]
    validation: tuple[Pair, ...]
    tasks: TaskSet
    val_fraction: float
    seed: int


SEED_LIMIT = 2**63  # seeds are whole numbers in [0, 2^63): what numpy's SeedSequence and SQLite both take


def pool_order(n: int, seed: int, salt: int = 3) -> np.ndarray:
    """A seeded random order of ``n`` pool items (numpy's PCG64: the same on every machine)."""
    return np.random.default_rng([seed, salt]).permutation(n)


def _positions(order: np.ndarray) -> np.ndarray:
    """Where each item of the old order stands in ``order``: the inverse permutation."""
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    return position


def candidate_tasks(dataset: Dataset, seed: int = DEFAULT_SEED) -> TaskSet:
    """The competition's test tasks, as given in test_candidates.csv (truth unknown); the right pool in a
    seeded order (the columns stay as given: a submission lists c0..c19 in the file's order)."""
    if not dataset.test_rows:
        raise DataError(f"{dataset.root}: no test part (test_candidates.csv)")
    right_index: dict[str, int] = {}
    right_names: list[str] = []
    for row in dataset.test_rows:
        for name, image_id in zip(row.candidates, row.candidate_ids):
            if image_id not in right_index:
                right_index[image_id] = len(right_index)
                right_names.append(name)
    candidates = np.array([[right_index[i] for i in row.candidate_ids] for row in dataset.test_rows], dtype=np.int64)
    right_ids = tuple(right_index)
    order = pool_order(len(right_ids), seed)
    return TaskSet(
        name="test",
        left_names=tuple(r.left for r in dataset.test_rows),
        left_ids=tuple(r.left_id for r in dataset.test_rows),
        right_names=tuple(right_names[k] for k in order),
        right_ids=tuple(right_ids[k] for k in order),
        candidates=_positions(order)[candidates],
        truth=np.full(len(dataset.test_rows), UNKNOWN, dtype=np.int64),
    )


def split_pairs(
    pairs: tuple[Pair, ...], val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = DEFAULT_SEED
) -> tuple[tuple[Pair, ...], tuple[Pair, ...]]:
    """A seeded fit/validation split (numpy's PCG64: the same on every machine)."""
    if not 0.0 < val_fraction <= 1.0:
        raise DataError(f"validation fraction must be in (0, 1], got {val_fraction}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < SEED_LIMIT:
        raise DataError(f"seed must be a whole number from 0 to 2^63-1, got {seed}")
    n_val = max(N_CANDIDATES, round(len(pairs) * val_fraction))
    if len(pairs) < N_CANDIDATES:
        raise DataError(f"{len(pairs)} train pairs: at least {N_CANDIDATES} are needed to build 20-candidate tasks")
    n_val = min(n_val, len(pairs))
    order = np.random.default_rng(seed).permutation(len(pairs))
    validation = tuple(pairs[i] for i in sorted(order[:n_val]))
    fit = tuple(pairs[i] for i in sorted(order[n_val:]))
    return fit, validation


def random_foil_tasks(validation: tuple[Pair, ...], seed: int = DEFAULT_SEED, name: str = "validation") -> TaskSet:
    """Each left: its truth plus 19 foils drawn from the *other validation rights*, truth position shuffled."""
    candidates, truth = random_candidates(len(validation), np.random.default_rng([seed, 1]))
    return _task_set(validation, candidates, truth, name, seed)


def random_candidates(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The random-foil protocol on indices: for each of ``n`` pairs, its own right plus 19 others drawn
    without replacement, the truth's position shuffled. Returns ``candidates [n, 20]`` and ``truth [n]``."""
    foils = np.empty((n, N_CANDIDATES - 1), dtype=np.int64)
    for i in range(n):  # draw 19 distinct indices != i
        draw = rng.choice(n - 1, size=N_CANDIDATES - 1, replace=False)
        foils[i] = draw + (draw >= i)
    return _place_truth(foils, rng)


def hard_foil_tasks(
    validation: tuple[Pair, ...], similarity: np.ndarray, seed: int = DEFAULT_SEED, name: str = "validation-hard"
) -> TaskSet:
    """Each left: its truth plus the 19 validation rights most similar to it (``similarity[left, right]``)."""
    n = len(validation)
    if similarity.shape != (n, n):
        raise ValueError(f"similarity must be {n}x{n}, got {similarity.shape}")
    sim = similarity.astype(np.float64, copy=True)
    np.fill_diagonal(sim, -np.inf)
    # equal similarities are ordered by a seeded random key, never by index: on identical images an index
    # order gave every left the same 19 foils, and each truth was then the one right listed only once
    tie_break = np.random.default_rng([seed, 5]).random(sim.shape)
    foils = np.lexsort((tie_break, -sim), axis=1)[:, : N_CANDIDATES - 1]
    return _task_set(validation, *_place_truth(foils, np.random.default_rng([seed, 2])), name, seed)


def _place_truth(foils: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Row i's own index (the truth) joins its 19 foils at a random position."""
    n = len(foils)
    truth = rng.integers(0, N_CANDIDATES, size=n)
    candidates = np.insert(foils, 0, np.arange(n), axis=1)  # truth first, then move it
    for i in range(n):
        candidates[i, [0, truth[i]]] = candidates[i, [truth[i], 0]]
    return candidates, truth.astype(np.int64)


def _task_set(pairs: tuple[Pair, ...], candidates: np.ndarray, truth: np.ndarray, name: str, seed: int) -> TaskSet:
    """Tasks over ``pairs`` whose ``candidates`` index the pairs (pair i's right is left i's truth): the right
    pool is put in a seeded order, so that no right's index says whose truth it is."""
    order = pool_order(len(pairs), seed)
    return TaskSet(
        name=name,
        left_names=tuple(p.left for p in pairs),
        left_ids=tuple(p.left_id for p in pairs),
        right_names=tuple(pairs[k].right for k in order),
        right_ids=tuple(pairs[k].right_id for k in order),
        candidates=_positions(order)[candidates],
        truth=truth,
    )


def validation_split(
    dataset: Dataset, val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = DEFAULT_SEED
) -> Split:
    """The default validation protocol: seeded split, random foils from validation rights only."""
    if not dataset.train_pairs:
        raise DataError(f"{dataset.root}: no train pairs (train.csv, or left/ and right/)")
    fit, validation = split_pairs(dataset.train_pairs, val_fraction, seed)
    return Split(fit, validation, random_foil_tasks(validation, seed), val_fraction, seed)


CONFIRMATION_SALT = 90086  # the confirmation part's own seed: no fold/seed choice can move a pair into it


def confirmation_part(pairs: tuple[Pair, ...], share: float) -> tuple[tuple[Pair, ...], tuple[Pair, ...]]:
    """``(development, confirmation)``: a fixed ``share`` of the pairs set aside for one final check of a
    chosen recipe. Its draw depends on the pairs alone (never on the folds' seeds), so no recipe choice made
    on the development folds has seen it. ``share`` 0: everything is development."""
    if not 0.0 <= share < 1.0:
        raise DataError(f"confirmation share must be in [0, 1), got {share}")
    if share == 0.0:
        return pairs, ()
    n_confirm = max(N_CANDIDATES, round(len(pairs) * share))
    if len(pairs) - n_confirm < 2 * N_CANDIDATES:
        raise DataError(f"{len(pairs)} train pairs: too few to set {n_confirm} aside for confirmation and still "
                        f"build two folds of {N_CANDIDATES}")
    order = np.random.default_rng([CONFIRMATION_SALT, len(pairs)]).permutation(len(pairs))
    confirmation = tuple(pairs[i] for i in sorted(order[:n_confirm]))
    development = tuple(pairs[i] for i in sorted(order[n_confirm:]))
    return development, confirmation


def fold_splits(pairs: tuple[Pair, ...], folds: int, seed: int = DEFAULT_SEED) -> list[Split]:
    """k-fold cross-validation over pairs: the pairs in a seeded order cut into ``folds`` parts; split i
    validates on part i's own pairs (its 20-candidate tasks drawn among them, random foils) and fits on the
    rest. Every pair is validated exactly once per seed; ``folds=2`` is the 50/50 fit/validation ratio."""
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise DataError(f"folds must be a whole number of at least 2, got {folds}")
    if len(pairs) // folds < N_CANDIDATES:
        raise DataError(f"{len(pairs)} pairs in {folds} folds: each fold needs at least {N_CANDIDATES} pairs")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < SEED_LIMIT:
        raise DataError(f"seed must be a whole number from 0 to 2^63-1, got {seed}")
    parts = np.array_split(np.random.default_rng([seed, 7]).permutation(len(pairs)), folds)
    splits = []
    for i, part in enumerate(parts):
        held = set(part.tolist())
        validation = tuple(pairs[j] for j in sorted(held))
        fit = tuple(p for j, p in enumerate(pairs) if j not in held)
        tasks = random_foil_tasks(validation, seed, name=f"fold {i + 1}/{folds}")
        splits.append(Split(fit, validation, tasks, len(validation) / len(pairs), seed))
    return splits


def confirmation_split(development: tuple[Pair, ...], confirmation: tuple[Pair, ...], n_fit: int,
                       seed: int = DEFAULT_SEED) -> Split:
    """The final check of a chosen recipe: fitted on ``n_fit`` development pairs drawn with ``seed`` (the size a
    fold fits on, so the figure is comparable with the folds'), validated on the confirmation pairs' tasks."""
    if not confirmation:
        raise DataError("no confirmation pairs were set aside (share 0)")
    n_fit = min(n_fit, len(development))
    chosen = np.random.default_rng([seed, 8]).permutation(len(development))[:n_fit]
    fit = tuple(development[i] for i in sorted(chosen))
    tasks = random_foil_tasks(confirmation, seed, name="confirmation")
    return Split(fit, confirmation, tasks, len(confirmation) / (len(confirmation) + n_fit), seed)
