"""The TLL matching studio (entry point): ``streamlit run app.py``.

The sidebar (data source, split, backbone, method, metric, re-ranking) is drawn here, once per run, before
the page that ``st.navigation`` picks; the selection lives in session state and in the URL's query params,
so a link reopens the same view. Pages (``pages/``) only lay out; their shared code is the ``studio``
package. Each page starts with ``studio.entry.enter()``: Streamlit may run a file in ``pages/`` directly
(a deep link on a fresh server), and then this script runs instead.
"""
import streamlit as st

from studio.entry import page_run
from studio.sidebar import sidebar
from studio.links import follow_links
from studio.memo import one_run
from studio.preview import preview_banner, start_awaited

# The favicon is an emoji (drawn as a data: URL). With none set here, Streamlit makes the current page's
# :material/…: icon the favicon and fetches it from fonts.gstatic.com: the studio must ask no other host. The
# navigation's own icons are drawn with the Material Symbols font that Streamlit serves itself.
st.set_page_config(page_title="TLL matching studio", page_icon="🔎", layout="wide")
PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/leaderboard:", default=True),
    st.Page("pages/ranked.py", title="Ranked candidates", icon=":material/format_list_numbered:"),
    st.Page("pages/failures.py", title="Failures", icon=":material/error:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("pages/why.py", title="Why", icon=":material/troubleshoot:"),
    st.Page("pages/embedding_map.py", title="Embedding map", icon=":material/scatter_plot:"),
    st.Page("pages/search.py", title="Search", icon=":material/search:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/submission.py", title="Submission", icon=":material/upload_file:"),
]
page = st.navigation(PAGES)
with one_run():  # the folder's fingerprint: taken once in this run
    follow_links(page.url_path)  # a left opened on another page: Ranked candidates
    sidebar()
    preview_banner()  # while a first view shows the default recipe's preview: how far the default is
    with page_run():
        page.run()
    start_awaited()  # the default, computed in the background once the page is drawn
