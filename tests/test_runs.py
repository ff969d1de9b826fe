"""Runs that persist (tll_core/runs.py): every method evaluated on a folder is kept with its selection, figures,
time, content fingerprint and cache keys; re-running the same selection on the same content replaces it; a
damaged file is moved aside with one line and nothing is lost; the CLI's evaluate records, `runs` lists and
deletes."""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import image, make_kaggle
from tll_core import runs as runs_module
from tll_core.cache import CacheNotice
from tll_core.cli import main
from tll_core.engine import Engine, Method
from tll_core.runs import Run, RunStore, RunsError, run_id, store_path
from tll_core.selection import Selection, leaderboard_rows, record_evaluation, run_selection, selection_of

HOG = Selection(backbone="hog", method="zero-shot", metric="cosine", rerank="none", options=(), rerank_options=(),
                val_fraction=0.5, seed=1)


@pytest.fixture
def eng(tmp_path: Path) -> Engine:
    return Engine.open(make_kaggle(tmp_path / "data", n_pairs=24), cache_dir=tmp_path / "cache")


def _store(eng: Engine) -> RunStore:
    return RunStore.open(eng.dataset.root, eng.cache.directory)


def test_a_leaderboard_row_is_recorded_with_everything_to_reopen_it(eng: Engine) -> None:
    on_tasks, on_gallery = leaderboard_rows(eng, replace(HOG, split="test"))
    [run] = _store(eng).list()
    assert run_selection(run) == HOG  # the validation split, whatever the selection's
    assert run.label == HOG.label and run.content == eng.dataset.fingerprint()
    assert run.figures["tasks"] == on_tasks.as_dict() and run.figures["gallery"] == on_gallery.as_dict()
    assert run.figure("top2") == on_tasks.top2 and run.ci == on_tasks.ci
    assert set(run.seconds) == {"tasks", "gallery"} and run.took > 0
    assert run.embeddings == (eng.backbone("hog").identity,) and run.matcher is None
    assert run.id == run_id(HOG.to_query(every=True), (), run.content)


def test_the_same_selection_on_the_same_content_replaces_its_run(eng: Engine) -> None:
    leaderboard_rows(eng, HOG)
    [first] = _store(eng).list()
    leaderboard_rows(eng, HOG)
    [again] = _store(eng).list()  # replaced, not duplicated
    assert again.id == first.id and again.when >= first.when
    leaderboard_rows(eng, replace(HOG, seed=2))  # another selection: another run, newest first
    assert [run_selection(r).seed for r in _store(eng).list()] == [2, 1]


def test_changed_content_is_a_new_run_and_the_old_one_shows_stale(eng: Engine) -> None:
    leaderboard_rows(eng, HOG)
    first = eng.dataset.fingerprint()
    image(eng.dataset.root / "train/left/l000.jpg", seed=99)  # the same name, other pixels
    leaderboard_rows(eng, HOG)
    runs = _store(eng).list()
    assert len(runs) == 2 and [r.content for r in runs] == [eng.dataset.fingerprint(), first]
    assert runs[1].content != eng.dataset.fingerprint()  # what the studio and `runs` show as stale


def test_record_keeps_the_protocols_it_does_not_carry(eng: Engine) -> None:
    [on_tasks] = eng.evaluate(["hog"], methods=[HOG.to_method()], val_fraction=0.5, seed=1)
    [on_gallery] = eng.evaluate_gallery(["hog"], [HOG.to_method()], val_fraction=0.5, seed=1)
    record_evaluation(eng, ["hog"], [HOG.to_method()], [on_tasks], 0.5, 1)
    record_evaluation(eng, ["hog"], [HOG.to_method()], [on_gallery], 0.5, 1)
    [run] = _store(eng).list()
    assert set(run.figures) == set(run.seconds) == {"tasks", "gallery"}


def test_delete_by_id_or_unique_prefix_and_unknown_is_one_line(eng: Engine) -> None:
    leaderboard_rows(eng, HOG)
    leaderboard_rows(eng, replace(HOG, backbone="colour-hist"))
    store = _store(eng)
    doomed = store.list()[0]
    assert store.delete(doomed.id[:8]) == doomed
    assert [r.id for r in _store(eng).list()] == [r.id for r in store.list()] and len(store.list()) == 1
    with pytest.raises(RunsError, match="no run with id 'nope'"):
        store.delete("nope")
    with pytest.raises(RunsError, match="no run with id ''"):
        store.delete("")  # an empty prefix is not every run
    assert len(_store(eng).list()) == 1


def test_a_damaged_file_is_moved_aside_whole_with_one_line_and_the_store_starts_empty(eng: Engine) -> None:
    leaderboard_rows(eng, HOG)
    path = store_path(eng.dataset.root, eng.cache.directory)
    damaged = path.read_bytes()[:-40]  # a write cut short
    path.write_bytes(damaged)
    store = _store(eng)
    assert store.list() == [] and store.notice is not None and "\n" not in store.notice
    assert "was damaged" in store.notice and "moved aside" in store.notice
    [aside] = store.damaged()
    assert aside.read_bytes() == damaged  # nothing lost: the damaged copy is kept as it was
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        leaderboard_rows(eng, HOG)  # a fresh store takes new runs
    assert len(_store(eng).list()) == 1 and not caught


def test_a_run_of_the_wrong_shape_is_damage_too_not_dropped_silently(eng: Engine) -> None:
    leaderboard_rows(eng, HOG)
    path = store_path(eng.dataset.root, eng.cache.directory)
    data = json.loads(path.read_text())
    data["runs"][0]["when"] = "yesterday"
    path.write_text(json.dumps(data))
    store = _store(eng)
    assert store.list() == [] and "moved aside" in store.notice and len(store.damaged()) == 1


