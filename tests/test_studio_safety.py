"""The studio never shows stale figures, never shows a file from outside the data folder, and shows every
name as text (AppTest; the browser-level check of the same is in tests/test_browser.py)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import image, make_kaggle, write_csv

ROOT = Path(__file__).resolve().parent.parent
INJECTIONS = ("![p{i}](&#47;&#47;127.0.0.1&#58;{port}&#47;beacon{i}.png)",
              "[x{i}](http&#58;&#47;&#47;127.0.0.1&#58;{port}&#47;link{i})",
              "**E{i}**", "<img src=x onerror=alert({i})>", "$x{i}$", "`c{i}` _u{i}_ ~s{i}~")


def injection_folder(root: Path, port: int = 9, n_pairs: int = 24) -> Path:
    """A Kaggle folder whose image names are markdown / HTML payloads (valid file names: no / or :)."""
    names = [INJECTIONS[i % len(INJECTIONS)].format(i=i, port=port) for i in range(n_pairs)]
    for i, name in enumerate(names):
        image(root / "train/left" / f"{name}.jpg", seed=i)
        image(root / "train/right" / f"r{name}.jpg", seed=500 + i)
    write_csv(root / "train.csv", [["left", "right"], *[[n, f"r{n}"] for n in names]])
    return root


def _app(data: Path, page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params["data"] = str(data)
    at.query_params["backbone"] = "colour-hist"
    at.query_params["method"] = "zero-shot"
    at.query_params["rerank"] = "none"
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(at: AppTest) -> list[str]:
    """Every text a page shows as markdown: markdown, captions, errors, image captions, button tooltips."""
    images = [img.caption for element in at.get("image") for img in element.proto.imgs]
    return ([m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error] + images
            + [b.help for b in at.button if b.help])


@pytest.mark.parametrize("page", ["pages/failures.py", "pages/ranked.py"])
def test_names_are_shown_as_text_never_markdown(page: str, tmp_path: Path) -> None:
    from studio.widgets import md

    at = _app(injection_folder(tmp_path / "data"), page)
    assert not at.error, [e.value for e in at.error]  # the folder is valid: the names are shown, not refused
    texts = "\n".join(_texts(at))
    names = [INJECTIONS[i % len(INJECTIONS)].format(i=i, port=9) for i in range(24)]
    names += ["r" + n for n in names]
    shown = [n for n in names if md(n) in texts]
    assert len(shown) >= 3, texts[:2000]  # the page does show names, escaped
    assert not [n for n in names if n in texts]  # and never a raw one


def test_md_escapes_every_punctuation_and_keeps_the_characters() -> None:
    from studio.widgets import md

    raw = "![p](&#47;&#47;h&#58;9&#47;b.png) **E** <b>x</b> `c` $m$ :red[r] \\ ~s~ | # - + = _"
    escaped = md(raw)
    assert escaped.replace("\\", "") == raw.replace("\\", "")
    assert all(escaped[i - 1] == "\\" for i, ch in enumerate(escaped) if ch in "![]()&#*<>`$:~|" and i > 0)
    assert md("a\nb") == "a b"


def _captions(at: AppTest) -> list[str]:
    """Ranked's candidate captions (rank · score) with the names in their tooltips."""
    return sorted(f"{b.label} {b.help}" for b in at.button if (b.key or "").startswith("full_"))


