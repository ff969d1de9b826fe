"""Your own model (issue 20): tasks exported, scores and embeddings imported, evaluated and submitted like any
other method; every bad import one line, exit 2, nothing entered. Offline, on the demo."""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tll_core.backbones.registry import BACKBONES
from tll_core.cli import main
from tll_core.engine import Engine, Method
from tll_core.evaluation.metrics import evaluate_scores
from tll_core.imported import forget_imports, imported_names
from tll_core.register import REGISTER


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    """Imported parts live in the process's register: each test starts and ends without any."""
    forget_imports()
    yield
    forget_imports()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def write_rows(path: Path, table: list[list]) -> Path:
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(table)
    return path


def exported(capsys, demo_dir: Path, tmp_path: Path, *flags: str) -> tuple[Path, Path]:
    tasks, fit = tmp_path / "tasks.csv", tmp_path / "fit.csv"
    code, _, err = run(capsys, "tasks", "--data", str(demo_dir), "--out", str(tasks), "--fit-out", str(fit), "--quiet", *flags)
    assert code == 0, err
    return tasks, fit


def known_rank_scores(tasks_csv: Path, demo_dir: Path, out: Path) -> tuple[Path, np.ndarray]:
    """A scores file whose truth ranks are 1, 2, 3, 4, 1, 2, … in task order (no ties): the figures are known."""
    truth = {left: right for left, right in rows(demo_dir / "train.csv")[1:]}
    table, ranks = [rows(tasks_csv)[0]], []
    for k, (left, *candidates) in enumerate(rows(tasks_csv)[1:]):
        rank = k % 4 + 1
        position = candidates.index(truth[left])
        others = iter(r for r in range(1, 21) if r != rank)
        scores = [21 - (rank if j == position else next(others)) for j in range(20)]
        table.append([left, *map(str, scores)])
        ranks.append(rank)
    return write_rows(out, table), np.array(ranks)


# ---------------------------------------------------------------- export


def test_exported_tasks_are_the_tasks_evaluate_scores(capsys, demo_dir: Path, tmp_path: Path) -> None:
    tasks_csv, fit_csv = exported(capsys, demo_dir, tmp_path, "--val-fraction", "0.5", "--seed", "3")
    split = Engine.open(demo_dir).validation(0.5, 3)
    table = rows(tasks_csv)
    assert table[0] == ["left", *(f"c{i}" for i in range(20))]
    assert [r[0] for r in table[1:]] == list(split.tasks.left_names)
    assert [r[1:] for r in table[1:]] == [split.tasks.candidate_names(i) for i in range(len(split.tasks))]
    assert rows(fit_csv)[1:] == [[p.left, p.right] for p in split.fit]
    assert not {r[0] for r in rows(fit_csv)[1:]} & {r[0] for r in table[1:]}  # no validation left is a fit pair
    test_csv, _ = exported(capsys, demo_dir, tmp_path / "t", "--split", "test")
    assert rows(test_csv) == rows(demo_dir / "test_candidates.csv")  # the test tasks are test_candidates.csv


def test_hard_foil_tasks_export_as_evaluate_builds_them(capsys, demo_dir: Path, tmp_path: Path) -> None:
    tasks_csv, _ = exported(capsys, demo_dir, tmp_path, "--foils", "hard", "--foil-backbone", "colour-hist")
    split = Engine.open(demo_dir).validation(foils="hard", foil_backbone="colour-hist")
    assert [r[1:] for r in rows(tasks_csv)[1:]] == [split.tasks.candidate_names(i) for i in range(len(split.tasks))]


# ---------------------------------------------------------------- scores