def test_an_unreadable_file_is_an_error_and_nothing_is_written_over_it(eng: Engine) -> None:
    path = store_path(eng.dataset.root, eng.cache.directory)
    path.mkdir(parents=True)  # a folder where the file should be
    with pytest.raises(RunsError, match="runs file .*nothing was changed"):
        _store(eng)
    with warnings.catch_warnings(record=True) as caught:  # the evaluation itself still answers
        warnings.simplefilter("always")
        on_tasks, _ = leaderboard_rows(eng, HOG)
    assert on_tasks.n > 0 and path.is_dir()
    assert [str(w.message) for w in caught if issubclass(w.category, CacheNotice)][0].startswith("runs not recorded")


def test_only_the_newest_runs_are_kept(eng: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs_module, "MAX_RUNS", 2)
    for seed in (1, 2, 3):
        leaderboard_rows(eng, replace(HOG, seed=seed))
    assert [run_selection(r).seed for r in _store(eng).list()] == [3, 2]


def test_an_engine_without_a_cache_records_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLL_CACHE_DIR", str(tmp_path / "default"))
    eng = Engine(Engine.open(make_kaggle(tmp_path / "data"), cache_dir=tmp_path / "c").dataset, cache=None)
    leaderboard_rows(eng, HOG)
    assert not (tmp_path / "default" / "runs").exists()


@pytest.mark.slow
@pytest.mark.parametrize("options", [(("epochs", 2),), (("epochs", 2), ("transductive", True))])
def test_a_learned_run_names_its_stored_matcher(tmp_path: Path, options) -> None:
    """A transductive fit's key covers the task images: the run names that key, the one the store holds."""
    eng = Engine.open(make_kaggle(tmp_path / "data", n_pairs=64), cache_dir=tmp_path / "cache")
    sel = Selection(backbone="colour-hist", method="adaptation", rerank="none", options=options)
    leaderboard_rows(eng, sel)
    [run] = _store(eng).list()
    assert run.matcher is not None and run.matcher in eng.store.keys() and run_selection(run) == sel


def test_selection_of_names_the_method_the_row_was_scored_with() -> None:
    method = Method.zero_shot("euclidean", centre=False, rerank="sinkhorn", rerank_options=(("tau", 0.1),))
    sel = selection_of("hog", method, 0.3, 5)
    assert sel is not None and sel.to_method() == method and (sel.metric, sel.centre, sel.seed) == ("euclidean", False, 5)
    assert selection_of("hog", replace(method, flip_tta=True), 0.3, 5) is None  # no selection says flip averaging


def test_a_run_whose_part_is_gone_does_not_reopen() -> None:
    run = Run("x", "mine · own", {**HOG.to_query(every=True), "method": "not-registered"}, "c", 1.0)
    assert run_selection(run) is None
    assert run_selection(replace(run, query=HOG.to_query(every=True))) == HOG


def test_cli_evaluate_records_runs_that_runs_lists_and_deletes(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               ) -> None:
    data, cache = make_kaggle(tmp_path / "data"), tmp_path / "cache"
    common = ["--data", str(data), "--cache-dir", str(cache)]
    assert main(["evaluate", *common, "--backbone", "hog", "--backbone", "colour-hist", "--metric", "cosine",
                 "--rerank", "none", "--quiet", "--fuse"]) == 0
    capsys.readouterr()
    store = RunStore.open(data, cache)
    assert sorted(r.label for r in store.list()) == ["colour-hist · zero-shot · cosine", "hog · zero-shot · cosine"]
    assert main(["runs", *common]) == 0  # the fusion row is not a selection: not kept
    out = capsys.readouterr().out
    assert "hog · zero-shot · cosine" in out and " no " in out and "fusion" not in out
    assert main(["runs", *common, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {r["stale"] for r in listed} == {False} and all(r["figures"]["tasks"]["top2"] is not None for r in listed)
    doomed = store.list()[0]
    assert main(["runs", *common, "--delete", doomed.id]) == 0
    assert f"deleted run {doomed.id}" in capsys.readouterr().out
    assert [r.id for r in RunStore.open(data, cache).list()] == [r.id for r in store.list() if r.id != doomed.id]
    assert main(["runs", *common, "--delete", doomed.id]) == 2  # gone: one line, exit 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no run with id" in err


def test_cli_hard_foils_and_no_cache_keep_no_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    data, cache = make_kaggle(tmp_path / "data"), tmp_path / "cache"
    monkeypatch.setenv("TLL_CACHE_DIR", str(cache))
    base = ["evaluate", "--data", str(data), "--backbone", "hog", "--metric", "cosine", "--rerank", "none", "--quiet"]
    assert main([*base, "--foils", "hard", "--foil-backbone", "hog"]) == 0
    assert main([*base, "--no-cache"]) == 0
    assert RunStore.open(data, cache).list() == []
    assert main(base) == 0 and len(RunStore.open(data, cache).list()) == 1


def test_runs_file_lives_in_the_cache_not_the_data_folder(eng: Engine) -> None:
    leaderboard_rows(eng, HOG)
    path = store_path(eng.dataset.root, eng.cache.directory)
    assert path.is_file() and path.is_relative_to(eng.cache.directory)
    assert not any("runs" in name for _, _, names in os.walk(eng.dataset.root) for name in names)
