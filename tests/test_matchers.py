"""Learned matchers on synthetic embeddings, the no-leakage rule, reproducibility and the matcher store."""
from pathlib import Path

import numpy as np
import pytest
import torch

from tll_core.cache import EmbeddingCache
from tll_core.dataset import load_dataset
from tll_core.engine import Engine, Method
from tll_core.errors import TLLError
from tll_core.matchers import (Adaptation, AdaptationCfg, PairClassifier, PairClassifierCfg, Siamese, SiameseCfg,
                               ZeroShot, create_matcher, matcher_part)
from tll_core.matchers.learned import Canonical, Projection, StateMismatch, dropped
from tll_core.evaluation.metrics import evaluate_scores

FAST = dict(epochs=40, patience=40)


def synthetic(n_fit: int = 600, n_val: int = 200, dim: int = 32, noise: float = 0.3, seed: int = 0, kind: str = "mixing"):
    """right = a fixed linear map of left + noise, so that cosine on the raw embeddings is near chance.

    ``mixing``: a random dense map. ``masked``: the map keeps 8 signal dimensions and zeroes the rest,
    where large independent noise is added (a map a shared-weight Siamese tower can also learn).
    """
    rng = np.random.default_rng(seed)
    left = rng.normal(size=(n_fit + n_val, dim)).astype(np.float32)
    if kind == "mixing":
        right = left @ rng.normal(size=(dim, dim)) + noise * rng.normal(size=left.shape)
    else:
        keep = np.zeros(dim)
        keep[:8] = 1
        left[:, 8:] *= 3
        right = left * keep + noise * rng.normal(size=left.shape) + (1 - keep) * 3 * rng.normal(size=left.shape)
    right = right.astype(np.float32)
    val_candidates = np.stack([np.r_[i, rng.choice(np.delete(np.arange(n_val), i), 19, replace=False)] for i in range(n_val)])
    truth = rng.integers(0, 20, size=n_val)
    for i, t in enumerate(truth):
        val_candidates[i, [0, t]] = val_candidates[i, [t, 0]]
    return (left[:n_fit], right[:n_fit]), (left[n_fit:], right[n_fit:], val_candidates, truth)


def top2(matcher, data) -> float:
    (fl, fr), (vl, vr, cand, truth) = data
    matcher.fit(fl, fr)
    return evaluate_scores(matcher.score(vl, vr, cand), truth).top2


def test_adaptation_beats_zero_shot_by_a_wide_margin() -> None:
    data = synthetic()
    zero = top2(ZeroShot("cosine"), data)
    # 15 epochs: top-2 ~0.8 against ~0.1 zero-shot (seeds 0-2: +0.6 or more); 40 epochs took 4 times as long
    adapted = top2(Adaptation(AdaptationCfg(pca_dim=32, shared=False, epochs=15, patience=15)), data)
    assert zero < 0.3 and adapted > zero + 0.4


@pytest.mark.slow
@pytest.mark.parametrize("matcher", [
    Siamese(SiameseCfg(pca_dim=32, lr=3e-3, **FAST)),
    PairClassifier(PairClassifierCfg(pca_dim=32, **FAST)),
    PairClassifier(PairClassifierCfg(pca_dim=32, sampling="1:19", **FAST)),
])
def test_siamese_and_pair_classifier_beat_chance_clearly(matcher) -> None:
    data = synthetic(kind="masked")
    zero = top2(ZeroShot("cosine"), data)
    assert zero < 0.35 and top2(matcher, data) > max(0.3, zero + 0.2)  # chance is 0.10


def test_same_seed_identical_scores_other_seed_different() -> None:
    data = synthetic(n_fit=200, n_val=60)
    (fl, fr), (vl, vr, cand, _) = data
    cfg = AdaptationCfg(pca_dim=16, epochs=5, patience=5)
    a, b, c = Adaptation(cfg), Adaptation(cfg), Adaptation(AdaptationCfg(pca_dim=16, epochs=5, patience=5, seed=1))
    for m in (a, b, c):
        m.fit(fl, fr)
    np.testing.assert_array_equal(a.score(vl, vr, cand), b.score(vl, vr, cand))
    assert not np.array_equal(a.score(vl, vr, cand), c.score(vl, vr, cand))


