"""Your own model in the studio (issue 20, item 4): scores and embeddings files in ``<data>/methods/`` (or handed
over in ``$TLL_IMPORTS``, or uploaded in the sidebar) are methods and backbones on every page, on a copy of the
demo with streamlit's AppTest."""
from __future__ import annotations

import re

import csv
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tll_core.engine import Engine
from tll_core.errors import TLLError
from tll_core.imported import imported_names, remove_entry, save_upload
from tll_core.selection import Selection, comparison_choices, leaderboard_selections
from tll_core.submission import HEADER

# each test opens the studio on a copy of the demo (or embeds it): seconds each
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
GOOD_RANK, BAD_RANK = 1, 3  # the truth's rank in a scores file: a top-2 hit, a miss


@pytest.fixture(autouse=True)
def _no_imports_left() -> None:
    """What a test entered is taken out again: the register is the process's."""
    yield
    for kind in ("matcher", "backbone"):
        for name in imported_names(kind):
            remove_entry(kind, name)


@pytest.fixture
def demo_copy(demo_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the demo (the same images: the warm demo cache holds their embeddings)."""
    return Path(shutil.copytree(demo_dir, tmp_path / "demo"))


def validation_tasks(data: Path, seed: int = 0):
    """The tasks the studio's default validation split scores (what `python -m tll_core tasks` writes)."""
    tasks, _ = Engine.open(data).tasks_for("validation", 0.25, seed)
    return tasks


def scores_csv(tasks, hits: int) -> bytes:
    """A scores file in which the first ``hits`` lefts have their truth at rank 1 and the rest at rank 3:
    top-2 is exactly hits / n."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for i, left in enumerate(tasks.left_names):
        order = [c for c in range(20) if c != tasks.truth[i]]  # the foils, best first
        order.insert((GOOD_RANK if i < hits else BAD_RANK) - 1, int(tasks.truth[i]))
        scores = np.empty(20)
        scores[order] = np.arange(20, 0, -1)  # rank k gets 21 - k
        writer.writerow([left, *(f"{s:g}" for s in scores)])
    return out.getvalue().encode()


def embeddings_npz(data: Path, cache_dir: Path | None = None) -> bytes:
    """The demo's ``combined`` vectors of every image, by image id, as an .npz (names, embeddings)."""
    engine = Engine.open(data, cache_dir=cache_dir)
    split, test = engine.validation(), engine.test()
    ids = list(dict.fromkeys([*(p.left_id for p in split.fit), *(p.right_id for p in split.fit),
                              *split.tasks.left_ids, *split.tasks.right_ids, *test.left_ids, *test.right_ids]))
    out = io.BytesIO()
    np.savez(out, names=np.array(ids), embeddings=engine.embed(ids, "combined"))
    return out.getvalue()


def put(data: Path, name: str, content: bytes) -> Path:
    path = data / "methods" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    return path


def open_studio(data: Path, **params: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params.update({"data": str(data), "backbone": "combined", "method": "zero-shot", "options": "[]",
                            "rerank": "none", **params})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def leaderboard(at: AppTest) -> dict[str, dict]:
    return {row["selection"]: row for row in at.dataframe[0].value.to_dict("records")}


def plain(text: str) -> str:
    """A message as the page shows it, without the backslashes that keep it literal (studio.widgets.md)."""
    return text.replace("\\", "")


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


# ------------------------------------------------------------ the selection's own rules (quick)


def test_a_scores_method_is_labelled_without_a_backbone_and_joins_the_leaderboard(demo_copy: Path) -> None:
    from tll_core.imported import add_embeddings, add_scores

    tasks = validation_tasks(demo_copy)
    add_scores(("mine", put(demo_copy, "mine.csv", scores_csv(tasks, 3))))
    add_embeddings(("myemb", put(demo_copy, "myemb.npz", embeddings_npz(demo_copy))))
    sel = Selection(backbone="combined", method="zero-shot", rerank="none", options=())
    mine = Selection(backbone="hog", method="mine", rerank="none", options=())
    assert mine.label == "mine · own" and not mine.uses_backbone and sel.uses_backbone
    assert sel.label == "combined · zero-shot · cosine"  # a built-in's label is as it was
    board = [s.label for s in leaderboard_selections(sel)]
    assert board[0] == sel.label and "mine · own" in board and "myemb · zero-shot · cosine" in board
    offered = [s.label for s in comparison_choices(sel)]
    assert "mine · own" in offered and "myemb · zero-shot · cosine" in offered
    assert mine.sources and sel.sources == ()  # the file a cached answer depends on (and none for a built-in)


# ------------------------------------------------------------ the studio on a demo with methods/


def test_methods_files_are_in_the_leaderboard_with_their_top2(demo_copy: Path, warm_demo_cache: Path) -> None:
    tasks = validation_tasks(demo_copy)
    put(demo_copy, "mine.csv", scores_csv(tasks, hits=5))
    put(demo_copy, "myemb.npz", embeddings_npz(demo_copy))
    at = open_studio(demo_copy)
    _ok(at)
    assert not at.warning, [w.value for w in at.warning]
    assert "mine" in at.sidebar.selectbox(key="w_method").options
    assert "myemb" in at.sidebar.selectbox(key="w_backbone").options
    rows = leaderboard(at)
    assert rows["mine · own"]["top2"] == pytest.approx(5 / len(tasks), abs=1e-12)
    assert rows["mine · own"]["top1"] == pytest.approx(5 / len(tasks), abs=1e-12)
    # the same vectors as combined's: the same figures, under both protocols
    for column in ("top1", "top2", "mrr", "recall@1", "gallery"):
        assert rows["myemb · zero-shot · cosine"][column] == rows["combined · zero-shot · cosine"][column], column
    # scores cannot rank a whole gallery: the row says so (blank), and no error is shown
    assert all(rows["mine · own"][c] is None or np.isnan(rows["mine · own"][c]) for c in ("recall@1", "gallery"))
    assert any("full gallery — mine: imported scores cover 20 candidates" in plain(c.value) for c in at.caption)


def test_a_bad_file_is_one_warning_and_the_rest_works(demo_copy: Path, warm_demo_cache: Path) -> None:
    tasks = validation_tasks(demo_copy)
    put(demo_copy, "mine.csv", scores_csv(tasks, hits=4))
    put(demo_copy, "broken.npz", b"not a zip file at all")
    put(demo_copy, "notes.txt", b"ignored: neither scores nor embeddings")
    at = open_studio(demo_copy)
    _ok(at)
    warnings = [plain(w.value) for w in at.warning]
    assert len(warnings) == 1 and "broken.npz: not a readable .npz (not a zip archive" in warnings[0], warnings
    assert "broken" not in at.sidebar.selectbox(key="w_backbone").options  # not entered
    assert leaderboard(at)["mine · own"]["top2"] == pytest.approx(4 / len(tasks), abs=1e-12)
    at.run()  # a rerun: still one warning (the file is not read again, its problem is kept)
    assert len(at.warning) == 1


def test_a_replaced_scores_file_is_scored_again_and_an_unchanged_one_is_not(
        demo_copy: Path, warm_demo_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import studio.imports as imports
    import tll_core.imported as imported

    reads, entered = [], []  # the file read to score it; the file entered as a method
    real = imported.read_scores
    monkeypatch.setattr(imported, "read_scores", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    real_add = imports.add_scores
    monkeypatch.setattr(imports, "add_scores", lambda *a: entered.append(a) or real_add(*a))
    tasks = validation_tasks(demo_copy)
    path = put(demo_copy, "mine.csv", scores_csv(tasks, hits=2))
    at = open_studio(demo_copy, method="mine")
    assert leaderboard(at)["mine · own"]["top2"] == pytest.approx(2 / len(tasks), abs=1e-12)
    at.switch_page("pages/failures.py").run()  # the selection's own scores (not the leaderboard's)
    assert any(f"**{len(tasks) - 2}** of {len(tasks)} lefts miss the top 2" in m.value for m in at.markdown)
    scored = len(reads)
    assert scored >= 2
    at.run()
    at.switch_page("pages/overview.py").run()
    assert len(reads) == scored  # unchanged: the memo answers, on both pages
    assert len(entered) == 1  # and the file was entered once, not at every run
    replacement = path.with_name("mine.csv.new")
    replacement.write_bytes(scores_csv(tasks, hits=len(tasks)))
    os.replace(replacement, path)  # replaced as an editor or a script would
    at.run()
    _ok(at)
    assert len(reads) > scored and len(entered) == 2
    assert leaderboard(at)["mine · own"]["top2"] == 1.0
    at.switch_page("pages/failures.py").run()
    assert any(f"**0** of {len(tasks)} lefts miss the top 2" in m.value for m in at.markdown)


def test_a_file_taken_away_takes_its_method_away(demo_copy: Path, warm_demo_cache: Path) -> None:
    tasks = validation_tasks(demo_copy)
    path = put(demo_copy, "mine.csv", scores_csv(tasks, hits=2))
    at = open_studio(demo_copy, method="mine")
    assert at.session_state["selection"].method == "mine"
    path.unlink()
    at.run()
    _ok(at)
    assert "mine" not in at.sidebar.selectbox(key="w_method").options
    assert at.session_state["selection"].method != "mine"  # the default method instead
    assert "mine · own" not in leaderboard(at)


def test_files_handed_over_by_the_cli_are_entered(demo_copy: Path, warm_demo_cache: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = validation_tasks(demo_copy)
    scores = tmp_path / "elsewhere" / "run7.csv"
    scores.parent.mkdir()
    scores.write_bytes(scores_csv(tasks, hits=6))
    monkeypatch.setenv("TLL_IMPORTS", json.dumps([["scores", "theirs", str(scores)]]))
    at = open_studio(demo_copy)
    _ok(at)
    assert leaderboard(at)["theirs · own"]["top2"] == pytest.approx(6 / len(tasks), abs=1e-12)
    monkeypatch.setenv("TLL_IMPORTS", "[[\"weights\", \"x\", \"/nowhere\"]]")
    at.run()
    assert [plain(w.value) for w in at.warning] == ['$TLL_IMPORTS entry 1: not ["scores" or "embeddings", NAME, path]']


def test_every_page_takes_your_own_model(demo_copy: Path, warm_demo_cache: Path) -> None:
    """A scores method on Ranked, Failures (and its Tags), Compare and the map; Why says in one line what it
    cannot show, for the scores method and for the imported backbone."""
    tasks = validation_tasks(demo_copy)
    put(demo_copy, "mine.csv", scores_csv(tasks, hits=3))
    put(demo_copy, "myemb.npz", embeddings_npz(demo_copy))
    at = open_studio(demo_copy)  # a built-in selection: Compare offers your own model beside it
    at.switch_page("pages/compare.py").run()
    offered = at.multiselect[0].options
    assert "mine · own" in offered and "myemb · zero-shot · cosine" in offered
    at.sidebar.selectbox(key="w_method").set_value("mine").run()
    for page in ("pages/ranked.py", "pages/failures.py", "pages/compare.py", "pages/embedding_map.py"):
        at.switch_page(page).run()
        _ok(at)
    at.switch_page("pages/failures.py").run()
    assert any(f"**{len(tasks) - 3}** of {len(tasks)} lefts miss the top 2" in m.value and "mine · own" in m.value
               for m in at.markdown)
    at.switch_page("pages/compare.py").run()
    offered = at.multiselect[0].options
    assert "mine · own" in offered and "myemb · zero-shot · cosine" in offered
    at.multiselect[0].set_value(["mine · own", "combined · zero-shot · cosine"]).run()
    _ok(at)
    assert list(at.dataframe[0].value["method"]) == ["mine · own", "combined · zero-shot · cosine"]
    at.switch_page("pages/why.py").run()
    _ok(at)
    assert [plain(i.value) for i in at.info] == [
        "No spatial map for mine · own: its scores were read from a file, not computed from the images' features, "
        "so there are no features to map (the sidebar's backbone plays no part in them)"]
    at.sidebar.selectbox(key="w_method").set_value("zero-shot").run()
    at.sidebar.selectbox(key="w_backbone").set_value("myemb").run()
    _ok(at)
    assert len(at.info) == 1 and "myemb is imported embeddings: there are no feature maps" in plain(at.info[0].value)
    at.switch_page("pages/embedding_map.py").run()
    _ok(at)
    assert at.get("plotly_chart") and any(re.search(r"PCA of the vectors .+ scores with, from myemb", plain(c.value))
                                          for c in at.caption)  # the space zero-shot scores in (centred)


# ------------------------------------------------------------ the upload


def _upload(at: AppTest, name: str, content: bytes) -> AppTest:
    at.sidebar.file_uploader[0].set_value((name, content, "application/octet-stream")).run()
    return at


def test_an_upload_is_saved_into_methods_and_entered(demo_copy: Path, warm_demo_cache: Path) -> None:
    tasks = validation_tasks(demo_copy)
    other = put(demo_copy, "keep.csv", scores_csv(tasks, hits=1))
    at = open_studio(demo_copy)
    content = scores_csv(tasks, hits=7)
    _upload(at, "upped.csv", content)
    _ok(at)
    assert (demo_copy / "methods" / "upped.csv").read_bytes() == content
    assert sorted(p.name for p in (demo_copy / "methods").iterdir()) == ["keep.csv", "upped.csv"]  # no temp file
    assert other.read_bytes() == scores_csv(tasks, hits=1)
    assert any("Added the method upped" in plain(s.value) for s in at.sidebar.success)
    assert "upped" in at.sidebar.selectbox(key="w_method").options
    assert leaderboard(at)["upped · own"]["top2"] == pytest.approx(7 / len(tasks), abs=1e-12)
    _upload(at, "upemb.npz", embeddings_npz(demo_copy))  # a second file: a fresh uploader takes it
    _ok(at)
    assert "upemb" in at.sidebar.selectbox(key="w_backbone").options
    assert (demo_copy / "methods" / "upemb.npz").is_file()


@pytest.mark.parametrize("name, content, says", [
    ("bad.npz", b"PK\x03\x04 but no zip", "bad.npz: not a readable .npz"),
    ("bad.csv", b"left,c0\nx,1\n", "bad.csv"),
    ("combined.npz", None, "combined: already the name of a built-in part or backbone"),
    ("other-seed.csv", "seed 1", "other-seed.csv: made for other tasks"),
    ("evil name.csv", b"left\n", "name 'evil name'"),
])
def test_a_bad_upload_stores_nothing(demo_copy: Path, warm_demo_cache: Path, name: str, content, says: str) -> None:
    tasks = validation_tasks(demo_copy)
    kept = put(demo_copy, "keep.csv", scores_csv(tasks, hits=1))
    if content is None:
        content = embeddings_npz(demo_copy)
    elif content == "seed 1":
        content = scores_csv(validation_tasks(demo_copy, seed=1), hits=1)
    at = open_studio(demo_copy)
    _upload(at, name, content)
    assert not at.exception
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and says in plain(errors[0]), errors
    assert sorted(p.name for p in (demo_copy / "methods").iterdir()) == ["keep.csv"]  # nothing stored, nothing deleted
    assert kept.read_bytes() == scores_csv(tasks, hits=1)
    assert set(imported_names("matcher")) == {"keep"} and imported_names("backbone") == ()


def test_an_upload_that_cannot_be_written_leaves_the_old_file(demo_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Written atomically: a temporary file in methods/, renamed over the target; a failed write leaves the
    old file as it was and no temporary file behind."""
    tasks = validation_tasks(demo_copy)
    old = put(demo_copy, "mine.csv", scores_csv(tasks, hits=1))

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(TLLError, match="mine.csv: cannot write"):
        save_upload(demo_copy, "mine.csv", scores_csv(tasks, hits=9), tasks)
    monkeypatch.undo()
    assert old.read_bytes() == scores_csv(tasks, hits=1)
    assert [p.name for p in old.parent.iterdir()] == ["mine.csv"]
    assert save_upload(demo_copy, "mine.csv", scores_csv(tasks, hits=9), tasks)[:2] == ("matcher", "mine")
    assert old.read_bytes() == scores_csv(tasks, hits=9)