def test_scores_round_trip_gives_the_known_figures(capsys, demo_dir: Path, tmp_path: Path) -> None:
    tasks_csv, _ = exported(capsys, demo_dir, tmp_path)
    scores, ranks = known_rank_scores(tasks_csv, demo_dir, tmp_path / "mine.csv")
    code, out, err = run(capsys, "evaluate", "--data", str(demo_dir), "--scores", f"mine={scores}", "--backbone",
                         "colour-hist", "--method", "zero-shot", "--rerank", "none", "--quiet", "--json")
    assert code == 0, err
    builtin, mine = json.loads(out)
    assert (mine["method"], mine["backbone"], mine["metric"]) == ("mine", "-", "own")
    assert mine["top1"] == pytest.approx((ranks <= 1).mean()) and mine["top2"] == pytest.approx((ranks <= 2).mean())
    assert mine["mrr"] == pytest.approx((1 / ranks).mean()) and mine["n"] == len(ranks)
    assert 0 < mine["mcnemar_p_vs_first"] <= 1 and "mcnemar_p_vs_first" not in builtin
    code, out, _ = run(capsys, "evaluate", "--data", str(demo_dir), "--scores", str(scores), "--quiet")
    assert code == 0 and out.splitlines()[1].split()[:3] == ["-", "own", "mine"]  # NAME: the file's stem


def test_scores_for_the_test_tasks_make_a_submission(capsys, demo_dir: Path, tmp_path: Path) -> None:
    table = [rows(demo_dir / "test_candidates.csv")[0]]
    table += [[left, *(str(20 - j) for j in range(20))] for left, *_ in rows(demo_dir / "test_candidates.csv")[1:]]
    scores = write_rows(tmp_path / "test-scores.csv", table)
    code, out, err = run(capsys, "submit", "--data", str(demo_dir), "--scores", f"own={scores}", "--out",
                         str(tmp_path / "sub.csv"), "--quiet")
    assert code == 0, err
    assert [r[0] for r in rows(tmp_path / "sub.csv")] == [r[0] for r in table]
    assert float(rows(tmp_path / "sub.csv")[1][1]) == 20.0


def test_scores_made_for_other_tasks_are_named_as_such(capsys, demo_dir: Path, tmp_path: Path) -> None:
    tasks_csv, _ = exported(capsys, demo_dir, tmp_path, "--seed", "1")
    scores, _ = known_rank_scores(tasks_csv, demo_dir, tmp_path / "seed1.csv")
    code, _, err = run(capsys, "evaluate", "--data", str(demo_dir), "--scores", str(scores), "--quiet")
    assert code == 2 and "seed1.csv: made for other tasks" in err and err.count("\n") == 1, err
    code, out, err = run(capsys, "evaluate", "--data", str(demo_dir), "--scores", str(scores), "--seed", "1", "--quiet")
    assert code == 0, err


def test_the_gallery_protocol_says_imported_scores_cannot_run_there(capsys, demo_dir: Path, tmp_path: Path) -> None:
    tasks_csv, _ = exported(capsys, demo_dir, tmp_path)
    scores, _ = known_rank_scores(tasks_csv, demo_dir, tmp_path / "mine.csv")
    code, out, err = run(capsys, "evaluate", "--data", str(demo_dir), "--scores", str(scores), "--protocol", "gallery",
                         "--quiet", "--json")
    (row,) = json.loads(out)
    assert code == 0 and row["recall@1"] is None and "full-gallery protocol needs" in row["skipped"]


def _bad_scores(kind: str, table: list[list[str]]) -> list[list[str]]:
    header, body = table[0], [list(r) for r in table[1:]]
    if kind == "missing left":
        body = body[1:]
    elif kind == "extra row":
        body.append(["zzz-not-a-left", *body[0][1:]])
    elif kind == "duplicated row":
        body.append(body[0])
    elif kind == "wrong column count":
        body[2] = body[2][:-1]
    elif kind in ("NaN", "inf", "text in a number"):
        body[3][5] = {"NaN": "nan", "inf": "inf", "text in a number": "0.5x"}[kind]
    return [header, *body]


