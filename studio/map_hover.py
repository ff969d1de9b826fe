"""The embedding map's instrument layer: a hovered point's thumbnail, and lines to the partners of the hovered
and the selected points, drawn over the plotly chart in the browser.

Plotly's hover labels cannot hold an image, and a figure that changed with the selection would be a new
chart to Streamlit (its element id includes the figure), which drops the selection it was drawn for. So the
figure stays as the page drew it and a script does the rest: it runs in an ``st.iframe`` (same origin as the
page), finds the chart's graph div in the parent document (again after every rerun, which may replace it)
and listens to plotly's ``plotly_hover`` / ``plotly_unhover`` / ``plotly_selected`` / ``plotly_deselect``.
Streamlit hears only ``plotly_selected``, and with the box or lasso tool active it turns plotly's
click-to-select off; so a click on a point turns the page's URL into Ranked's with ``?left=NAME`` (the
selection's URL kept) and tells Streamlit as the back button would: Streamlit runs Ranked in the same session,
and ``studio.links.follow_links`` shows the left the URL names.
It draws into one absolutely placed ``<svg>`` and one ``<img>`` inside the graph div (pointer events off:
clicks, box and lasso still reach plotly), removed when the iframe goes.

What it is sent: the trace table (which map point each trace's point is), each point's partner and
coordinates, and the thumbnails as data URLs (made by ``tll_core.thumbnails`` through the confined reader).
Names only as data (the left a click opens, set as a URL parameter); the hover label (plotly's,
HTML-escaped by the page) names the point. No path. The iframe's
content depends only on the folder, the task set, the projection and the colouring, so a selection rerun
sends it again as a reference to the cached message, not its megabytes.
"""
from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import streamlit as st

HOVER_IMG_ID = "tll-map-hover-img"  # the tests find the hover thumbnail by it
OVERLAY_ID = "tll-map-overlay"


def hover_payload(traces: Sequence[Sequence[int]], partners: Sequence[int | None], xy: np.ndarray,
                  thumbs: Sequence[str], opens: Sequence[str]) -> str:
    """The script's data as JSON that is safe inside a ``<script>`` element (no ``<``, ``>`` or ``&``).
    ``opens``: the name of the left a click on each point opens in Ranked (``""``: none)."""
    data = {"traces": [list(map(int, t)) for t in traces],
            "partner": [-1 if p is None else int(p) for p in partners],
            "xy": np.round(np.asarray(xy, dtype=np.float64), 5).tolist(),
            "thumb": list(thumbs), "open": list(opens)}
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def hover_html(payload: str) -> str:
    """The iframe's document: the data and the script."""
    return (f'<script type="application/json" id="tll-map-data">{payload}</script>'
            f"<script>{_SCRIPT}</script>")


def show_hover_layer(traces: Sequence[Sequence[int]], partners: Sequence[int | None], xy: np.ndarray,
                     thumbs: Sequence[str], opens: Sequence[str]) -> int:
    """Place the hover layer's (invisible) iframe after the chart; the bytes of its document."""
    document = hover_html(hover_payload(traces, partners, xy, thumbs, opens))
    st.iframe(document, height=1, alt="embedding map hover previews")
    return len(document.encode())


