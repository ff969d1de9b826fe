"""Embedding map: the lefts and rights of the task set in 2-D (PCA instantly, UMAP cached)."""
import html

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from studio.entry import enter
from studio.state import map_coordinates, open_in_ranked, scores_or_stop, selection, set_view, view
from studio.widgets import md, show_image
from tll_core.analysis import MAP_COLOURINGS, map_groups, map_points, selected_points

enter()  # run directly (a deep link on a fresh server): app.py runs instead

# Okabe-Ito: told apart with any colour vision. By side: blue / orange; by outcome: green / vermillion for the
# lefts' hit / miss and grey for the rights (orange beside vermillion would not be told apart)
COLOURS = {"side": {"left": "#0072B2", "right": "#E69F00"},
           "hit / miss": {"hit": "#009E73", "miss": "#D55E00", "right": "#999999"}}

eng, tasks, scores = scores_or_stop()
sel = selection()
st.title("Embedding map")
controls = st.columns(3)
PROJECTIONS = ("pca", "umap")
st.session_state.setdefault("map_method", view("projection", PROJECTIONS))  # from the URL on a first visit
st.session_state.setdefault("map_colour", view("colour", MAP_COLOURINGS))
method = controls[0].segmented_control("Projection", PROJECTIONS, key="map_method", required=True)
colour = controls[1].segmented_control("Colour by", MAP_COLOURINGS, key="map_colour", required=True)
set_view("projection", method)
set_view("colour", colour)
lines = controls[2].toggle("Lines joining true pairs", key="map_lines")

with st.spinner("Computing the UMAP layout (cached afterwards)…" if method == "umap" else "Projecting…"):
    xy = map_coordinates(sel, method)
points = map_points(tasks)
group = map_groups(tasks, scores, colour)
figure = go.Figure()
traces: list[list[int]] = []  # the map points of each trace, in drawing order: how a selection is read back
for value in dict.fromkeys(group.tolist()):
    idx = np.flatnonzero(group == value)
    traces.append(idx.tolist())
    figure.add_trace(go.Scattergl(x=xy[idx, 0], y=xy[idx, 1], mode="markers", name=value,
                                  marker_color={**COLOURS["side"], **COLOURS[colour]}.get(value),
                                  text=[html.escape(points.names[k]) for k in idx],
                                  hovertemplate="%{text}<extra>" + value + "</extra>", marker=dict(size=7, opacity=0.8)))
if lines and points.true_pairs():
    xs, ys = [], []
    for left, right in points.true_pairs():
        xs += [xy[left, 0], xy[right, 0], None]
        ys += [xy[left, 1], xy[right, 1], None]
    figure.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", name="true pairs", line=dict(width=0.6, color="gray"), hoverinfo="skip"))
figure.update_layout(height=560, margin=dict(t=10), legend=dict(orientation="h"), dragmode="select")
event = st.plotly_chart(figure, key="map_chart", on_select="rerun", selection_mode=("points", "box", "lasso"))
picked = selected_points(event, traces)
st.caption(f"{len(points)} points ({method.upper()} of {md(sel.backbone)}). Click or box-select points to see their images.")
for k in picked[:6]:
    cols = st.columns([1, 1, 4])
    show_image(cols[0], eng, points.image_ids[k], caption=f"{points.sides[k]} {md(points.names[k])}", width="stretch")
    partner = points.partners[k]
    if partner is not None:
        show_image(cols[1], eng, points.image_ids[partner], caption=f"its partner {md(points.names[partner])}",
                   width="stretch")
    left = k if k < points.n_left else partner  # a right opens the left whose truth it is
    if left is not None:
        cols[2].button(md(f"open {points.names[left]} in Ranked"), key=f"map_open_{k}", on_click=open_in_ranked,
                       args=(points.names[left],))
