"""Submission: score the test tasks with the selected method, validate, preview and download the CSV."""
import re
from dataclasses import replace

import streamlit as st

from studio import session
from studio.entry import enter
from studio.folder import engine
from studio.memo import checked_submission, submission
from studio.progress import progress_bar
from studio.session import selection
from studio.widgets import md, show_error
from tll_core.cache import default_cache_dir
from tll_core.errors import TLLError

enter()  # run directly (a deep link on a fresh server): app.py runs instead

SUBMISSIONS = default_cache_dir() / "submissions"
st.title("Submission")
eng = engine()
if eng is None:
    st.stop()
if not eng.dataset.test_rows:
    st.info("This data folder has no test part (test_candidates.csv).")
    st.stop()
sel = replace(selection(), split="test")
st.write(f"Method: **{md(sel.label)}** (choose it in the sidebar; learned matchers are fitted on all "
         f"{len(eng.dataset.train_pairs)} train pairs). Files are also saved under {md(SUBMISSIONS)}.")
if st.button("Score the test tasks", type="primary"):
    name = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", sel.label.replace(" · ", "__")) + ".csv"
    try:
        with st.spinner("Scoring the test tasks…"), progress_bar("embedding the train pairs and test images") as bar:
            path = submission(sel, SUBMISSIONS / name, bar)
    except TLLError as exc:
        show_error(exc)
        st.stop()
    session.SUBMISSION_PATH.set(str(path))
path = session.SUBMISSION_PATH.get()
if path:
    try:
        checked = checked_submission(path)
    except TLLError as exc:  # the written file is gone or replaced since (a bad input now, one line)
        session.SUBMISSION_PATH.clear()
        show_error(exc)
        st.stop()
    if checked.problems:
        show_error(f"{len(checked.problems)} problem(s): " + "; ".join(checked.problems[:5]))
    else:
        st.success(f"Valid: {len(eng.dataset.test_rows)} rows, 20 finite scores each — {md(path)}")
    st.dataframe(checked.preview, hide_index=True)
    st.download_button("Download the CSV", checked.content, file_name=path.rsplit("/", 1)[-1], mime="text/csv",
                       type="primary")
