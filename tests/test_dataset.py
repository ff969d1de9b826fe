from pathlib import Path

import pytest

from conftest import image, make_kaggle, write_csv
from tll_core.dataset import confined_path, load_dataset
from tll_core.errors import DataError

HEADER = ["left", *[f"c{i}" for i in range(20)]]


def _load_error(root: Path) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(root)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_valid_kaggle_folder_loads(kaggle_dir: Path) -> None:
    ds = load_dataset(kaggle_dir)
    assert ds.layout == "kaggle" and len(ds.train_pairs) == 24 and len(ds.test_rows) == 3
    assert ds.train_pairs[0].left_id == "train/left/l000.jpg"
    assert ds.test_rows[1].candidates[0] == "t001"


def test_train_only_and_test_only_folders_are_valid(kaggle_dir: Path) -> None:
    (kaggle_dir / "test_candidates.csv").unlink()
    assert len(load_dataset(kaggle_dir).test_rows) == 0
    (kaggle_dir / "test_candidates.csv").write_text(",".join(HEADER) + "\nq000," + ",".join(f"t{i:03d}" for i in range(20)) + "\n")
    (kaggle_dir / "train.csv").unlink()
    ds = load_dataset(kaggle_dir)
    assert len(ds.train_pairs) == 0 and len(ds.test_rows) == 1


def test_release_layout_pairs_by_name(tmp_path: Path) -> None:
    for i in range(3):
        image(tmp_path / "left" / f"{i:05d}.jpg", seed=i)
        image(tmp_path / "right" / f"{i:05d}.png", seed=10 + i)
    ds = load_dataset(tmp_path)
    assert ds.layout == "release" and [p.right_id for p in ds.train_pairs][0] == "right/00000.png"


def test_release_layout_unpaired_file_is_named(tmp_path: Path) -> None:
    image(tmp_path / "left" / "a.jpg")
    image(tmp_path / "right" / "b.jpg")
    message = _load_error(tmp_path)
    assert "left/a.jpg: no right image" in message and "right/b.jpg: no left image" in message


