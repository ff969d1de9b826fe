"""Search by example: an image of the split (picked by name, or "search from this" on Ranked) or an uploaded one,
and its nearest lefts and rights under the sidebar's backbone and matcher, with their scores; each opens in
Ranked. The core is ``tll_core.search``; an upload is checked and embedded in memory, never saved."""
import time

import streamlit as st

from studio import session
from studio.entry import enter
from studio.folder import engine
from studio.links import open_in_ranked, set_view, view
from studio.memo import nearest, uploaded_query
from studio.progress import progress_bar
from studio.session import selection
from studio.widgets import md, show_error, show_image
from tll_core.errors import TLLError
from tll_core.images import IMAGE_SUFFIXES
from tll_core.search import Neighbour, Query

enter()  # run directly (a deep link on a fresh server): app.py runs instead

FROM_SPLIT, FROM_UPLOAD = "an image of the split", "an uploaded image"
PER_ROW = 5

eng = engine()
if eng is None:
    st.stop()
sel = selection()
st.title("Search by example")
if not sel.uses_backbone:  # imported scores: nothing to search
    st.info(md(f"{sel.label} scores each left's 20 candidates by name: pick a method that scores a backbone's "
               "embeddings to search by example."))
    st.stop()
try:
    tasks, _ = eng.tasks_for(sel.split, sel.val_fraction, sel.seed)
except TLLError as exc:
    show_error(exc)
    st.stop()
st.caption(md(f"The nearest lefts and rights of the {sel.split} split ({len(tasks.left_ids)} lefts, "
              f"{len(tasks.right_ids)} rights) to one image, under {sel.label}."))

sides = {**{i: f"left · {n}" for i, n in zip(tasks.left_ids, tasks.left_names)},
         **{i: f"right · {n}" for i, n in zip(tasks.right_ids, tasks.right_names)}}
start = time.perf_counter()  # the answer's time: an upload's embedding and both searches
pick, amount = st.columns([4, 1])
source = pick.radio("Search from", (FROM_SPLIT, FROM_UPLOAD), horizontal=True, key=session.SEARCH_FROM.key)
k = amount.number_input("How many", min_value=1, max_value=50, value=10, step=1, key="search_k")
if source == FROM_SPLIT:
    if not session.SEARCH_IMAGE.held() or session.SEARCH_IMAGE.get() not in sides:
        session.SEARCH_IMAGE.set(view("query") if view("query") in sides else next(iter(sides)))
    image_id = pick.selectbox("Image (type to search)", list(sides), format_func=sides.get,
                              key=session.SEARCH_IMAGE.key)
    set_view("query", image_id)
    query, query_key = Query.of_image(image_id), image_id
else:
    upload = pick.file_uploader("Drop an image (read in memory, never saved)", key="search_upload",
                                type=[s.lstrip(".") for s in IMAGE_SUFFIXES])
    if upload is None:
        st.stop()
    try:
        query, query_key = uploaded_query(sel, upload.name, upload.getvalue())
    except TLLError as exc:
        show_error(exc)
        st.stop()


def neighbour_cell(where, found: Neighbour) -> None:
    """A neighbour's image, its rank and score, and a button that opens its task in Ranked (a right held by
    several tasks: the one whose truth it is first, the others in a popover)."""
    show_image(where, eng, found.image_id, width="stretch")
    where.caption(f"#{found.rank} · {found.score:.3f} · {md(found.name)}")
    key = f"search_{found.side}_{found.rank}"
    if not found.lefts:
        where.caption("in no task")
        return
    where.button("open in Ranked", key=key, type="tertiary", on_click=open_in_ranked, args=(found.lefts[0],),
                 help=f"Ranked candidates of left {md(found.lefts[0])}")
    if len(found.lefts) > 1:
        with where.popover(f"all {len(found.lefts)} tasks"):
            for j, left in enumerate(found.lefts):
                st.button(f"left {md(left)}", key=f"{key}_{j}", on_click=open_in_ranked, args=(left,))


shown_query, results = st.columns([1, 5])
if query.image_id is not None:
    show_image(shown_query, eng, query.image_id, caption=f"query: {md(sides[query.image_id])}", width="stretch")
else:
    shown_query.image(upload.getvalue(), caption=md(query.name), width="stretch")  # checked by uploaded_query
found = {}
try:
    with st.spinner(f"Searching with {sel.label}…"), progress_bar() as bar:
        for side in ("right", "left"):
            found[side] = nearest(sel, query, query_key, side, int(k), bar)
except TLLError as exc:
    show_error(exc)
    st.stop()
took = time.perf_counter() - start
shown_query.caption(f"answered in {took:.2f} s")
for side, title in (("right", "Nearest rights (the query as a left)"), ("left", "Nearest lefts (the query as a right)")):
    answer = found[side]
    results.subheader(title)
    results.caption(md(f"{len(answer.neighbours)} of {answer.searched} {side}s · {answer.backend} search · "
                       f"score: {answer.meaning}"))
    for row in range(0, len(answer.neighbours), PER_ROW):
        for col, item in zip(results.columns(PER_ROW), answer.neighbours[row : row + PER_ROW]):
            neighbour_cell(col, item)