@pytest.mark.parametrize("kind,fragment", [
    ("missing left", "no row for left"),
    ("extra row", "is not a left of these tasks"),
    ("duplicated row", "is listed twice"),
    ("wrong column count", "expected 21 columns, found 20"),
    ("NaN", "(c4): nan is not finite"),
    ("inf", "(c4): inf is not finite"),
    ("text in a number", "(c4): '0.5x' is not a number"),
])
def test_a_bad_scores_file_is_one_line_exit_2(capsys, demo_dir: Path, tmp_path: Path, kind: str, fragment: str) -> None:
    tasks_csv, _ = exported(capsys, demo_dir, tmp_path)
    good, _ = known_rank_scores(tasks_csv, demo_dir, tmp_path / "good.csv")
    bad = write_rows(tmp_path / "bad.csv", _bad_scores(kind, rows(good)))
    code, _, err = run(capsys, "evaluate", "--data", str(demo_dir), "--scores", f"mine={bad}", "--quiet")
    assert code == 2 and fragment in err and "bad.csv" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("content,fragment", [
    (b"", "empty file"),
    (b"left,x\nabc,1\n", "bad.csv: bad header"),
    (b"\xff\xfe\x00bad", "not UTF-8"),
])
def test_an_unreadable_scores_file_is_one_line(capsys, demo_dir: Path, tmp_path: Path, content: bytes, fragment: str) -> None:
    (tmp_path / "bad.csv").write_bytes(content)
    code, _, err = run(capsys, "evaluate", "--data", str(demo_dir), "--scores", str(tmp_path / "bad.csv"), "--quiet")
    assert code == 2 and fragment in err and err.count("\n") == 1, err


def test_a_huge_scores_file_is_refused_unread(capsys, demo_dir: Path, tmp_path: Path) -> None:
    huge = tmp_path / "huge.csv"
    with open(huge, "wb") as fh:
        fh.truncate(40 * 2**20)  # sparse: 40 MiB of nothing, over the 32 MiB cap
    code, _, err = run(capsys, "evaluate", "--data", str(demo_dir), "--scores", str(huge), "--quiet")
    assert code == 2 and "huge.csv" in err and "exceeds" in err and err.count("\n") == 1, err
    assert "huge" not in imported_names("matcher")


def test_a_name_that_is_a_built_in_part_is_refused(capsys, demo_dir: Path, tmp_path: Path) -> None:
    tasks_csv, _ = exported(capsys, demo_dir, tmp_path)
    scores, _ = known_rank_scores(tasks_csv, demo_dir, tmp_path / "s.csv")
    code, _, err = run(capsys, "evaluate", "--data", str(demo_dir), "--scores", f"adaptation={scores}", "--quiet")
    assert code == 2 and "already the name of a built-in part or backbone" in err
    assert REGISTER.get("matcher", "adaptation").metric != "own"  # the built-in is untouched
    code, _, err = run(capsys, "evaluate", "--data", str(demo_dir), "--scores", f"../x={scores}", "--quiet")
    assert code == 2 and "name '../x'" in err


# ---------------------------------------------------------------- embeddings


def export_embeddings(demo_dir: Path, out: Path, backbone: str = "combined", fmt: str = "npz",
                      transform=lambda names, vectors: (names, vectors)) -> Path:
    engine = Engine.open(demo_dir)
    ids = sorted(engine.dataset.image_ids())
    names, vectors = transform(ids, engine.embed(ids, backbone))
    if fmt == "npz":
        np.savez(out, names=np.array(names), embeddings=vectors)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"name": list(names), "embedding": [list(map(float, v)) for v in vectors]}), out)
    return out


@pytest.mark.parametrize("fmt", ["npz", "parquet"])
def test_embeddings_round_trip_through_zero_shot_a_learned_matcher_and_an_ensemble(
        capsys, demo_dir: Path, tmp_path: Path, fmt: str) -> None:
    """The combined descriptor's own vectors, exported and imported: every method gives the built-in's figures."""
    file = export_embeddings(demo_dir, tmp_path / f"mine.{fmt}", fmt=fmt)
    flags = ["--method", "zero-shot", "--method", "adaptation", "--option", "epochs=2", "--option", "pca_dim=16",
             "--rerank", "none", "--rerank", "sinkhorn", "--quiet", "--json", "--cache-dir", str(tmp_path / "c")]
    code, out, err = run(capsys, "evaluate", "--data", str(demo_dir), "--embeddings", f"mine={file}",
                         "--backbone", "mine+colour-hist", *flags)
    assert code == 0, err
    imported = json.loads(out)
    code, out, err = run(capsys, "evaluate", "--data", str(demo_dir), "--backbone", "combined+colour-hist",
                         "--backbone", "combined", *flags)
    builtin = json.loads(out)
    figures = lambda r: {k: r[k] for k in ("method", "top1", "top2", "top5", "mrr", "top2_ci")}  # noqa: E731
    assert [r["backbone"] for r in imported] == ["mine+colour-hist"] * 4 + ["mine"] * 4
    assert [figures(r) for r in imported] == [figures(r) for r in builtin]  # 8 rows, each exactly the same