def test_replaced_images_are_never_answered_with_old_figures(tmp_path: Path) -> None:
    data = make_kaggle(tmp_path / "data")
    before = _captions(_app(data, "pages/ranked.py"))
    for k, path in enumerate(sorted((data / "train/right").iterdir())):  # new pixels, same names, size and mtime
        stat = path.stat()
        rng = np.random.default_rng(99 + k)
        Image.fromarray((rng.random((48, 40, 3)) * 255).astype(np.uint8)).save(path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = _captions(_app(data, "pages/ranked.py"))  # a new session, same process: same st.cache_data
    assert before and after and before != after


def test_an_edited_csv_reloads_the_folder(tmp_path: Path) -> None:
    data = make_kaggle(tmp_path / "data")
    at = _app(data, "pages/overview.py")
    assert [m.value for m in at.metric if m.label == "train pairs"] == ["24"]
    rows = (data / "train.csv").read_text().splitlines()
    (data / "train.csv").write_text("\n".join(rows[:-2]) + "\n")
    at = _app(data, "pages/overview.py")
    assert [m.value for m in at.metric if m.label == "train pairs"] == ["22"]


def test_tll_data_names_the_folder_the_studio_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``TLL_DATA=folder streamlit run app.py`` opens that folder (tests/test_browser.py opens its folder by link)."""
    data = make_kaggle(tmp_path / "data")
    monkeypatch.setenv("TLL_DATA", str(data))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params.update(backbone="colour-hist", method="zero-shot", rerank="none")
    at.run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    assert at.sidebar.text_input(key="w_data").value == str(data)
    assert [m.value for m in at.metric if m.label == "train pairs"] == ["24"]


def test_a_symlink_swapped_in_after_load_is_refused_not_shown(tmp_path: Path) -> None:
    """l000.jpg links to inside/l000.jpg (allowed: inside the folder); once the studio has loaded and scored,
    ``inside`` is swapped for a link to an outside folder. The image folders' listing is unchanged, so only
    the check made at each open can catch it."""
    data = make_kaggle(tmp_path / "data")
    (data / "inside").mkdir()
    victim = data / "train/left/l000.jpg"
    victim.rename(data / "inside/l000.jpg")
    victim.symlink_to(Path("../../inside/l000.jpg"))
    outside = tmp_path / "outside"
    image(outside / "l000.jpg", seed=7)
    stamp = os.stat(data / "train/left")
    _app(data, "pages/ranked.py")
    (data / "inside").rename(data / "inside-old")
    (data / "inside").symlink_to(outside)
    assert os.stat(data / "train/left").st_mtime_ns == stamp.st_mtime_ns
    at = _app(data, "pages/ranked.py")
    errors = " ".join(e.value for e in at.error)
    assert "l000" in errors and "outside" in errors, errors


def test_dataset_notices_show_on_the_overview(tmp_path: Path) -> None:
    data = make_kaggle(tmp_path / "data")
    rows = (data / "train.csv").read_text().splitlines()
    rows[2] = rows[2].split(",")[0] + "," + rows[1].split(",")[1]  # l001 → r000: a right shared by two lefts
    (data / "train.csv").write_text("\n".join(rows) + "\n")
    at = _app(data, "pages/overview.py")
    notes = " ".join(w.value.replace("\\", "") for w in at.warning)
    assert "r000" in notes, notes


def _times_named(at: AppTest, name: str) -> list[int]:
    """For each error box naming ``name``: how many times it names it (each unreadable image is listed)."""
    errors = [e.value.replace("\\", "") for e in at.error]
    return [text.count(name) for text in errors if name in text]


def test_unreadable_images_are_counted_afresh_in_every_session_and_rerun(tmp_path: Path) -> None:
    """One image whose header reads but whose pixels do not: every session and rerun reports that one image,
    not the failures of every extraction the shared engine has made before (5, 10, 15, …)."""
    data = make_kaggle(tmp_path / "data")
    bad = data / "train/left/l003.jpg"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size * 2 // 3])  # truncated pixel data: found on decoding
    for _session in range(2):  # two sessions in one process share the cached engine
        at = _app(data, "pages/ranked.py")
        for _run in range(2):
            if _run:
                at.run()
            assert _times_named(at, "l003.jpg") == [1], [e.value for e in at.error]
            assert not [e for e in at.error if "unreadable images" in e.value]


@pytest.mark.slow
@pytest.mark.parametrize("option,value,fragment", [("lr", 0.0, "lr=0.0: must be above 0"),
                                                   ("holdout", 1.0, "holdout=1.0: must be below 1")])
def test_an_option_out_of_range_is_a_message_on_the_train_page(option: str, value: float, fragment: str,
                                                               tmp_path: Path) -> None:
    """The widgets stop at the option's bounds (from its register entry); an exclusive bound is the widget's
    edge, refused by the option's own check in one line."""
    at = _app(make_kaggle(tmp_path / "data", n_pairs=60), "pages/train.py")
    at.number_input(key=f"opt_adaptation_{option}").set_value(value)
    at.main.button[0].click().run()  # the form's Train button
    assert not at.exception, [e.value for e in at.exception]
    errors = " ".join(e.value.replace("\\", "") for e in at.error)
    assert fragment in errors, errors


@pytest.mark.slow
def test_a_cache_that_cannot_be_written_is_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("TLL_CACHE_DIR", str(blocker / "cache"))
    import streamlit as st

    st.cache_resource.clear()  # engines are per process: open this folder's afresh
    at = _app(make_kaggle(tmp_path / "data"), "pages/overview.py")
    errors = " ".join(e.value.replace("\\", "") for e in at.error)
    assert "not-a-folder" in errors, errors


def test_the_served_config_binds_locally_and_never_watches_the_cache() -> None:
    """What `streamlit run app.py` reads from .streamlit/config.toml: loopback only, XSRF on, no static
    files, no uploads to speak of, no file watching — and should watching be turned on, never of the cache
    being written (29,039 'Inotify queue overflowed' lines were logged while the cache filled) or the venv."""
    import tomllib

    config = tomllib.loads((Path(__file__).resolve().parent.parent / ".streamlit" / "config.toml").read_text())
    server = config["server"]
    assert server["address"] == "localhost" and server["enableXsrfProtection"] and not server["enableStaticServing"]
    assert server["fileWatcherType"] == "none" and {"cache", ".venv"} <= set(server["folderWatchBlacklist"])
    assert config["client"]["showErrorDetails"] == "type"
