"""Wrong figures are never reported: non-finite scores are errors, options are checked against their
types and ranges, training is seeded locally (concurrent fits agree with sequential ones) and a stored
matcher that does not fit is retrained."""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tll_core.cache import EmbeddingCache
from tll_core.cli import main
from tll_core.dataset import load_dataset
from tll_core.engine import Engine, Method
from tll_core.errors import TLLError
from tll_core.matchers import Adaptation, AdaptationCfg, PairClassifier, PairClassifierCfg, Siamese, SiameseCfg
from tll_core.matchers.learned import TrainingDiverged
from tll_core.evaluation.metrics import NonFiniteScores, evaluate_scores, truth_ranks

CHEAP = ["--backbone", "colour-hist", "--quiet"]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["truth", "foil"])
def test_non_finite_scores_are_an_error_not_a_perfect_rank(bad: float, where: str) -> None:
    scores = np.random.default_rng(0).random((5, 20)).astype(np.float32)
    truth = np.zeros(5, dtype=np.int64)
    scores[3, 0 if where == "truth" else 7] = bad
    with pytest.raises(NonFiniteScores, match="task 3"):
        truth_ranks(scores, truth)
    with pytest.raises(NonFiniteScores):
        evaluate_scores(scores, truth)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=20, max_size=20), min_size=1, max_size=8),
       st.data())
def test_ranks_are_in_1_to_20_by_construction(rows: list[list[float]], data: st.DataObject) -> None:
    scores = np.asarray(rows, dtype=np.float32)
    truth = np.asarray(data.draw(st.lists(st.integers(0, 19), min_size=len(rows), max_size=len(rows))))
    ranks = truth_ranks(scores, truth)
    assert ((ranks >= 1) & (ranks <= 20)).all()
    e = evaluate_scores(scores, truth, n_boot=10)
    assert 1 <= e.mean_rank <= 20 and 0 <= e.top2 <= 1


@pytest.mark.parametrize("option,fragment", [
    ("temperature=0", "temperature=0: must be at least"),
    ("lr=1e8", "lr=1e8: must be at most 10"),
    ("lr=nan", "lr=nan: expected a finite number"),
    ("lr=NaN", "lr=NaN: expected a finite number"),
    ("lr=fast", "lr=fast: expected a number"),
    ("batch_size=0", "batch_size=0: must be at least 2"),
    ("hidden=1.5", "hidden=1.5: expected a whole number"),
    ("pca_dim=abc", "pca_dim=abc: expected a whole number"),
    ("epochs=2.5", "epochs=2.5: expected a whole number"),
    ("epochs=-1", "epochs=-1: must be at least 1"),
    ("holdout=2", "holdout=2: must be below 1"),
    ("holdout=0", "holdout=0: must be above 0"),
    ("whiten=1", "whiten=1: expected true or false"),
    ("seed=-3", "seed=-3: must be at least 0"),
])
def test_bad_matcher_options_are_one_line_exit_2(option: str, fragment: str, demo_dir: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", "--data", str(demo_dir), "--method", "adaptation", "--option", option, *CHEAP])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and err.count("\n") == 1, err


def test_option_types_and_ranges_hold_for_every_matcher() -> None:
    for cfg in (AdaptationCfg, SiameseCfg, PairClassifierCfg):
        cfg()  # the defaults are valid
        with pytest.raises(TLLError, match="epochs"):
            cfg(epochs=0)
    with pytest.raises(TLLError, match="margin=0"):
        SiameseCfg(margin=0)
    with pytest.raises(TLLError, match="negatives"):
        SiameseCfg(negatives=0)
    with pytest.raises(TLLError, match="sampling"):
        PairClassifierCfg(sampling="1:1")


def test_a_whole_float_option_is_the_same_method_as_the_int(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--data", str(demo_dir), "--method", "adaptation", "--option", "epochs=3.0",
                 "--option", "pca_dim=16", "--json", *CHEAP]) == 0
    assert "epochs=3+" in capsys.readouterr().out


