"""The TLL matching studio (entry point): ``streamlit run app.py``.

The sidebar (data source, split, backbone, method, metric, re-ranking) is drawn here, once per run, before
the page that ``st.navigation`` picks; the selection lives in session state and in the URL's query params,
so a link reopens the same view. Shared code is the ``studio`` package; ``app_pages/`` holds only pages
(not ``pages/``: Streamlit would run a file there on a deep link instead of this script, see ``studio``).
"""
import streamlit as st

from studio.sidebar import sidebar

st.set_page_config(page_title="TLL matching studio", layout="wide")
PAGES = [
    st.Page("app_pages/overview.py", title="Overview", icon=":material/leaderboard:", default=True),
    st.Page("app_pages/ranked.py", title="Ranked candidates", icon=":material/format_list_numbered:"),
    st.Page("app_pages/failures.py", title="Failures", icon=":material/error:"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("app_pages/embedding_map.py", title="Embedding map", icon=":material/scatter_plot:"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/submission.py", title="Submission", icon=":material/upload_file:"),
]
page = st.navigation(PAGES)
sidebar()
page.run()