def test_curves_are_reported_per_epoch() -> None:
    (fl, fr), _ = synthetic(n_fit=200, n_val=60)
    reports = []
    matcher = Adaptation(AdaptationCfg(pca_dim=16, epochs=4, patience=10))
    matcher.fit(fl, fr, reports.append)
    assert [r.epoch for r in reports] == [1, 2, 3, 4]
    assert all(np.isfinite(r.train_loss) and 0 <= r.holdout_top2 <= 1 for r in reports)
    assert matcher.curve.holdout_top2 == [r.holdout_top2 for r in reports]


def test_state_round_trip_gives_the_same_scores() -> None:
    (fl, fr), (vl, vr, cand, _) = synthetic(n_fit=200, n_val=60)
    for matcher, fresh in [(Adaptation(AdaptationCfg(pca_dim=16, epochs=3)), Adaptation(AdaptationCfg(pca_dim=16, epochs=3))),
                           (Siamese(SiameseCfg(pca_dim=16, epochs=3)), Siamese(SiameseCfg(pca_dim=16, epochs=3)))]:
        matcher.fit(fl, fr)
        fresh.load_state(matcher.state())
        np.testing.assert_array_equal(fresh.score(vl, vr, cand), matcher.score(vl, vr, cand))


def test_projection_is_fitted_on_what_it_is_given_only() -> None:
    rng = np.random.default_rng(0)
    fit = rng.normal(size=(100, 8))
    other = rng.normal(size=(100, 8)) + 100
    projection = Projection.fit(fit, 4, whiten=False)
    np.testing.assert_allclose(projection.mean, fit.mean(0), rtol=1e-5)
    assert not np.allclose(Projection.fit(np.concatenate([fit, other]), 4, False).mean, projection.mean)


@pytest.mark.slow
def test_engine_fits_on_the_fit_part_only(demo_dir: Path, monkeypatch: pytest.MonkeyPatch, warm_demo_cache: Path) -> None:
    engine = Engine(load_dataset(demo_dir), EmbeddingCache(warm_demo_cache))
    split = engine.validation(0.25, 0)
    seen: list[np.ndarray] = []
    original = Adaptation.fit

    def spy(self, left, right, callback=None):
        seen.append(left)
        return original(self, left, right, callback)

    monkeypatch.setattr(Adaptation, "fit", spy)
    engine.evaluate(["combined"], methods=[Method("adaptation", options=(("epochs", 2), ("pca_dim", 16)))])
    fit_left = engine.embed([p.left_id for p in split.fit], "combined")
    val_left = engine.embed(list(split.tasks.left_ids), "combined")
    assert len(seen) == 1 and seen[0].shape == fit_left.shape
    np.testing.assert_array_equal(seen[0], fit_left)
    assert not (seen[0][:, None, :] == val_left[None]).all(-1).any()  # no validation left among the fit rows


@pytest.mark.slow
def test_trained_matcher_store_second_run_trains_nothing(demo_dir: Path, warm_demo_cache: Path) -> None:
    method = Method("adaptation", options=(("epochs", 3), ("pca_dim", 16)))
    first = Engine(load_dataset(demo_dir), EmbeddingCache(warm_demo_cache))  # embeddings there, no matcher yet
    rows_a = first.evaluate(["combined"], methods=[method])
    assert first.trained == 1
    second = Engine(load_dataset(demo_dir), EmbeddingCache(warm_demo_cache))
    rows_b = second.evaluate(["combined"], methods=[method])
    assert second.trained == 0 and rows_a == rows_b
    other = Method("adaptation", options=(("epochs", 3), ("pca_dim", 8)))
    second.evaluate(["combined"], methods=[other])
    assert second.trained == 1  # another config is another key