def test_missing_folder_and_file_folder(tmp_path: Path) -> None:
    assert "no such data folder" in _load_error(tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    assert "is a file" in _load_error(tmp_path / "f")
    (tmp_path / "empty").mkdir()
    assert "no TLL data found" in _load_error(tmp_path / "empty")


def test_missing_image_names_the_row(kaggle_dir: Path) -> None:
    (kaggle_dir / "train/right/r005.jpg").unlink()
    assert "train.csv line 7: missing image train/right/r005.jpg" in _load_error(kaggle_dir)


def test_corrupt_and_empty_images_are_named(kaggle_dir: Path) -> None:
    (kaggle_dir / "train/left/l001.jpg").write_bytes(b"")
    (kaggle_dir / "test/right/t003.jpg").write_text("this is not a jpeg")
    message = _load_error(kaggle_dir)
    assert "train/left/l001.jpg: empty file" in message
    assert "test/right/t003.jpg: not a readable image" in message


def test_missing_column(kaggle_dir: Path) -> None:
    write_csv(kaggle_dir / "train.csv", [["left"], ["l000"]])
    assert "train.csv: bad header (missing column right" in _load_error(kaggle_dir)


def test_wrong_column_count_names_the_line(kaggle_dir: Path) -> None:
    write_csv(kaggle_dir / "train.csv", [["left", "right"], ["l000", "r000"], ["l001", "r001", "extra"]])
    assert "train.csv line 3: expected 2 columns, found 3" in _load_error(kaggle_dir)


def test_candidate_rows_must_have_20(kaggle_dir: Path) -> None:
    rights = [f"t{i:03d}" for i in range(22)]
    write_csv(kaggle_dir / "test_candidates.csv", [HEADER, ["q000", *rights[:19]], ["q001", *rights[:21]]])
    message = _load_error(kaggle_dir)
    assert "test_candidates.csv line 2: expected 21 columns, found 20" in message
    assert "line 3: expected 21 columns, found 22" in message


def test_duplicate_rows(kaggle_dir: Path) -> None:
    rows = [["left", "right"], ["l000", "r000"], ["l001", "r001"], ["l000", "r000"]]
    write_csv(kaggle_dir / "train.csv", rows)
    assert "train.csv line 4: duplicate left 'l000' (first on line 2)" in _load_error(kaggle_dir)


@pytest.mark.parametrize("name,why", [("../secret", "path separator"), ("/etc/passwd", "path separator"),
                                      ("a\\b", "path separator"), ("..", "escape"), ("bad\x00name", "NUL")])
def test_names_that_escape_the_folder_are_refused(kaggle_dir: Path, name: str, why: str) -> None:
    write_csv(kaggle_dir / "train.csv", [["left", "right"], ["l000", name]])
    message = _load_error(kaggle_dir)
    assert "train.csv line 2" in message and why in message


def test_problems_are_all_counted_on_one_line(kaggle_dir: Path) -> None:
    for i in range(8):
        (kaggle_dir / f"train/left/l{i:03d}.jpg").unlink()
    message = _load_error(kaggle_dir)
    assert message.startswith("8 data problems:") and "and 3 more" in message


def test_bom_and_crlf_are_accepted(kaggle_dir: Path) -> None:
    text = "\ufeffleft,right\r\n" + "".join(f"l{i:03d},r{i:03d}\r\n" for i in range(24))
    (kaggle_dir / "train.csv").write_bytes(text.encode("utf-8"))
    assert len(load_dataset(kaggle_dir).train_pairs) == 24


def test_symlink_out_of_the_folder_is_refused(kaggle_dir: Path, tmp_path: Path) -> None:
    outside = image(tmp_path / "outside.jpg")
    target = kaggle_dir / "train/left/l000.jpg"
    target.unlink()
    target.symlink_to(outside)
    assert "resolves outside the data folder" in _load_error(kaggle_dir)
    with pytest.raises(DataError):
        confined_path(kaggle_dir.resolve(), "../outside.jpg")


def test_missing_image_folder(kaggle_dir: Path) -> None:
    import shutil

    shutil.rmtree(kaggle_dir / "test/right")
    assert "test/right/: folder missing (needed by test_candidates.csv)" in _load_error(kaggle_dir)


def test_candidate_listed_twice(kaggle_dir: Path) -> None:
    rights = [f"t{i:03d}" for i in range(19)]
    write_csv(kaggle_dir / "test_candidates.csv", [HEADER, ["q000", *rights, "t000"]])
    assert "test_candidates.csv line 2: a candidate is listed twice" in _load_error(kaggle_dir)


def test_a_left_written_with_and_without_its_extension_is_a_duplicate(kaggle_dir: Path) -> None:
    """Duplicates go by the file a name resolves to: ``l000`` and ``l000.jpg`` are one left."""
    rows = [["left", "right"], ["l000", "r000"], ["l001", "r001"], ["l000.jpg", "r002"]]
    write_csv(kaggle_dir / "train.csv", rows)
    assert ("train.csv line 4: duplicate left 'l000.jpg' (first on line 2 as 'l000': both are "
            "train/left/l000.jpg)") in _load_error(kaggle_dir)
    rights = [f"t{i:03d}" for i in range(20)]
    write_csv(kaggle_dir / "test_candidates.csv", [HEADER, ["q000.jpg", *rights], ["q001", *rights], ["q000", *rights]])
    assert ("test_candidates.csv line 4: duplicate left 'q000' (first on line 2 as 'q000.jpg': both are "
            "test/left/q000.jpg)") in _load_error(kaggle_dir)


def test_a_right_written_with_and_without_its_extension_is_the_shared_right_notice(kaggle_dir: Path) -> None:
    """A right shared by two lefts is a notice (not refused), however each row writes it; it names both."""
    write_csv(kaggle_dir / "train.csv", [["left", "right"], ["l000", "r000.jpg"], ["l001", "r001"], ["l002", "r000"]])
    ds = load_dataset(kaggle_dir)
    assert len(ds.train_pairs) == 3
    assert ds.warnings == ("train.csv line 4: right 'r000' is also the right of line 2 as 'r000.jpg': both are "
                           "train/right/r000.jpg",)


def test_a_candidate_written_with_and_without_its_extension_is_listed_twice(kaggle_dir: Path) -> None:
    rights = [f"t{i:03d}" for i in range(19)]
    write_csv(kaggle_dir / "test_candidates.csv", [HEADER, ["q000", *rights[:5], "t000.jpg", *rights[5:18], "t018"]])
    assert ("test_candidates.csv line 2: a candidate is listed twice (c0 and c5: 't000' and 't000.jpg' are both "
            "test/right/t000.jpg)") in _load_error(kaggle_dir)
    write_csv(kaggle_dir / "test_candidates.csv", [HEADER, ["q000", *rights, "t003"]])
    assert "test_candidates.csv line 2: a candidate is listed twice (c3 and c19 't003')" in _load_error(kaggle_dir)


def test_read_image_returns_the_file_bytes(kaggle_dir: Path) -> None:
    ds = load_dataset(kaggle_dir)
    image_id = ds.train_pairs[2].right_id
    got = ds.read_image(image_id)
    assert got.data == (kaggle_dir / image_id).read_bytes() and got.path == (kaggle_dir / image_id).resolve()


def _opened_during(call) -> list[str]:
    from conftest import files_opened

    with files_opened() as opened:
        call()
    return opened


def test_fingerprint_is_cheap_when_nothing_changed(kaggle_dir: Path) -> None:
    ds = load_dataset(kaggle_dir)
    first = ds.fingerprint()
    result: list[str] = []
    opened = _opened_during(lambda: result.append(ds.fingerprint()))
    assert result == [first] and len(first) == 40
    assert [p for p in opened if p.endswith(".jpg")] == []  # no image re-read, let alone re-hashed
    assert load_dataset(kaggle_dir).fingerprint() == first  # the same data, the same fingerprint


def test_fingerprint_sees_a_rewrite_that_keeps_size_and_mtime(kaggle_dir: Path) -> None:
    import os

    ds = load_dataset(kaggle_dir)
    before = ds.fingerprint()
    path = kaggle_dir / ds.train_pairs[0].left_id
    data, st = bytearray(path.read_bytes()), path.stat()
    data[-3] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime restored; ctime moves on
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    after = ds.fingerprint()
    assert after != before
    with (kaggle_dir / "train.csv").open("a") as fh:  # the CSVs count too
        fh.write("\n")
    assert ds.fingerprint() != after


def test_fingerprint_refuses_a_swapped_symlink(kaggle_dir: Path, tmp_path: Path) -> None:
    ds = load_dataset(kaggle_dir)
    ds.fingerprint()
    target = kaggle_dir / ds.train_pairs[0].left_id
    target.unlink()
    target.symlink_to(image(tmp_path / "outside.jpg"))
    with pytest.raises(DataError, match="resolves outside the data folder"):
        ds.fingerprint()


def test_data_roots_are_enforced_by_load_dataset(kaggle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLL_DATA_ROOTS", str(tmp_path / "elsewhere"))
    assert "outside the allowed data folders" in _load_error(kaggle_dir)
    monkeypatch.setenv("TLL_DATA_ROOTS", str(kaggle_dir.parent))
    assert load_dataset(kaggle_dir).layout == "kaggle"
