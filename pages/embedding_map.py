"""Embedding map: the lefts and rights of the task set in 2-D (PCA instantly, UMAP cached)."""
import html

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from pages.common import data_folder, device, engine_for, hits_of, md, scores_or_stop, selection, show_image, sidebar
from tll_core.analysis import selected_points

sidebar()
eng, tasks, scores = scores_or_stop()
sel = selection()
st.title("Embedding map")
controls = st.columns(3)
method = controls[0].segmented_control("Projection", ["pca", "umap"], default="pca", key="map_method", required=True)
colour = controls[1].segmented_control("Colour by", ["side", "hit / miss"], default="side", key="map_colour", required=True)
lines = controls[2].toggle("Lines joining true pairs", key="map_lines")


@st.cache_data(show_spinner=False, max_entries=16)
def coordinates(data: str, backbone: str, split: str, fraction: float, seed: int, method: str,
                device_name: str) -> np.ndarray:
    engine = engine_for(data, device_name)
    tasks_ = engine.test() if split == "test" else engine.validation(fraction, seed).tasks
    return engine.embedding_map(tasks_, backbone, method, seed)


with st.spinner("Computing the UMAP layout (cached afterwards)…" if method == "umap" else "Projecting…"):
    xy = coordinates(data_folder(), sel.backbone, sel.split, sel.val_fraction, sel.seed, method, device())
n_left = len(tasks.left_ids)
names = list(tasks.left_names) + list(tasks.right_names)
ids = list(tasks.left_ids) + list(tasks.right_ids)
side = np.array(["left"] * n_left + ["right"] * len(tasks.right_ids))
if colour == "hit / miss" and tasks.has_truth:
    hit = hits_of(tasks, scores)
    group = np.concatenate([np.where(hit, "hit", "miss"), np.full(len(tasks.right_ids), "right")])
else:
    group = side
figure = go.Figure()
for value in dict.fromkeys(group.tolist()):
    mask = group == value
    idx = np.flatnonzero(mask)
    figure.add_trace(go.Scattergl(x=xy[mask, 0], y=xy[mask, 1], mode="markers", name=value,
                                  customdata=np.stack([idx, idx], axis=1), text=[html.escape(names[k]) for k in idx],
                                  hovertemplate="%{text}<extra>" + value + "</extra>", marker=dict(size=6, opacity=0.75)))
truth_right = tasks.candidates[np.arange(n_left), tasks.truth] if tasks.has_truth else None
if lines and truth_right is not None:
    xs, ys = [], []
    for i, j in enumerate(truth_right):
        xs += [xy[i, 0], xy[n_left + j, 0], None]
        ys += [xy[i, 1], xy[n_left + j, 1], None]
    figure.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", name="true pairs", line=dict(width=0.6, color="gray"), hoverinfo="skip"))
figure.update_layout(height=560, margin=dict(t=10), legend=dict(orientation="h"), dragmode="select")
event = st.plotly_chart(figure, key="map_chart", on_select="rerun", selection_mode=("points", "box", "lasso"))
picked = selected_points(event)
st.caption(f"{len(ids)} points ({method.upper()} of {sel.backbone}). Click or box-select points to see their images.")
for k in picked[:6]:
    cols = st.columns([1, 1, 4])
    show_image(cols[0], eng, ids[k], caption=f"{side[k]} {md(names[k])}", width="stretch")
    if truth_right is not None:
        partner = n_left + int(truth_right[k]) if k < n_left else (int(np.flatnonzero(truth_right == k - n_left)[0]) if (truth_right == k - n_left).any() else None)
        if partner is not None:
            show_image(cols[1], eng, ids[partner], caption=f"its partner {md(names[partner])}", width="stretch")