@pytest.mark.slow
def test_flip_augmentation_and_grayscale_use_their_views(demo_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                        warm_demo_cache: Path) -> None:
    engine = Engine(load_dataset(demo_dir), EmbeddingCache(warm_demo_cache))  # the plain views are there already
    split = engine.validation()
    fitted: dict[str, np.ndarray] = {}  # the left rows each matcher was fitted on
    original = Adaptation.fit

    def spy(self, left, right, callback=None):
        fitted["flip" if self.cfg.flip_augment else "gray" if self.cfg.grayscale else "base"] = left
        return original(self, left, right, callback)

    monkeypatch.setattr(Adaptation, "fit", spy)
    base = Method("adaptation", options=(("epochs", 2), ("pca_dim", 16)))
    flip = Method("adaptation", options=(("epochs", 2), ("flip_augment", True), ("pca_dim", 16)))
    gray = Method("adaptation", options=(("epochs", 2), ("grayscale", True), ("pca_dim", 16)))
    rows = engine.evaluate(["combined"], methods=[base, flip, gray])
    assert [r.method for r in rows] == [base.label, flip.label, gray.label]
    lefts = [p.left_id for p in split.fit]
    plain = engine.embed(lefts, "combined")
    mirrored, grey = engine.embed(lefts, "combined", view="flip"), engine.embed(lefts, "combined", view="gray")
    assert not np.allclose(mirrored, plain) and not np.allclose(grey, plain)
    np.testing.assert_array_equal(fitted["base"], plain)
    np.testing.assert_array_equal(fitted["flip"], np.concatenate([plain, mirrored]))  # the mirrored views are extra pairs
    np.testing.assert_array_equal(fitted["gray"], grey)  # fitted on the grey views only
    # and the grey matcher scores the grey views: its row is the one a grey-view score gives
    tasks = split.tasks
    matcher = engine.fit(gray, "combined", split.fit)
    scores = matcher.score(*engine.task_embeddings(tasks, "combined", view="gray"), tasks.candidates)
    assert rows[2].top2 == evaluate_scores(scores, tasks.truth).top2


def test_options_are_checked() -> None:
    assert matcher_part("adaptation").option("temperature").default == pytest.approx(1 / 15)
    assert matcher_part("pair-classifier").option("sampling").choices == ("balanced", "1:19")
    with pytest.raises(TLLError, match="unknown option"):
        create_matcher("adaptation", temprature=0.1)
    with pytest.raises(TLLError, match="choose from balanced, 1:19"):
        create_matcher("pair-classifier", sampling="1:1")


@pytest.mark.parametrize("name", ["adaptation", "siamese", "pair-classifier"])
@pytest.mark.parametrize("holdout,held,left", [(0.99, 40, 0), (0.6, 24, 16)])
def test_a_holdout_that_leaves_too_few_pairs_to_train_on_is_refused_naming_the_counts(
        name: str, holdout: float, held: int, left: int) -> None:
    """Issue 18, defect 5: on old main ``holdout=0.99`` held back every fit pair, trained on none and 'succeeded'."""
    from tll_core.matchers.learned import MIN_FIT_PAIRS, MIN_HELD_BACK, MIN_TRAIN_PAIRS

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(MIN_FIT_PAIRS, 16)).astype(np.float32)
    matcher = create_matcher(name, holdout=holdout, epochs=2, pca_dim=8)
    with pytest.raises(TLLError) as refused:
        matcher.fit(emb, emb + 0.1 * rng.normal(size=emb.shape).astype(np.float32))
    message = str(refused.value)
    assert f"holds back {held} of {MIN_FIT_PAIRS} fit pairs and leaves {left} to train on" in message
    assert f"at least {MIN_TRAIN_PAIRS}" in message and f"at least {MIN_HELD_BACK}" in message
    assert "\n" not in message


def test_the_smallest_split_allowed_trains() -> None:
    from tll_core.matchers.learned import MIN_FIT_PAIRS

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(MIN_FIT_PAIRS, 16)).astype(np.float32)
    matcher = create_matcher("adaptation", holdout=0.5, epochs=2, pca_dim=8)  # 20 held back, 20 to train on
    matcher.fit(emb, emb)
    assert len(matcher.curve.holdout_top2) == 2


# ---------------------------------------------------------------- project(): the space a matcher scores in


