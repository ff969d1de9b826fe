"""The user's tags on lefts (tll_core.tags): stored per data folder, checked, counted per tag, exported as CSV."""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from test_analysis import small_tasks
from tll_core.analysis import failures, hits
from tll_core.cache import default_cache_dir
from tll_core.evaluation.metrics import truth_ranks
from tll_core.tags import (CSV_HEADER, MAX_TAG_CHARS, BulkTagging, TagError, TagStore, safe_cell, store_path,
                           tag_table, tags_csv, with_tag)


def _scores(n: int, seed: int = 1) -> np.ndarray:
    """Random [n, 20] scores whose truth (position 0 in ``_tasks``) ranks anywhere from 1 to 20."""
    return np.random.default_rng(seed).normal(size=(n, 20)).astype(np.float32)


def _scores_with_ranks(ranks: list[int]) -> np.ndarray:
    """Scores under which the truth (position 0 in ``_tasks``) of left i ranks exactly ``ranks[i]``."""
    scores = np.tile(-np.arange(20, dtype=np.float32), (len(ranks), 1))
    scores[:, 0] = [0.5 - k for k in ranks]  # above the k-th candidate's -k, below the (k-1)-th's -(k-1)
    return scores


def test_tags_round_trip_across_instances(tmp_path: Path) -> None:
    store = TagStore.open(tmp_path / "data")
    assert store.path.parent == default_cache_dir() / "tags" and store.tags_of("l1") == ()
    assert store.add("l1", "  face ↔ cartoon ") == "face ↔ cartoon"  # trimmed
    store.add("l1", "colour match")
    store.add("l2", "colour match")
    store.add("l1", "colour match")  # again: no change
    again = TagStore.open(tmp_path / "data")  # a new instance reads the file
    assert again.tags_of("l1") == ("colour match", "face ↔ cartoon") and again.tags_of("l2") == ("colour match",)
    assert again.names() == ("colour match", "face ↔ cartoon")
    assert json.loads(store.path.read_text("utf-8")) == {"l1": ["colour match", "face ↔ cartoon"],
                                                         "l2": ["colour match"]}
    again.remove("l2", "colour match")
    again.remove("l2", "never there")
    assert TagStore.open(tmp_path / "data").tags == {"l1": ("colour match", "face ↔ cartoon")}
    assert [p.name for p in store.path.parent.iterdir()] == [store.path.name]  # no temporary file left behind


def test_each_data_folder_has_its_own_tags(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    TagStore.open(tmp_path / "a").add("l1", "label noise")
    assert TagStore.open(tmp_path / "b").tags_of("l1") == ()
    assert TagStore.open(tmp_path / "b" / ".." / "a").tags_of("l1") == ("label noise",)  # the same folder
    os.symlink(tmp_path / "a", tmp_path / "link")
    assert TagStore.open(tmp_path / "link").tags_of("l1") == ("label noise",)
    assert store_path(tmp_path / "a") != store_path(tmp_path / "b")
    assert store_path(tmp_path / "a").name == store_path(tmp_path / "a").name  # stable


@pytest.mark.parametrize("bad", ["", "   ", "x" * (MAX_TAG_CHARS + 1), "bell\x07", "two\nlines", "nul\x00",
                                 "esc\x1b[31m", "bidi\u202etxt", "zero\u200bwidth", "a;b", 7])
def test_bad_tag_text_is_refused_in_one_line(tmp_path: Path, bad) -> None:
    store = TagStore.open(tmp_path / "data")
    store.add("l1", "kept")
    before = store.path.read_bytes()
    with pytest.raises(TagError) as info:
        store.add("l1", bad)
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value) and "\x00" not in str(info.value)
    with pytest.raises(TagError):
        store.retag("l1", ("kept",), ("kept", "fine", bad))  # one bad tag: nothing of the edit is stored
    assert store.path.read_bytes() == before and TagStore.open(tmp_path / "data").tags_of("l1") == ("kept",)
    store.add("l1", "y" * MAX_TAG_CHARS)  # the longest allowed
    assert "y" * MAX_TAG_CHARS in TagStore.open(tmp_path / "data").tags_of("l1")