@pytest.mark.parametrize("seed", ["-1", "-7"])
def test_negative_seed_is_one_line_exit_2(seed: str, demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", "--data", str(demo_dir), "--seed", seed, *CHEAP])
    err = capsys.readouterr().err
    assert code == 2 and "seed must be" in err and err.count("\n") == 1


def _overflowing(n: int = 120, dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Finite embeddings so large (a broken backbone) that the first layer overflows to infinity."""
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, dim)) * 1e37).astype(np.float32), (rng.normal(size=(n, dim)) * 1e37).astype(np.float32)


@pytest.mark.parametrize("matcher", [
    lambda: Adaptation(AdaptationCfg(pca_dim=0, epochs=3)),
    lambda: Siamese(SiameseCfg(pca_dim=0, epochs=3)),
    lambda: PairClassifier(PairClassifierCfg(pca_dim=0, epochs=3)),
])
def test_training_stops_with_a_message_when_it_diverges(matcher) -> None:
    m = matcher()
    with pytest.raises(TrainingDiverged, match="diverged at epoch 1"):
        m.fit(*_overflowing())
    assert m.model is None  # nothing fitted, so nothing can be scored or stored


def test_non_finite_fit_embeddings_are_refused() -> None:
    left, right = _overflowing()
    left[5, 3] = np.inf
    with pytest.raises(TLLError, match="NaN or infinity"):
        Adaptation(AdaptationCfg(pca_dim=8, epochs=3)).fit(left, right)


def test_a_matcher_giving_nan_scores_yields_no_figure(demo_dir: Path) -> None:
    engine = Engine(load_dataset(demo_dir))
    split = engine.validation()

    class Diverged:
        name = "diverged"

        def score(self, left: np.ndarray, right: np.ndarray, candidates: np.ndarray) -> np.ndarray:
            return np.full(candidates.shape, np.nan, dtype=np.float32)

    with pytest.raises(NonFiniteScores, match="combined, diverged"):
        engine.score(split.tasks, "combined", Diverged())  # type: ignore[arg-type]


def _state(cfg: AdaptationCfg, left: np.ndarray, right: np.ndarray) -> dict[str, np.ndarray]:
    m = Adaptation(cfg)
    m.fit(left, right)
    return m.state()


def test_concurrent_training_stores_what_a_sequential_run_stores() -> None:
    rng = np.random.default_rng(1)
    left = rng.normal(size=(200, 24)).astype(np.float32)
    right = (left + 0.5 * rng.normal(size=left.shape)).astype(np.float32)
    cfg = AdaptationCfg(pca_dim=16, hidden=16, epochs=4, patience=4, seed=3)
    sequential = _state(cfg, left, right)
    results: list[dict[str, np.ndarray]] = []
    stop = threading.Event()

    def meddler() -> None:  # another session seeding and drawing from the global RNG all the while
        k = 0
        while not stop.is_set():
            torch.manual_seed(k)
            torch.rand(64)
            k += 1

    threads = [threading.Thread(target=lambda: results.append(_state(cfg, left, right))) for _ in range(2)]
    noise = threading.Thread(target=meddler)
    noise.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    noise.join()
    assert len(results) == 2
    for state in results:
        assert state.keys() == sequential.keys()
        for name in state:
            np.testing.assert_array_equal(state[name], sequential[name], err_msg=name)


STORED_METHOD = Method("adaptation", options=(("epochs", 3), ("pca_dim", 16)))


@pytest.fixture(scope="module")
def stored_matcher(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory, warm_demo_master: Path):
    """A copy of the warm demo cache in which one engine evaluated STORED_METHOD (its one trained matcher
    stored), with that run's rows. Each test works on its own copy."""
    folder = tmp_path_factory.mktemp("stored") / "c"
    shutil.copytree(warm_demo_master, folder)
    first = Engine(load_dataset(demo_dir), EmbeddingCache(folder))
    rows = first.evaluate(["combined"], methods=[STORED_METHOD])
    assert first.trained == 1
    first.cache.close()
    first.store.close()
    return folder, rows


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["renamed", "reshaped", "nan", "float64", "missing"])
def test_a_stored_matcher_that_does_not_fit_is_retrained(damage: str, stored_matcher, demo_dir: Path, tmp_path: Path) -> None:
    method = STORED_METHOD
    master, rows = stored_matcher
    shutil.copytree(master, tmp_path / "c")
    first = Engine(load_dataset(demo_dir), EmbeddingCache(tmp_path / "c"))
    (key,) = first.store.keys()
    state = first.store.get(key)
    assert state is not None
    name = next(k for k in state if k.startswith("model."))
    if damage == "renamed":
        state["model.renamed"] = state.pop(name)
    elif damage == "reshaped":
        state[name] = state[name][..., :-1].copy()
    elif damage == "nan":
        state[name] = state[name].copy()
        state[name].flat[0] = np.nan
    elif damage == "float64":
        state[name] = state[name].astype(np.float64)
    else:
        del state[name]
    # written with a valid digest for its key (put), so that the store hands it over and what refuses it is the
    # matcher's own check (load_state: names, shapes, float32); a NaN is refused by the store itself
    first.store.put(key, state)
    if damage == "nan":
        assert first.store.get(key) is None
    else:
        assert set(first.store.get(key)) == set(state)
    second = Engine(load_dataset(demo_dir), EmbeddingCache(tmp_path / "c"))
    assert second.evaluate(["combined"], methods=[method]) == rows  # retrained: the same figures
    assert second.trained == 1


# ------------------------------------------------ figures independent of the thread count (issue 18, defect 9)

_FIT_AND_SCORE = """
import hashlib, sys
import numpy as np
from tll_core.matchers import create_matcher
rng = np.random.default_rng(0)
left = rng.normal(size=(800, 1280)).astype(np.float32)
right = (left @ rng.normal(size=(1280, 1280)) * 0.03 + rng.normal(size=left.shape)).astype(np.float32)
candidates = np.stack([np.r_[i, rng.choice(200, 19)] for i in range(200)])
for name in ("adaptation", "siamese", "pair-classifier"):
    matcher = create_matcher(name, epochs=3, patience=3)
    matcher.fit(left[:600], right[:600])
    digest = hashlib.sha256(matcher.score(left[600:], right[600:], candidates).tobytes())
    for key, value in sorted(matcher.state().items()):
        digest.update(key.encode() + np.ascontiguousarray(value).tobytes())
    print(name, digest.hexdigest())
    if len(sys.argv) > 1:
        np.save(f"{sys.argv[1]}/{name}.npy", matcher.score(left[600:], right[600:], candidates))
"""


def _fit_and_score(env_update: dict[str, str], out: Path | None = None) -> list[str]:
    """Fit and score every learned matcher in a fresh interpreter (thread counts and kernel choices are read at
    import), with these environment variables: their digests (and their scores saved under ``out``)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS") and k != "ATEN_CPU_CAPABILITY"}
    env.update(env_update, PYTHONPATH=str(root))
    argv = [sys.executable, "-c", _FIT_AND_SCORE] + ([str(out)] if out else [])
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split("\n")


@pytest.mark.slow
def test_training_and_scoring_are_bit_identical_under_any_thread_count() -> None:
    """Each learned matcher fitted and scored under OMP_NUM_THREADS=1, 2 and 3 stores the same state and gives
    the same scores, bit for bit (old main: numpy's OpenBLAS PCA differed in the last bits with the thread count,
    and so did every score, CSV and stored matcher after it)."""
    digests = {threads: _fit_and_score({"OMP_NUM_THREADS": threads}) for threads in ("1", "2", "3")}
    assert digests["1"] == digests["2"] == digests["3"], digests


@pytest.mark.slow
def test_across_cpu_kernels_scores_differ_only_in_the_last_bits_and_never_in_order(tmp_path: Path) -> None:
    """What the README claims across CPU kinds: torch's default (no SIMD) and AVX2 kernels round differently,
    so scores may differ in the last bits (here under 1e-5 of their range) but every candidate order is the
    same (CI's machines are AVX2 or AVX-512; ``ATEN_CPU_CAPABILITY`` forces the others)."""
    scores = {}
    for kind in ("default", "avx2"):
        (tmp_path / kind).mkdir()
        _fit_and_score({"ATEN_CPU_CAPABILITY": kind}, tmp_path / kind)
        scores[kind] = {n: np.load(tmp_path / kind / f"{n}.npy") for n in ("adaptation", "siamese", "pair-classifier")}
    for name, base in scores["default"].items():
        other = scores["avx2"][name]
        assert np.abs(other - base).max() <= 1e-5 * (base.max() - base.min()), name
        assert (np.argsort(-other, axis=1, kind="stable") == np.argsort(-base, axis=1, kind="stable")).all(), name


@pytest.mark.slow
def test_every_learned_matcher_gives_the_same_csv_on_every_run_and_thread_count(demo_dir: Path, tmp_path: Path) -> None:
    """``submit`` twice on two threads and once on one, with no cache: the same bytes for each learned matcher
    (found by an adversarial pass: a Siamese fit gave another CSV on each run, because indexing's backward
    summed repeated negatives in a varying order)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    for method in ("siamese", "adaptation", "pair-classifier"):
        digests = set()
        for run, threads in enumerate(("2", "2", "1")):
            env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
            env.update(OMP_NUM_THREADS=threads, PYTHONPATH=str(root))
            out = tmp_path / f"{method}-{run}.csv"
            done = subprocess.run([sys.executable, "-m", "tll_core", "submit", "--data", str(demo_dir), "--backbone",
                                   "tiny-image", "--method", method, "--option", "epochs=5", "--rerank", "none",
                                   "--no-cache", "--quiet", "--out", str(out)],
                                  capture_output=True, text=True, env=env, cwd=root, timeout=300)
            assert done.returncode == 0, done.stderr[-2000:]
            digests.add(out.read_bytes())
        assert len(digests) == 1, method