def _cosine(left: np.ndarray, right: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    return np.einsum("nd,nkd->nk", unit(left), unit(right)[candidates])


def _member_cosines(matcher: Adaptation, left: np.ndarray, right: np.ndarray,
                    candidates: np.ndarray) -> list[np.ndarray]:
    """Each member's own ``[n, 20]`` cosines, from its side of the matcher's projected lefts and rights."""
    projected_l, projected_r = matcher.projection(left), matcher.projection(right)
    with torch.no_grad():
        return [_cosine(matcher.side(m, projected_l, "left").numpy(), matcher.side(m, projected_r, "right").numpy(),
                        candidates) for m in matcher.model]


def test_project_gives_the_vectors_a_learned_matcher_scores() -> None:
    """Adaptation scores the cosine of its projected lefts and rights; Siamese their negated distance: the
    scores computed from ``project`` are the matcher's own (a map of anything else would not match)."""
    (fl, fr), (vl, vr, cand, _) = synthetic(n_fit=200, n_val=60, dim=16)
    adaptation = Adaptation(AdaptationCfg(pca_dim=12, shared=False, hidden=8, epochs=3, patience=3))
    adaptation.fit(fl, fr)
    pl, pr = adaptation.project(vl, vr)
    assert pl.shape == (60, 12) and pr.shape == (60, 12) and pl.dtype == np.float32
    assert not np.allclose(pl, pr[: len(pl)])  # two maps (shared=False): the sides differ
    np.testing.assert_allclose(_cosine(pl, pr, cand), adaptation.score(vl, vr, cand), atol=1e-5)
    siamese = Siamese(SiameseCfg(pca_dim=12, hidden=16, out_dim=6, epochs=3, patience=3))
    siamese.fit(fl, fr)
    sl, sr = siamese.project(vl, vr)
    assert sl.shape == (60, 6)
    distance = np.linalg.norm(sl[:, None] - sr[cand], axis=-1)
    np.testing.assert_allclose(-distance, siamese.score(vl, vr, cand), atol=1e-4)


def test_project_of_zero_shot_is_the_centred_embeddings_and_before_fit_a_learned_one_refuses() -> None:
    rng = np.random.default_rng(1)
    left, right = rng.normal(size=(10, 4)).astype(np.float32) + 5, rng.normal(size=(30, 4)).astype(np.float32) + 5
    cand = np.stack([rng.choice(30, 20, replace=False) for _ in range(10)])
    centred_l, centred_r = ZeroShot("cosine").project(left, right)
    np.testing.assert_allclose(np.concatenate([centred_l, centred_r]).mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(_cosine(centred_l, centred_r, cand), ZeroShot("cosine").score(left, right, cand), atol=1e-5)
    plain = ZeroShot("cosine", centre=False).project(left, right)
    assert plain[0] is left and plain[1] is right
    with pytest.raises(TLLError, match="before fit"):
        Adaptation().project(left, right)


def test_the_engine_maps_the_matcher_space_of_a_learned_method(demo_dir: Path, warm_demo_cache: Path) -> None:
    """The map's vectors under a learned method are its fitted ``project``; without one, the backbone's."""
    eng = Engine(load_dataset(demo_dir), EmbeddingCache(warm_demo_cache))
    split = eng.validation()
    method = Method("adaptation", (("epochs", 2), ("pca_dim", 8), ("patience", 2)))
    raw = eng.map_vectors(split.tasks, "hog")
    mapped = eng.map_vectors(split.tasks, "hog", method, split.fit)
    fitted = eng.fit(method, "hog", split.fit)
    left, right = eng.task_embeddings(split.tasks, "hog")
    assert raw.shape[0] == mapped.shape[0] and mapped.shape[1] == 8 != raw.shape[1]
    np.testing.assert_allclose(mapped, np.concatenate(fitted.project(left, right)), atol=1e-6)
    coords = eng.embedding_map(split.tasks, "hog", "pca", matcher=method, fit_pairs=split.fit)
    assert coords.shape == (len(mapped), 2) and np.isfinite(coords).all()
    assert not np.allclose(coords, eng.embedding_map(split.tasks, "hog", "pca"))


def test_a_fit_trains_on_one_torch_thread_and_gives_the_process_its_threads_back() -> None:
    """Small matrices gain nothing from a second thread and lose much on a busy machine (bench_engine's fit
    row); the fit sets one thread for itself and restores what the process had, even when it fails."""
    import torch

    (fl, fr), _ = synthetic(n_fit=120)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen: list[int] = []
    try:
        Adaptation(AdaptationCfg(epochs=2, patience=2)).fit(fl, fr, callback=lambda report: seen.append(torch.get_num_threads()))
        assert seen == [1, 1] and torch.get_num_threads() == 2
        with pytest.raises(TLLError):
            Adaptation(AdaptationCfg(epochs=2)).fit(fl[:10], fr[:10])  # too few pairs: refused inside the fit
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_transductive_fit_centres_on_the_unlabelled_images_too_and_a_plain_one_ignores_them() -> None:
    (fl, fr), (vl, vr, candidates, _) = synthetic(n_fit=200, n_val=100)
    unlabelled = np.concatenate([vl, vr]) + 5.0  # shifted: a mean that only they can move
    plain, transductive = Adaptation(AdaptationCfg(**FAST)), Adaptation(AdaptationCfg(transductive=True, **FAST))
    plain.fit(fl, fr, unlabelled=unlabelled)
    transductive.fit(fl, fr, unlabelled=unlabelled)
    alone = Adaptation(AdaptationCfg(**FAST))
    alone.fit(fl, fr)
    np.testing.assert_array_equal(plain.projection.mean, alone.projection.mean)  # not transductive: not used
    n_train = len(fl) - int(round(len(fl) * AdaptationCfg().holdout))  # the pairs not held back for early stopping
    expected = (plain.projection.mean * 2 * n_train + unlabelled.sum(0)) / (2 * n_train + len(unlabelled))
    np.testing.assert_allclose(transductive.projection.mean, expected, rtol=1e-4, atol=1e-4)
    assert not np.allclose(transductive.score(vl, vr, candidates), plain.score(vl, vr, candidates))
    with pytest.raises(TLLError, match="unlabelled"):
        Adaptation(AdaptationCfg(transductive=True, **FAST)).fit(fl, fr, unlabelled=np.full_like(unlabelled, np.nan))


@pytest.mark.slow
def test_the_engine_gives_a_transductive_matcher_the_images_it_scores_and_keys_it_by_them(
        demo_dir: Path, warm_demo_cache: Path) -> None:
    engine = Engine(load_dataset(demo_dir), EmbeddingCache(warm_demo_cache))
    method = Method("adaptation", options=(("epochs", 2), ("pca_dim", 16), ("transductive", True)))
    one, other = engine.validation(0.25, 0), engine.validation(0.25, 1)
    fitted = engine.fit(method, "combined", one.fit, tasks=one.tasks)
    images = np.concatenate(engine.task_embeddings(one.tasks, "combined"))
    fit_left = engine.embed([p.left_id for p in one.fit], "combined")
    fit_right = engine.embed([p.right_id for p in one.fit], "combined")
    hold = held_out_rows(len(one.fit))
    train = np.setdiff1d(np.arange(len(one.fit)), hold)
    expected = np.concatenate([fit_left[train], fit_right[train], images]).mean(0)
    np.testing.assert_allclose(fitted.projection.mean, expected, rtol=1e-4, atol=1e-5)
    keys = {engine.matcher_key(method, "combined", one.fit, tasks) for tasks in (one.tasks, other.tasks, None)}
    assert len(keys) == 3  # each task set (and none) its own trained state
    plain = Method("adaptation", options=(("epochs", 2), ("pca_dim", 16)))
    assert engine.matcher_key(plain, "combined", one.fit, one.tasks) == engine.matcher_key(plain, "combined", one.fit)


def held_out_rows(n_pairs: int, holdout: float = 0.15, seed: int = 0) -> np.ndarray:
    """The pairs a learned matcher holds back for early stopping (its fit's own seeded draw)."""
    n_hold = max(20, int(round(n_pairs * holdout)))
    return np.random.default_rng([seed, 4]).permutation(n_pairs)[:n_hold]


def test_centre_parts_gives_each_block_its_own_mean_and_unit_length_and_survives_a_reload() -> None:
    from tll_core.matchers.learned import StateMismatch, centre_parts

    (fl, fr), (vl, vr, candidates, _) = synthetic(n_fit=200, n_val=60, dim=32)
    offset = np.r_[np.full(8, 50.0), np.zeros(24)].astype(np.float32)  # block 1: a large common mean, little spread
    fl, fr, vl, vr = (x + offset for x in (fl, fr, vl, vr))
    blocks = centre_parts(fl, fl.mean(0), (8, 24))
    np.testing.assert_allclose(np.linalg.norm(blocks[:, :8], axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(blocks[:, 8:], axis=1), 1, rtol=1e-5)
    matcher = Adaptation(AdaptationCfg(centre_parts=True, pca_dim=16, **FAST))
    matcher.fit(fl, fr, parts=(8, 24))
    assert matcher.projection.parts == (8, 24)
    whole = Adaptation(AdaptationCfg(centre_parts=True, pca_dim=16, **FAST))
    whole.fit(fl, fr)  # no sizes given: the whole vector is one block
    assert whole.projection.parts == (32,)
    assert not np.allclose(whole.score(vl, vr, candidates), matcher.score(vl, vr, candidates))
    state = matcher.state()
    again = Adaptation(AdaptationCfg(centre_parts=True, pca_dim=16, **FAST))
    again.load_state(state, dim=32)
    np.testing.assert_array_equal(again.score(vl, vr, candidates), matcher.score(vl, vr, candidates))
    for broken in ({k: v for k, v in state.items() if k != "projection.parts"},
                   {**state, "projection.parts": np.asarray([8, 20], dtype=np.float32)}):
        with pytest.raises(StateMismatch):
            Adaptation(AdaptationCfg(centre_parts=True, pca_dim=16, **FAST)).load_state(broken, dim=32)
    with pytest.raises(TLLError, match="add up to"):
        Adaptation(AdaptationCfg(centre_parts=True, **FAST)).fit(fl, fr, parts=(8, 8))


@pytest.mark.slow
def test_the_engine_gives_a_centre_parts_matcher_its_ensemble_s_blocks(demo_dir: Path, warm_demo_cache: Path) -> None:
    engine = Engine(load_dataset(demo_dir), EmbeddingCache(warm_demo_cache))
    split = engine.validation(0.25, 0)
    method = Method("adaptation", options=(("centre_parts", True), ("epochs", 2), ("pca_dim", 16)))
    fitted = engine.fit(method, "hog+colour-hist", split.fit, tasks=split.tasks)
    assert fitted.projection.parts == (4374, 128) == engine.parts_of("hog+colour-hist")
    direct = Adaptation(AdaptationCfg(centre_parts=True, epochs=2, pca_dim=16))
    direct.fit(engine.embed([p.left_id for p in split.fit], "hog+colour-hist"),
               engine.embed([p.right_id for p in split.fit], "hog+colour-hist"), parts=(4374, 128))
    left, right = engine.task_embeddings(split.tasks, "hog+colour-hist")
    np.testing.assert_array_equal(fitted.score(left, right, split.tasks.candidates),
                                  direct.score(left, right, split.tasks.candidates))


def test_the_stages_backbone_says_its_blocks() -> None:
    from tll_core.backbones.registry import BACKBONES

    cfg = BACKBONES["efficientnet-lite0-stages"]
    assert cfg.parts == (112, 192, 1280) and sum(cfg.parts) == cfg.dim and cfg.stages == (4, 5)
    assert BACKBONES["efficientnet-lite0"].parts == (1280,)


@pytest.mark.parametrize("shape", [(300, 120), (120, 300)])
def test_large_fits_take_the_same_principal_axes_by_the_gram_matrix(shape, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past EXACT_SVD_LIMIT the PCA comes from a partial eigensolver of the Gram matrix (a test set's transductive
    fit took 148 s by the full SVD): the same singular values and axes (up to each axis's sign)."""
    from tll_core.matchers import learned

    rng = np.random.default_rng(5)
    x = rng.normal(size=shape) @ np.diag(np.linspace(3, 0.1, shape[1]))
    x -= x.mean(0)
    exact_sv, exact_vt = learned.principal_axes(x, 40)  # below the limit: LAPACK's SVD
    monkeypatch.setattr(learned, "EXACT_SVD_LIMIT", 0)
    sv, vt = learned.principal_axes(x, 40)
    assert vt.shape == (40, shape[1]) and sv.shape == (40,)
    np.testing.assert_allclose(sv, exact_sv[:40], rtol=1e-10)
    np.testing.assert_allclose(np.abs(np.sum(vt * exact_vt[:40], axis=1)), 1, atol=1e-8)


def test_members_score_the_mean_cosine_of_maps_trained_from_their_own_seeds() -> None:
    """``members=3``: three maps, each from seed, seed+1, seed+2 with its own held-back pairs; the score is the
    mean of their cosines (checked against each member's own projected vectors), the map view shows that mean,
    and a reload scores the same."""
    (fl, fr), (vl, vr, cand, _) = synthetic(n_fit=200, n_val=60, dim=16)
    cfg = dict(pca_dim=12, hidden=8, epochs=6, patience=6)
    trio = Adaptation(AdaptationCfg(members=3, **cfg))
    reports = []
    trio.fit(fl, fr, reports.append)
    assert trio.max_epochs == 18 and [r.epoch for r in reports] == list(range(1, 19))
    assert all(r.epochs == 18 for r in reports) and len(trio.curve.train_loss) == 6  # the curve: the first member's
    members = list(trio.model)
    assert len(members) == 3
    weights = [m.left.net[0].weight.detach().numpy() for m in members]
    assert not np.allclose(weights[0], weights[1]) and not np.allclose(weights[1], weights[2])
    each = _member_cosines(trio, vl, vr, cand)
    scores = trio.score(vl, vr, cand)
    np.testing.assert_allclose(scores, np.mean(each, axis=0), atol=1e-5)
    assert not np.allclose(scores, each[0], atol=1e-3)
    pl, pr = trio.project(vl, vr)
    assert pl.shape == (60, 36)
    np.testing.assert_allclose(_cosine(pl, pr, cand), scores, atol=1e-5)  # the map view shows what is scored
    fresh = Adaptation(AdaptationCfg(members=3, **cfg))
    fresh.load_state(trio.state())
    np.testing.assert_array_equal(fresh.score(vl, vr, cand), scores)
    with pytest.raises(StateMismatch):  # a one-map state is not a three-member one
        one = Adaptation(AdaptationCfg(**cfg))
        one.fit(fl, fr)
        fresh.load_state(one.state())
    # and they learn: on the map the one-map test above learns (top-2 ~0.8 against ~0.1 zero-shot)
    assert top2(Adaptation(AdaptationCfg(pca_dim=32, shared=False, epochs=15, patience=15, members=2)), synthetic()) > 0.5


def test_dropout_zeroes_a_share_of_the_training_inputs_and_only_while_training() -> None:
    """``dropout=p``: each training batch's projected inputs lose a share p of their entries, the rest scaled by
    1 / (1 - p); the fit is reproducible from its seed, differs from the fit without it, still learns, and
    scores (fresh or reloaded) with nothing dropped."""
    ones = torch.ones(200, 50)
    out = dropped(ones, 0.25, torch.Generator().manual_seed(0))
    zero_share = float((out == 0).float().mean())
    assert 0.22 < zero_share < 0.28
    np.testing.assert_allclose(out[out != 0].numpy(), 1 / 0.75)
    assert dropped(ones, 0.0, torch.Generator()) is ones  # none: the very same batch
    matcher = Adaptation(AdaptationCfg(dropout=0.25))
    (fl, fr), (vl, vr, cand, _) = synthetic(n_fit=200, n_val=60, dim=16)
    cfg = dict(pca_dim=12, hidden=8, epochs=6, patience=6)
    fits = []
    for dropout in (0.0, 0.3, 0.3):
        m = Adaptation(AdaptationCfg(dropout=dropout, **cfg))
        m.fit(fl, fr)
        fits.append(m)
    scores = [m.score(vl, vr, cand) for m in fits]
    assert not np.allclose(scores[0], scores[1], atol=1e-4)
    np.testing.assert_array_equal(scores[1], scores[2])  # the masks come from the fit's seed
    fresh = Adaptation(AdaptationCfg(dropout=0.3, **cfg))
    fresh.load_state(fits[1].state())
    np.testing.assert_array_equal(fresh.score(vl, vr, cand), scores[1])
    assert top2(Adaptation(AdaptationCfg(pca_dim=32, shared=False, epochs=15, patience=15, dropout=0.2)),
                synthetic()) > 0.5
    assert "dropout" not in Adaptation(AdaptationCfg()).key_material()["cfg"]
    assert matcher.key_material()["cfg"]["dropout"] == 0.25
    for bad in (1.0, -0.1):
        with pytest.raises(TLLError):
            AdaptationCfg(dropout=bad)


def test_cca_adds_a_closed_form_member_that_finds_the_directions_a_left_and_its_right_share() -> None:
    """``cca=r``: after the trained maps, one member fitted in closed form — the regularised canonical correlation
    map of the fit pairs. On pairs that share 8 of 32 dimensions under louder independent noise it alone (small
    ridge) ranks the truth high where the raw cosine cannot; in the matcher it is one more member (the score is
    the mean of every member's cosine), it needs no seed (other seeds: other trained maps, the same closed-form
    one), a reload scores the same, and a state without it is refused."""
    (fl, fr), (vl, vr, cand, truth) = synthetic(n_fit=300, n_val=100, kind="masked")
    canonical = Canonical(32, 0.01)
    canonical.fit_pairs(fl, fr)
    with torch.no_grad():
        cl, cr = (canonical.left(torch.from_numpy(x)).numpy() for x in (vl, vr))
    raw, alone = evaluate_scores(_cosine(vl, vr, cand), truth).top2, evaluate_scores(_cosine(cl, cr, cand), truth).top2
    assert raw < 0.4 and alone > 0.9, (raw, alone)
    cfg = dict(pca_dim=24, hidden=8, epochs=4, patience=4, members=2, cca=0.7)
    trio = Adaptation(AdaptationCfg(**cfg))
    trio.fit(fl, fr)
    members = list(trio.model)
    assert [isinstance(m, Canonical) for m in members] == [False, False, True]
    each = _member_cosines(trio, vl, vr, cand)
    scores = trio.score(vl, vr, cand)
    np.testing.assert_allclose(scores, np.mean(each, axis=0), atol=1e-5)
    other = Adaptation(AdaptationCfg(seed=5, **cfg))
    other.fit(fl, fr)
    again = _member_cosines(other, vl, vr, cand)
    assert not np.allclose(again[0], each[0], atol=1e-3)  # other seeds, other trained maps,
    np.testing.assert_allclose(again[2], each[2], atol=1e-5)  # the same closed-form one
    fresh = Adaptation(AdaptationCfg(**cfg))
    fresh.load_state(trio.state())
    np.testing.assert_array_equal(fresh.score(vl, vr, cand), scores)
    plain = Adaptation(AdaptationCfg(**{**cfg, "cca": 0.0}))
    plain.fit(fl, fr)
    with pytest.raises(StateMismatch):  # a state without the closed-form member is not this matcher's
        fresh.load_state(plain.state())
    assert "cca" not in Adaptation(AdaptationCfg()).key_material()["cfg"] and trio.key_material()["cfg"]["cca"] == 0.7
    with pytest.raises(TLLError):
        AdaptationCfg(cca=-1.0)
    few = Canonical(32, 1e-20)  # 10 pairs in 32 dimensions, large values, no ridge to speak of: a rank-deficient
    few.fit_pairs(1e4 * fl[:10], 1e4 * fr[:10])  # covariance whose zero eigenvalues round below zero; a finite map
    assert torch.isfinite(few.left.weight).all() and torch.isfinite(few.left.bias).all()


def test_members_is_in_the_key_only_when_there_are_several() -> None:
    """A one-map adaptation keeps the key it had before the option existed (its stored fits stay valid)."""
    one, three = Adaptation(AdaptationCfg()), Adaptation(AdaptationCfg(members=3))
    assert "members" not in one.key_material()["cfg"] and three.key_material()["cfg"]["members"] == 3
    with pytest.raises(TLLError):
        AdaptationCfg(members=0)