def test_imported_embeddings_submit_as_the_built_in_backbone_does(capsys, demo_dir: Path, tmp_path: Path) -> None:
    file = export_embeddings(demo_dir, tmp_path / "mine.npz")
    for flags, out in ((["--embeddings", f"mine={file}"], "a.csv"), (["--backbone", "combined"], "b.csv")):
        code, _, err = run(capsys, "submit", "--data", str(demo_dir), *flags, "--method", "zero-shot", "--rerank",
                           "none", "--out", str(tmp_path / out), "--quiet")
        assert code == 0, err
    assert rows(tmp_path / "a.csv") == rows(tmp_path / "b.csv")


def test_imported_embeddings_run_the_gallery_protocol(capsys, demo_dir: Path, tmp_path: Path) -> None:
    file = export_embeddings(demo_dir, tmp_path / "mine.npz")
    argv = ["--method", "zero-shot", "--rerank", "none", "--protocol", "gallery", "--quiet", "--json"]
    code, out, err = run(capsys, "evaluate", "--data", str(demo_dir), "--embeddings", f"mine={file}", *argv)
    code2, out2, _ = run(capsys, "evaluate", "--data", str(demo_dir), "--backbone", "combined", *argv)
    assert code == code2 == 0, err
    assert json.loads(out)[0]["recall@1"] == json.loads(out2)[0]["recall@1"]


def test_a_changed_embeddings_file_is_a_new_backbone(demo_dir: Path, tmp_path: Path) -> None:
    from tll_core.imported import add_embeddings

    file = export_embeddings(demo_dir, tmp_path / "mine.npz")
    engine = Engine.open(demo_dir)
    tasks = engine.validation().tasks
    add_embeddings(f"mine={file}")
    before = engine.score(tasks, "mine", Method.zero_shot())
    export_embeddings(demo_dir, file, backbone="colour-hist")
    with pytest.raises(Exception, match="changed since it was added"):
        Engine.open(demo_dir).score(tasks, "mine", Method.zero_shot())
    add_embeddings(f"mine={file}")
    after = engine.score(tasks, "mine", Method.zero_shot())
    assert np.array_equal(after, engine.score(tasks, "colour-hist", Method.zero_shot())) and not np.array_equal(before, after)


def _pickled(path: Path) -> None:
    np.savez(path, names=np.array(["train/left/a.jpg"], dtype=object), embeddings=np.zeros((1, 3)))


def _bad_npz(kind: str, demo_dir: Path, path: Path) -> None:
    def change(names, vectors):
        names, vectors = list(names), vectors.astype(np.float64)
        if kind == "outside the folder":
            names[0] = "../outside.jpg"
        elif kind == "NaN":
            vectors[4, 1] = np.nan
        elif kind == "duplicated name":
            names[1] = names[0]
        elif kind == "missing image":  # a left of the validation tasks (every train left is one or a fit left)
            keep = [i for i, n in enumerate(names) if not n.startswith("train/")]
            names, vectors = [names[i] for i in keep], vectors[keep]
        elif kind == "absolute name":
            names[0] = "/etc/passwd"
        return names, vectors
    export_embeddings(demo_dir, path, transform=change)