def test_a_widget_edit_keeps_what_another_tab_added(tmp_path: Path) -> None:
    mine, other = TagStore.open(tmp_path / "data"), TagStore.open(tmp_path / "data")
    mine.add("l1", "a")
    other.add("l1", "b")  # meanwhile, in another tab
    assert mine.retag("l1", shown=("a",), wanted=("c",)) == ("b", "c")  # a removed, c added, b kept
    assert TagStore.open(tmp_path / "data").tags_of("l1") == ("b", "c")
    mine.retag("l1", shown=("b", "c"), wanted=())
    assert TagStore.open(tmp_path / "data").tags == {} and json.loads(mine.path.read_text()) == {}


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[1, 2]", b'{"l1": "not a list"}',
                                     b'{"l1": ["bad\\u0007tag"]}', b"[" * 100_000])
def test_a_damaged_file_is_moved_aside_never_written_over(tmp_path: Path, content: bytes) -> None:
    path = store_path(tmp_path / "data")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    store = TagStore.open(tmp_path / "data")
    assert store.tags == {} and store.notice and str(path) in store.notice and "\n" not in store.notice
    aside = [p for p in path.parent.iterdir() if p.name.startswith(path.name + ".damaged-")]
    assert len(aside) == 1 and aside[0].read_bytes() == content and aside[0].name in store.notice  # kept as it was
    store.add("l1", "fresh")
    assert TagStore.open(tmp_path / "data").tags_of("l1") == ("fresh",) and aside[0].read_bytes() == content


def test_an_unreadable_tags_file_is_an_error_and_nothing_is_written(tmp_path: Path) -> None:
    path = store_path(tmp_path / "data")
    path.mkdir(parents=True)  # a folder where the file should be
    with pytest.raises(TagError, match="not a regular file") as info:
        TagStore.open(tmp_path / "data")
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert path.is_dir() and list(path.parent.iterdir()) == [path]  # nothing moved or written
    outside = tmp_path / "outside.json"
    outside.write_text('{"l1": ["secret"]}')
    path.rmdir()
    path.symlink_to(outside)  # the tags file must be a file in the tags folder
    with pytest.raises(TagError):
        TagStore.open(tmp_path / "data")
    assert outside.read_text() == '{"l1": ["secret"]}'


def test_tag_table_counts_and_top_two_per_tag_follow_the_hits() -> None:
    tasks, scores = small_tasks(12), _scores(12)
    hit, ranks = hits(tasks, scores), truth_ranks(scores, tasks.truth)
    assert 0 < hit.sum() < 12  # both kinds present, so the counts below can be wrong
    store = TagStore(Path("unused.json"))
    groups = {"colour": [0, 1, 2, 3, 4, 5], "shape": [4, 5, 6, 7, 8, 9, 10, 11], "one": [int(np.argmin(ranks))]}
    for tag, lefts in groups.items():
        for i in lefts:
            store.tags[tasks.left_names[i]] = tuple(sorted({*store.tags_of(tasks.left_names[i]), tag}))
    store.tags["not in these tasks"] = ("shape",)
    rows = {r.tag: r for r in tag_table(store, tasks, scores)}
    assert list(rows) == sorted(groups)
    for tag, lefts in groups.items():
        row = rows[tag]
        assert row.lefts == len(lefts) and row.top2_hits == int(hit[lefts].sum())
        assert row.top2 == pytest.approx(hit[lefts].mean()) and row.mean_rank == pytest.approx(ranks[lefts].mean())
    assert rows["shape"].elsewhere == 1 and rows["colour"].elsewhere == 0
    assert rows["one"].top2_hits == 1 and rows["one"].mean_rank == ranks.min()


def test_failures_filtered_by_tag_or_untagged() -> None:
    tasks, scores = small_tasks(12), _scores(12)
    found = failures(tasks, scores)
    assert len(found) >= 3
    store = TagStore(Path("unused.json"), {found[0].left: ("noise",), found[1].left: ("noise", "pose")})
    assert [f.left for f in with_tag(found, store, "noise")] == [found[0].left, found[1].left]
    assert [f.left for f in with_tag(found, store, "pose")] == [found[1].left]
    assert with_tag(found, store, "") == found[2:] and with_tag(found, store, None) == found


def test_safe_cell_defuses_formulas_only() -> None:
    for cell in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\r=x", "=HYPERLINK(\"http://x\")"]:
        assert safe_cell(cell) == "'" + cell
    for cell in ["plain", "a=b", "", "'quoted", "1-2"]:
        assert safe_cell(cell) == cell


