from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


def test_overview_shows_the_demo_leaderboard() -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert {"backbone", "metric", "top2"} <= set(table.columns)
    assert set(table["backbone"]) >= {"combined", "hog"} and table["top2"].max() > 0.3


def test_a_bad_folder_is_a_message_not_a_crash(tmp_path: Path) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.text_input[0].set_value(str(tmp_path / "missing")).run()
    assert not at.exception
    assert "no such data folder" in at.error[0].value