_SCRIPT = """
(() => {
  const D = JSON.parse(document.getElementById('tll-map-data').textContent);
  const doc = window.parent.document;
  const SVG = 'http://www.w3.org/2000/svg';
  const where = {};  // "curve,index" -> map point
  D.traces.forEach((t, c) => t.forEach((k, i) => { where[c + ',' + i] = k; }));
  let gd = null, hovered = null, selected = [];

  const pointOf = p => where[p.curveNumber + ',' + (p.pointIndex ?? p.pointNumber)];
  function pixel(k) {  // a map point's position inside the graph div, in CSS pixels
    const fl = gd._fullLayout, xa = fl.xaxis, ya = fl.yaxis;
    return [xa._offset + xa.l2p(D.xy[k][0]), ya._offset + ya.l2p(D.xy[k][1])];
  }
  function layer() {
    let svg = gd.querySelector('#OVERLAY_ID'), img = gd.querySelector('#HOVER_IMG_ID');
    if (!svg) {
      if (getComputedStyle(gd).position === 'static') gd.style.position = 'relative';
      svg = doc.createElementNS(SVG, 'svg');
      svg.id = 'OVERLAY_ID';
      svg.setAttribute('style', 'position:absolute;left:0;top:0;width:100%;height:100%;pointer-events:none;z-index:5;overflow:visible');
      gd.appendChild(svg);
    }
    if (!img) {
      img = doc.createElement('img');
      img.id = 'HOVER_IMG_ID';
      img.alt = 'hovered image';
      img.setAttribute('style', 'position:absolute;display:none;pointer-events:none;z-index:6;background:#fff;border:2px solid #333;border-radius:3px;box-shadow:0 2px 8px rgba(0,0,0,.35);image-rendering:auto');
      gd.appendChild(img);
    }
    return [svg, img];
  }
  function line(svg, a, b, colour, width) {
    const l = doc.createElementNS(SVG, 'line');
    [['x1', a[0]], ['y1', a[1]], ['x2', b[0]], ['y2', b[1]], ['stroke', colour], ['stroke-width', width]]
      .forEach(([n, v]) => l.setAttribute(n, v));
    svg.appendChild(l);
  }
  function ring(svg, p, colour, r) {
    const c = doc.createElementNS(SVG, 'circle');
    [['cx', p[0]], ['cy', p[1]], ['r', r], ['fill', 'none'], ['stroke', colour], ['stroke-width', 2.5]]
      .forEach(([n, v]) => c.setAttribute(n, v));
    svg.appendChild(c);
  }
  function inPlot(p) {
    const s = gd._fullLayout._size;
    return p[0] >= s.l && p[0] <= s.l + s.w && p[1] >= s.t && p[1] <= s.t + s.h;
  }
  function draw() {  // the selection's pair lines, then the hovered point's line, partner ring and image
    if (!gd || !gd._fullLayout || !gd._fullLayout.xaxis) return;
    const [svg, img] = layer();
    svg.replaceChildren();
    for (const k of selected) {
      const q = D.partner[k];
      if (q < 0) continue;
      const a = pixel(k), b = pixel(q);
      if (inPlot(a) || inPlot(b)) { line(svg, a, b, '#555', 1); if (inPlot(b)) ring(svg, b, '#555', 5); }
    }
    if (hovered === null) { img.style.display = 'none'; return; }
    const a = pixel(hovered), q = D.partner[hovered];
    if (q >= 0) { const b = pixel(q); line(svg, a, b, '#000', 2); ring(svg, b, '#000', 8); }
    ring(svg, a, '#000', 6);
    const url = D.thumb[hovered];
    if (!url) { img.style.display = 'none'; return; }
    if (img.getAttribute('src') !== url) img.src = url;
    img.style.display = 'block';
    const w = img.offsetWidth || 100, h = img.offsetHeight || 100, gap = 14;
    let left = a[0] - w - gap, top = a[1] - h / 2;  // left of the point: plotly's label goes to its right
    if (left < 0) left = a[0] + gap + 150;  // no room: right of the point, past the hover label
    top = Math.max(0, Math.min(top, gd.offsetHeight - h));
    img.style.left = left + 'px';
    img.style.top = top + 'px';
  }
  const onHover = e => { const k = e && e.points && e.points.length ? pointOf(e.points[0]) : undefined;
                         hovered = k === undefined ? null : k; draw(); };
  const onUnhover = () => { hovered = null; draw(); };
  const onSelected = e => { selected = e && e.points ? e.points.map(pointOf).filter(k => k !== undefined) : [];
                            draw(); };
  const onDeselect = () => { selected = []; draw(); };
  const onRelayout = () => { hovered = null; draw(); };
  const onClick = e => {  // a click on a point opens its left in Ranked: Streamlit hears no click in select mode,
    const p = e && e.points && e.points.length ? e.points[0] : null;  // so the page's URL becomes Ranked's with
    const k = p ? pointOf(p) : undefined;                               // ?left=NAME and Streamlit is told, as by
    if (k === undefined || !D.open[k]) return;                          // the back button: same session, no reload
    const url = new URL(window.parent.location.href);
    url.pathname = url.pathname.replace(/[^/]*$/, 'ranked');
    url.searchParams.set('left', D.open[k]);
    window.parent.history.pushState(null, '', url.toString());
    window.parent.dispatchEvent(new PopStateEvent('popstate'));
  };
  const HANDLERS = [['plotly_hover', onHover], ['plotly_unhover', onUnhover], ['plotly_selected', onSelected],
                    ['plotly_deselect', onDeselect], ['plotly_relayout', onRelayout], ['plotly_afterplot', draw],
                    ['plotly_click', onClick]];

  function detach() {
    if (!gd) return;
    HANDLERS.forEach(([n, f]) => gd.removeListener && gd.removeListener(n, f));
    [gd.querySelector('#OVERLAY_ID'), gd.querySelector('#HOVER_IMG_ID')].forEach(el => el && el.remove());
    gd = null;
  }
  function selectionNow(g) {  // the points plotly shows selected (after a rerun that kept the chart)
    const out = [];
    (g._fullData || []).forEach((t, c) => (t.selectedpoints || []).forEach(i => {
      const k = where[c + ',' + i]; if (k !== undefined) out.push(k); }));
    return out;
  }
  function attach() {
    const g = doc.querySelector('.stPlotlyChart .js-plotly-plot') || doc.querySelector('.js-plotly-plot');
    if (g === gd || !g || typeof g.on !== 'function' || !g._fullLayout) return;
    detach();
    gd = g;
    HANDLERS.forEach(([n, f]) => gd.on(n, f));
    hovered = null;
    selected = selectionNow(gd);
    draw();
  }
  attach();
  const timer = setInterval(attach, 300);
  window.addEventListener('pagehide', () => { clearInterval(timer); detach(); });
})();
""".replace("OVERLAY_ID", OVERLAY_ID).replace("HOVER_IMG_ID", HOVER_IMG_ID)