def test_tags_csv_names_each_tagged_left_with_its_figures() -> None:
    tasks, scores = small_tasks(8), _scores_with_ranks([1, 2, 3, 20, 2, 1, 5, 3])
    names = ("=cmd|' /C calc'!A0", "+x", "-y", "@z", "a,b \"q\"\nline", "plain", "untagged", "last")
    tasks = type(tasks)(tasks.name, names, tasks.left_ids, tasks.right_names, tasks.right_ids, tasks.candidates,
                        tasks.truth)
    store = TagStore(Path("unused.json"), {n: ("-a tag", "b tag") for n in names if n != "untagged"})
    store.tags["elsewhere"] = ("x",)
    rows = list(csv.reader(io.StringIO(tags_csv(store, tasks, scores))))
    assert tuple(rows[0]) == CSV_HEADER and len(rows) == 8  # the header and the 7 tagged lefts of these tasks
    ranks, hit = truth_ranks(scores, tasks.truth), hits(tasks, scores)
    truth = scores[np.arange(8), tasks.truth]
    assert list(ranks) == [1, 2, 3, 20, 2, 1, 5, 3]
    for row, i in zip(rows[1:], [0, 1, 2, 3, 4, 5, 7]):
        left = names[i]
        assert row[0] == ("'" + left if left[0] in "=+-@" else left)
        assert row[1] == "'-a tag;b tag"  # sorted, joined by ';', defused
        assert int(row[2]) == ranks[i] and row[4] == format(float(truth[i]), ".6g")
        assert float(row[3]) == pytest.approx(scores[i].max() - truth[i], abs=1e-5)
        assert row[5] == ("yes" if hit[i] else "no")
    assert TagStore(Path("unused.json")).tags == {}
    assert tags_csv(TagStore(Path("unused.json")), tasks, scores).splitlines() == [",".join(CSV_HEADER)]


# ------------------------------------------------------------------ bulk tagging and its undo


def test_bulk_tagging_tags_every_left_in_one_action_and_undo_reverses_exactly(tmp_path: Path) -> None:
    store = TagStore.open(tmp_path / "data")
    store.add("l1", "noise")  # l1 carries the tag before: undo must leave it
    store.add("l2", "colour")
    action = store.tag_many(["l1", "l2", "l3", "l2"], "  noise ")
    assert isinstance(action, BulkTagging) and action.tag == "noise"
    assert action.added == ("l2", "l3") and action.asked == 3 and action.carried == 1
    after = TagStore.open(tmp_path / "data").tags  # on the file
    assert after == {"l1": ("noise",), "l2": ("colour", "noise"), "l3": ("noise",)}
    assert store.undo(action) == 2
    assert TagStore.open(tmp_path / "data").tags == {"l1": ("noise",), "l2": ("colour",)}
    assert store.undo(action) == 0  # undone already: nothing left to take off, nothing else touched
    assert TagStore.open(tmp_path / "data").tags == {"l1": ("noise",), "l2": ("colour",)}


def test_undo_after_a_concurrent_single_edit_keeps_that_edit(tmp_path: Path) -> None:
    """Another tab tags and untags lefts between the bulk action and its undo: its edits stay."""
    mine, other = TagStore.open(tmp_path / "data"), TagStore.open(tmp_path / "data")
    action = mine.tag_many(["a", "b", "c"], "blurry")
    other.add("b", "face ↔ cartoon")  # a single edit elsewhere, on a left of the action
    other.retag("c", ("blurry",), ())  # and the bulk tag taken off one left by hand
    other.add("d", "blurry")  # the same tag on a left outside the action
    assert mine.undo(action) == 2  # a and b: c had it no more
    assert TagStore.open(tmp_path / "data").tags == {"b": ("face ↔ cartoon",), "d": ("blurry",)}


@pytest.mark.parametrize("bad", ["", "   ", "a;b", "x" * (MAX_TAG_CHARS + 1), "tab\there"])
def test_a_bad_bulk_tag_is_one_line_and_changes_nothing(tmp_path: Path, bad: str) -> None:
    store = TagStore.open(tmp_path / "data")
    store.add("l1", "kept")
    with pytest.raises(TagError) as info:
        store.tag_many(["l1", "l2"], bad)
    assert "\n" not in str(info.value) and str(info.value)
    assert TagStore.open(tmp_path / "data").tags == {"l1": ("kept",)}


def test_bulk_tagging_no_lefts_or_undoing_another_folders_action_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = TagStore.open(tmp_path / "a"), TagStore.open(tmp_path / "b")
    with pytest.raises(TagError, match="no lefts to tag with 'x'"):
        a.tag_many([], "x")
    b.add("l1", "x")
    action = a.tag_many(["l1"], "x")
    with pytest.raises(TagError, match="another data folder"):
        b.undo(action)
    assert b.tags == {"l1": ("x",)} and TagStore.open(tmp_path / "a").tags == {"l1": ("x",)}
