"""Embedding map: the lefts and rights of the task set in 2-D (PCA instantly, UMAP cached)."""
import html

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from studio import session
from studio.entry import enter
from studio.bulk_tags import bulk_tag_form
from studio.links import MAP_SPACES, focus_notice, open_in_ranked, set_map_focus, set_view, view
from studio.map_hover import show_hover_layer
from studio.memo import map_coordinates, map_space, map_thumbnails, scores_or_stop
from studio.progress import progress_bar
from studio.session import selection
from studio.widgets import md, show_image
from tll_core.analysis import MAP_COLOURINGS, map_groups, map_points, selected_points, thumbnail_points

enter()  # run directly (a deep link on a fresh server): app.py runs instead

# Okabe-Ito: told apart with any colour vision. By side: blue / orange; by outcome: green / vermillion for the
# lefts' hit / miss and grey for the rights (orange beside vermillion would not be told apart)
COLOURS = {"side": {"left": "#0072B2", "right": "#E69F00"},
           "hit / miss": {"hit": "#009E73", "miss": "#D55E00", "right": "#999999"}}


eng, tasks, scores = scores_or_stop()
sel = selection()
st.title("Embedding map")
focus_notice()
controls = st.columns(3)
PROJECTIONS = ("pca", "umap")
SPACE_LABELS = {"matcher": "the matcher's", "backbone": "the backbone's (raw)"}
session.MAP_METHOD.setdefault(view("projection", PROJECTIONS))  # from the URL on a first visit
session.MAP_COLOUR.setdefault(view("colour", MAP_COLOURINGS))
session.MAP_SPACE.setdefault(view("space", MAP_SPACES))
method = controls[0].segmented_control("Projection", PROJECTIONS, key=session.MAP_METHOD.key, required=True)
colour = controls[1].segmented_control("Colour by", MAP_COLOURINGS, key=session.MAP_COLOUR.key, required=True)
space = controls[2].segmented_control(
    "Space", MAP_SPACES, key=session.MAP_SPACE.key, required=True, format_func=SPACE_LABELS.get,
    disabled=not sel.uses_backbone, help="The vectors the chosen matcher scores with (after a learned matcher's "
    "map; zero-shot: centred), or the backbone's embeddings as they are.")
set_view("projection", method)
set_view("colour", colour)
set_view("space", space)

matcher = map_space(sel, space)
with st.spinner("Computing the UMAP layout (cached afterwards)…" if method == "umap" else "Projecting…"), \
        progress_bar() as bar:
    xy = map_coordinates(sel, method, space, bar)
points = map_points(tasks)
group = map_groups(tasks, scores, colour)
figure = go.Figure()
traces: list[list[int]] = []  # the map points of each trace, in drawing order: how events are read back
for value in dict.fromkeys(group.tolist()):
    idx = np.flatnonzero(group == value)
    traces.append(idx.tolist())
    figure.add_trace(go.Scattergl(x=xy[idx, 0], y=xy[idx, 1], mode="markers", name=value,
                                  marker_color={**COLOURS["side"], **COLOURS[colour]}.get(value),
                                  text=[html.escape(points.names[k]) for k in idx],
                                  hovertemplate="%{text}<extra>" + value + "</extra>", marker=dict(size=7, opacity=0.8)))
figure.update_layout(height=560, margin=dict(t=10), legend=dict(orientation="h"), dragmode="select")
# the modebar always shown (not only on hover): the box and lasso tools are in sight; the box is the default drag
event = st.plotly_chart(figure, key="map_chart", on_select="rerun", selection_mode=("points", "box", "lasso"),
                        config={"displayModeBar": True, "displaylogo": False})
with st.spinner("Making the hover previews (once)…"):
    previewed = thumbnail_points(points)
    thumbs = map_thumbnails(tuple(points.image_ids[k] for k in previewed))
opens = [points.names[k] if k is not None else "" for k in map(points.left_of, range(len(points)))]
show_hover_layer(traces, points.partners, xy, thumbs + ("",) * (len(points) - len(previewed)), opens)
note = "" if len(previewed) == len(points) else f" (the first {len(previewed)}: lefts first — a bound on what the browser is sent)"
shown_space = (f"the vectors {md(matcher.label)} scores with, from {md(sel.backbone)}" if matcher is not None
               else f"{md(sel.backbone)}'s embeddings")
st.caption(f"{len(points)} points ({method.upper()} of {shown_space}). Hover a point to see its image"
           f"{note} and its partner; click one to open its left in Ranked; box- or lasso-select points to "
           "see their images and the lines to their partners.")
picked = selected_points(event, traces)
lefts = points.lefts_of(picked)
if lefts:
    st.button(f"Show only these {len(lefts)} lefts in Failures and Ranked", key="map_focus_button",
              on_click=set_map_focus, args=(lefts,))
bulk_tag_form("map", lefts)
if picked:
    st.caption(f"{len(picked)} point(s) selected" + (", the first 6 shown:" if len(picked) > 6 else ":"))
for k in picked[:6]:
    cols = st.columns([1, 1, 4])
    show_image(cols[0], eng, points.image_ids[k], caption=f"{points.sides[k]} {md(points.names[k])}", width="stretch")
    partner = points.partners[k]
    if partner is not None:
        show_image(cols[1], eng, points.image_ids[partner], caption=f"its partner {md(points.names[partner])}",
                   width="stretch")
    left = points.left_of(k)
    if left is not None:
        cols[2].button(md(f"open {points.names[left]} in Ranked"), key=f"map_open_{k}", on_click=open_in_ranked,
                       args=(points.names[left],))
