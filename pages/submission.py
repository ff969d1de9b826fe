"""Submission: score the test tasks with the selected method, validate, preview and download the CSV."""
import re
from dataclasses import replace

import pandas as pd
import streamlit as st

from studio.entry import enter
from studio.progress import progress_bar
from studio.state import engine, selection
from studio.widgets import md, show_error
from tll_core.cache import default_cache_dir
from tll_core.errors import TLLError
from tll_core.submission import submission_problems

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
            path = eng.submit(sel.backbone, SUBMISSIONS / name, method=sel.to_method(), seed=sel.seed,
                              progress=bar.images, callback=bar.epoch)
    except TLLError as exc:
        show_error(exc)
        st.stop()
    st.session_state["submission_path"] = str(path)
path = st.session_state.get("submission_path")
if path:
    try:
        problems = submission_problems(path, eng.dataset.root)
    except TLLError as exc:  # the written file is gone or replaced since (a bad input now, one line)
        st.session_state.pop("submission_path", None)
        show_error(exc)
        st.stop()
    if problems:
        show_error(f"{len(problems)} problem(s): " + "; ".join(problems[:5]))
    else:
        st.success(f"Valid: {len(eng.dataset.test_rows)} rows, 20 finite scores each — {md(path)}")
    st.dataframe(pd.read_csv(path, nrows=5), hide_index=True)
    with open(path, "rb") as fh:
        st.download_button("Download the CSV", fh.read(), file_name=path.rsplit("/", 1)[-1], mime="text/csv", type="primary")