@pytest.mark.parametrize("kind,fragment", [
    ("pickled", "pickled (object) array, which is never loaded"),
    ("outside the folder", "would leave the data folder"),
    ("absolute name", "is not a path relative to the data folder"),
    ("NaN", "is not finite"),
    ("duplicated name", "is listed twice"),
    ("missing image", "no embedding for"),
    ("empty", "empty file"),
    ("no embeddings array", "no array named embeddings"),
    ("not an npz", "not a readable .npz"),
    ("wrong suffix", "must be a .npz or .parquet file"),
])
def test_a_bad_embeddings_file_is_one_line_exit_2_and_enters_nothing(capsys, demo_dir: Path, tmp_path: Path,
                                                                    kind: str, fragment: str) -> None:
    path = tmp_path / ("mine.txt" if kind == "wrong suffix" else "mine.npz")
    if kind == "pickled":
        _pickled(path)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "no embeddings array":
        np.savez(path, names=np.array(["train/left/a.jpg"]))
    elif kind in ("not an npz", "wrong suffix"):
        path.write_bytes(b"PK\x03\x04 not really a zip")
    else:
        _bad_npz(kind, demo_dir, path)
    cache = tmp_path / "cache"
    code, _, err = run(capsys, "evaluate", "--data", str(demo_dir), "--embeddings", f"mine={path}", "--method",
                       "zero-shot", "--quiet", "--cache-dir", str(cache))
    assert code == 2 and fragment in err and err.count("\n") == 1, err
    if kind != "missing image":  # read and refused before anything was entered
        assert "mine" not in BACKBONES
    assert not any(p.is_file() and p.stat().st_size for p in cache.rglob("*") if "matchers" in p.parts)


def test_mixed_lengths_in_a_parquet_file_are_named_by_row(capsys, demo_dir: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "mine.parquet"
    pq.write_table(pa.table({"name": ["train/left/a.jpg", "train/left/b.jpg"], "embedding": [[1.0, 2.0], [1.0]]}), path)
    code, _, err = run(capsys, "evaluate", "--data", str(demo_dir), "--embeddings", str(path), "--quiet")
    assert code == 2 and "mine.parquet row 2: 1 numbers, but row 1 has 2" in err, err


def test_a_huge_embeddings_file_is_refused_unread(capsys, demo_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from tll_core.backbones import imported

    monkeypatch.setattr(imported, "MAX_EMBEDDINGS_BYTES", 1000)
    file = export_embeddings(demo_dir, tmp_path / "big.npz")
    assert os.path.getsize(file) > 1000
    code, _, err = run(capsys, "evaluate", "--data", str(demo_dir), "--embeddings", str(file), "--quiet")
    assert code == 2 and "big.npz" in err and err.count("\n") == 1, err


def test_why_says_in_one_line_what_it_cannot_show_for_imported_embeddings(demo_dir: Path, tmp_path: Path) -> None:
    from tll_core.imported import add_embeddings
    from tll_core.why import explainable_members, no_map_message

    add_embeddings(f"mine={export_embeddings(demo_dir, tmp_path / 'mine.npz')}")
    assert explainable_members("mine") == [] and explainable_members("mine+hog") == ["hog"]
    message = no_map_message("mine")
    assert "imported embeddings" in message and "no feature maps" in message and "\n" not in message


def test_evaluate_scores_of_the_api_matches_the_cli(demo_dir: Path, tmp_path: Path, capsys) -> None:
    tasks_csv, _ = exported(capsys, demo_dir, tmp_path)
    scores, ranks = known_rank_scores(tasks_csv, demo_dir, tmp_path / "mine.csv")
    engine = Engine.open(demo_dir)
    from tll_core.imported import read_scores

    tasks = engine.validation().tasks
    assert evaluate_scores(read_scores(scores, tasks), tasks.truth).top2 == pytest.approx((ranks <= 2).mean())


def test_a_compressed_bomb_is_refused_before_it_unpacks(capsys, demo_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """A small .npz whose arrays unpack past the cap (zeros compress ~1000:1) is refused by its stated sizes."""
    from tll_core.backbones import imported

    monkeypatch.setattr(imported, "MAX_EMBEDDINGS_BYTES", 4 * 2**20)
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, names=np.array(["train/left/a.jpg"] * 1), embeddings=np.zeros((1, 2**21)))
    assert os.path.getsize(path) < 2**20  # small on disk, 16 MiB unpacked
    code, _, err = run(capsys, "evaluate", "--data", str(demo_dir), "--embeddings", str(path), "--quiet")
    assert code == 2 and "bomb.npz: unpacks to" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("argv,fragment", [
    (["--scores", "combined={s}"], "already the name of a built-in part or backbone"),  # a backbone's name
    (["--scores", "own={s}", "--scores", "own={s}"], "own: named twice"),
    (["--embeddings", "zero-shot={e}"], "already the name of a built-in part or backbone"),  # a matcher's name
])
def test_names_are_checked_across_kinds_and_within_a_command(capsys, demo_dir: Path, tmp_path: Path, argv, fragment) -> None:
    tasks_csv, _ = exported(capsys, demo_dir, tmp_path)
    scores, _ = known_rank_scores(tasks_csv, demo_dir, tmp_path / "s.csv")
    embeddings = export_embeddings(demo_dir, tmp_path / "e.npz")
    argv = [a.format(s=scores, e=embeddings) for a in argv]
    code, _, err = run(capsys, "evaluate", "--data", str(demo_dir), *argv, "--quiet")
    assert code == 2 and fragment in err and err.count("\n") == 1, err


def test_a_score_beyond_float32_is_named_by_line_and_column(capsys, demo_dir: Path, tmp_path: Path) -> None:
    tasks_csv, _ = exported(capsys, demo_dir, tmp_path)
    good, _ = known_rank_scores(tasks_csv, demo_dir, tmp_path / "good.csv")
    table = rows(good)
    table[2][3] = "1e39"
    code, _, err = run(capsys, "evaluate", "--data", str(demo_dir), "--scores", str(write_rows(tmp_path / "big.csv", table)), "--quiet")
    assert code == 2 and "big.csv line 3 (c2): 1e39 is beyond float32's range" in err, err


def test_embeddings_naming_images_of_another_folder_are_refused(capsys, demo_dir: Path, tmp_path: Path) -> None:
    path = export_embeddings(demo_dir, tmp_path / "mine.npz",
                             transform=lambda names, vectors: ([*names[:-1], "train/left/not-here.jpg"], vectors))
    code, _, err = run(capsys, "evaluate", "--data", str(demo_dir), "--embeddings", str(path), "--method", "zero-shot", "--quiet")
    assert code == 2 and "'train/left/not-here.jpg' is not an image of" in err and err.count("\n") == 1, err


def test_a_parquet_file_with_no_rows_is_one_line(capsys, demo_dir: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "norows.parquet"
    pq.write_table(pa.table({"name": pa.array([], pa.string()), "embedding": pa.array([], pa.list_(pa.float64()))}), path)
    code, _, err = run(capsys, "evaluate", "--data", str(demo_dir), "--embeddings", str(path), "--quiet")
    assert code == 2 and "norows.parquet: no embeddings in it" in err, err


def test_submit_scores_take_no_method_flags_and_never_overwrite_themselves(capsys, demo_dir: Path, tmp_path: Path) -> None:
    scores = tmp_path / "test.csv"
    code, _, err = run(capsys, "submit", "--data", str(demo_dir), "--scores", str(scores), "--backbone", "hog",
                       "--out", str(tmp_path / "sub.csv"))
    assert code == 2 and "--backbone would not apply" in err, err
    scores.write_text("left\n")
    code, _, err = run(capsys, "submit", "--data", str(demo_dir), "--scores", str(scores), "--out", str(scores))
    assert code == 2 and "is your --scores file" in err and scores.read_text() == "left\n", err


def test_tasks_are_never_written_into_the_data_folder(capsys, demo_dir: Path, tmp_path: Path) -> None:
    for target in (demo_dir / "test_truth.csv", demo_dir / "methods" / "x.csv"):
        before = target.read_bytes() if target.exists() else None
        code, _, err = run(capsys, "tasks", "--data", str(demo_dir), "--out", str(target), "--quiet")
        assert code == 2 and "is inside the data folder" in err, err
        assert (target.read_bytes() if target.exists() else None) == before
    assert not (demo_dir / "methods").exists()


def test_studio_refuses_a_bad_file_before_it_starts(capsys, demo_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from tll_core import api

    monkeypatch.setattr(api.subprocess, "run", lambda *a, **k: pytest.fail("streamlit was started"))
    tasks_csv, _ = exported(capsys, demo_dir, tmp_path, "--seed", "5")
    other, _ = known_rank_scores(tasks_csv, demo_dir, tmp_path / "other.csv")  # for other tasks than the studio's
    code, _, err = run(capsys, "studio", "--data", str(demo_dir), "--scores", str(other))
    assert code == 2 and "made for other tasks" in err and err.count("\n") == 1, err
