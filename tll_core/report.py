"""A report to hand in: one self-contained HTML file, and each of its tables and charts as files for LaTeX.

The input is what every method reduces to — ``[n, 20]`` scores on the same tasks (:class:`ScoredMethod`) — so a
method scored anywhere (a backbone x matcher through ``Engine.score``, an imported score file, an embedding)
joins a report with no change here. :func:`build_report` computes everything (figures, tests, failures,
thumbnails) into a :class:`Report` of plain tables and charts; :func:`render_html` and :func:`write_report` only
lay it out.

The HTML opens offline and asks no other host for anything: images are data-URL JPEG thumbnails read through
the dataset's confined reader, the chart is inline SVG, there is no script at all, and a Content-Security-Policy
forbids every fetch but ``data:`` images. Every name shown (images, labels, tags) is user data and is escaped.
Charts are also written as SVG and as PNG drawn by Pillow (no browser, no network, no plotting library), from
one list of shapes, so the two files show the same chart.
"""
from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Union

import numpy as np

from .analysis import Candidate, compare as compare_methods, failures, ranked_task
from .errors import TLLError, one_line, quoted
from .evaluation.figures import HEADLINE, figures_of
from .evaluation.metrics import check_finite, evaluate_scores, truth_ranks
from .evaluation.tasks import TaskSet
from .images import ImageBytes
from .submission import check_output_path, write_atomically
from .tags import TagStore, safe_cell, tag_table
from .thumbnails import thumbnail_urls

DEFAULT_WORST = 20
SLICE_THUMBNAILS = 12  # lefts shown per disagreement slice (the CSV lists them all)
THUMBNAIL_SIDE = 80  # px: ~2 KB a data URL (96 px: 2.6 KB); the worst failures hold hundreds of them
CHANCE = 2 / 20  # top-2 of a scorer that knows nothing
SLICES = ("A right, B wrong", "B right, A wrong")  # the disagreements, whose lefts the report shows

Cell = Union[str, int, float, None]


class ImageReader(Protocol):  # a Dataset: its confined read
    def read_image(self, image_id: str) -> ImageBytes: ...


class ReportError(TLLError):
    """A report that cannot be made from what it was given (one line)."""


@dataclass(frozen=True)
class ScoredMethod:
    """One method of a report: its label (unique in the report) and its ``[n, 20]`` finite scores on the tasks."""

    label: str
    scores: np.ndarray


@dataclass(frozen=True)
class Table:
    """A table as the report shows it and as its CSV holds it (``name``.csv). ``formats``: how the HTML shows
    each column's numbers (``""``: as they are); the CSV keeps every number whole."""

    name: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    formats: tuple[str, ...]

    def shown(self, row: Sequence[Cell]) -> list[str]:
        return [_shown(cell, fmt) for cell, fmt in zip(row, self.formats)]

    def csv(self) -> str:
        text = io.StringIO(newline="")
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow([safe_cell(c) for c in self.columns])
        for row in self.rows:
            writer.writerow([_csv_cell(c) for c in row])
        return text.getvalue()


def _shown(cell: Cell, fmt: str) -> str:
    if cell is None or (isinstance(cell, float) and not math.isfinite(cell)):
        return "-"
    return format(cell, fmt) if fmt and not isinstance(cell, str) else str(cell)


def _csv_cell(cell: Cell) -> str:
    """Text through :func:`safe_cell` (never a spreadsheet formula); numbers whole (``repr``); no value: empty."""
    if cell is None or (isinstance(cell, float) and not math.isfinite(cell)):
        return ""
    return safe_cell(cell) if isinstance(cell, str) else repr(cell)


@dataclass(frozen=True)
class BarChart:
    """Horizontal bars with interval whiskers and a dashed reference line (``name``.svg / .png)."""

    name: str
    title: str
    labels: tuple[str, ...]
    values: tuple[float, ...]
    intervals: tuple[tuple[float, float], ...]
    reference: float
    reference_label: str
    axis: str


@dataclass(frozen=True)
class Thumb:
    """An image as the report shows it: a data URL (``""``: unreadable), its name and a caption."""

    name: str
    url: str
    caption: str
    truth: bool = False


@dataclass(frozen=True)
class FailureCard:
    left: Thumb
    truth: Thumb
    beaten_by: tuple[Thumb, ...]  # every other candidate scoring at least the truth's score, best first
    truth_rank: int
    margin: float


@dataclass(frozen=True)
class Slices:
    """Two methods compared: the counts and McNemar test (``table``) and the lefts of each disagreement."""

    a: str
    b: str
    table: Table
    members: Table  # every left of every slice (CSV)
    p_value: float
    lefts: tuple[tuple[str, int, tuple[Thumb, ...]], ...]  # (slice, its size, its first thumbnails)


@dataclass(frozen=True)
class Report:
    title: str
    summary: str  # the data, the tasks and the seed in one line
    methods: tuple[str, ...]
    leaderboard: Table
    chart: BarChart
    mcnemar: Table | None  # None with one method
    tags: Table | None  # None when no left of the data folder is tagged
    failures_of: str
    n_failures: int
    worst: tuple[FailureCard, ...]
    worst_table: Table
    comparison: Slices | None  # None with one method

    @property
    def tables(self) -> tuple[Table, ...]:
        found = [self.leaderboard, self.mcnemar, self.tags, self.worst_table]
        if self.comparison is not None:
            found += [self.comparison.table, self.comparison.members]
        return tuple(t for t in found if t is not None)


# ------------------------------------------------------------------ building


def build_report(dataset: ImageReader, tasks: TaskSet, methods: Sequence[ScoredMethod], *,
                 tags: TagStore | None = None, worst: int = DEFAULT_WORST, compare: tuple[str, str] | None = None,
                 seed: int = 0, title: str = "TLL matching report", summary: str = "") -> Report:
    """Every figure of each method on ``tasks`` (validation tasks: the truth is known), the pairwise McNemar
    tests, the per-tag figures (when ``tags`` holds any), the ``worst`` failures of the first method and the
    disagreement slices of ``compare`` (two labels; default the first two methods). ``seed``: the bootstrap's,
    as ``evaluate`` seeds it. A bad input is one line (:class:`ReportError`); non-finite scores are an error."""
    methods = list(methods)
    check_methods(tasks, methods, worst, compare)
    by_label = {m.label: m for m in methods}
    first = methods[0]
    thumbs = _Thumbnails(dataset)
    found = failures(tasks, first.scores)[:worst]
    pair = compare or ((methods[0].label, methods[1].label) if len(methods) > 1 else None)
    comparison = _slices(tasks, by_label[pair[0]], by_label[pair[1]], thumbs) if pair else None
    leaderboard, chart = _leaderboard(tasks, methods, seed)
    return Report(
        title=title, summary=summary or f"{len(tasks)} {tasks.name} tasks", methods=tuple(by_label),
        leaderboard=leaderboard, chart=chart,
        mcnemar=_mcnemar(tasks, methods) if len(methods) > 1 else None,
        tags=_tags(tags, tasks, methods) if tags is not None and tags.names() else None,
        failures_of=first.label, n_failures=len(failures(tasks, first.scores)),
        worst=tuple(_card(tasks, first.scores, f.index, thumbs) for f in found),
        worst_table=_worst_table(tasks, first.scores, found), comparison=comparison)


def check_methods(tasks: TaskSet, methods: Sequence[ScoredMethod], worst: int = DEFAULT_WORST,
                  compare: tuple[str, str] | None = None) -> None:
    """One line for what no report can be made from: no method, a label twice, scores not ``[n, 20]`` on
    ``tasks`` or not finite, tasks without their truth, ``worst`` below 1, ``compare`` naming an unknown
    label or one method twice (:func:`check_compare`, which a caller can ask before scoring)."""
    if not methods:
        raise ReportError("a report needs at least one method")
    if not tasks.has_truth:
        raise ReportError(f"the {tasks.name} tasks have no known truth: a report needs validation tasks")
    labels = [m.label for m in methods]
    twice = next((label for label in labels if labels.count(label) > 1), None)
    if twice is not None:
        raise ReportError(f"two methods are labelled {quoted(twice)}; each needs its own label")
    if isinstance(worst, bool) or not isinstance(worst, int) or worst < 1:
        raise ReportError(f"worst failures: {worst!r} is not a whole number of at least 1")
    if compare is not None:
        check_compare(labels, compare)
    for m in methods:
        if np.shape(m.scores) != tasks.candidates.shape:
            raise ReportError(f"{quoted(m.label)}: scores of shape {np.shape(m.scores)}, the tasks need "
                              f"{tasks.candidates.shape}")
        check_finite(np.asarray(m.scores), quoted(m.label))


def check_compare(labels: Sequence[str], compare: tuple[str, str]) -> None:
    """``compare`` names two different methods among ``labels``; else one line naming the choices."""
    for label in compare:
        if label not in labels:
            raise ReportError(f"--compare {quoted(label)}: no such method; choose from "
                              + ", ".join(quoted(x) for x in labels))
    if compare[0] == compare[1]:
        raise ReportError(f"--compare names {quoted(compare[0])} twice; name two different methods")


def headline(dataset, tasks: TaskSet, *, val_fraction: float, seed: int, fit_pairs: int) -> tuple[str, str]:
    """A report's title and summary line for validation tasks of ``dataset`` (a Dataset): what the CLI and the
    studio both pass to :func:`build_report`."""
    return (f"TLL report: {dataset.name}",
            f"{dataset.root}: {len(tasks)} validation tasks (validation fraction {val_fraction}, seed {seed}; "
            f"learned matchers fitted on the other {fit_pairs} pairs)")


class _Thumbnails:
    """Thumbnails made as the report asks for them, each image read once (through the confined reader)."""

    def __init__(self, reader: ImageReader) -> None:
        self.reader, self.urls = reader, {}

    def __call__(self, image_id: str, name: str, caption: str, truth: bool = False) -> Thumb:
        if image_id not in self.urls:
            self.urls[image_id], = thumbnail_urls(self.reader, (image_id,), THUMBNAIL_SIDE)
        return Thumb(name, self.urls[image_id], caption, truth)


def _leaderboard(tasks: TaskSet, methods: Sequence[ScoredMethod], seed: int) -> tuple[Table, BarChart]:
    """Every registered figure of the tasks protocol (the register's order), the headline's bootstrap CI and n;
    the chart of the headline figure with its CI and chance."""
    figures = figures_of("tasks")
    headline = next(f for f in figures if f.name == HEADLINE["tasks"])
    rows, intervals = [], []
    for m in methods:
        r = evaluate_scores(m.scores, tasks.truth, seed=seed)
        intervals.append(r.ci)
        rows.append((m.label, *(r.values[f.name] for f in figures), r.ci[0], r.ci[1], r.n))
    columns = ("method", *(f.label for f in figures), f"{headline.label} 95% CI low",
               f"{headline.label} 95% CI high", "n")
    formats = ("", *(f.format for f in figures), headline.format, headline.format, "")
    table = Table("leaderboard", "Leaderboard", columns, tuple(rows), formats)
    values = tuple(float(row[1 + figures.index(headline)]) for row in rows)
    chart = BarChart(headline.name, f"{headline.label} with its 95% bootstrap interval",
                     tuple(m.label for m in methods), values, tuple(intervals), CHANCE,
                     f"chance {CHANCE:.2f}", headline.label)
    return table, chart


def _mcnemar(tasks: TaskSet, methods: Sequence[ScoredMethod]) -> Table:
    rows = []
    for i, a in enumerate(methods):
        for b in methods[i + 1:]:
            c = compare_methods(tasks, a.scores, b.scores)
            rows.append((a.label, b.label, len(c.a_only), len(c.b_only), c.p_value))
    return Table("mcnemar", "Exact McNemar tests on top-2 hits, every pair",
                 ("A", "B", "A right, B wrong", "B right, A wrong", "p"), tuple(rows), ("", "", "", "", ".3g"))


def _tags(store: TagStore, tasks: TaskSet, methods: Sequence[ScoredMethod]) -> Table:
    """A row per tag and method: the tag's lefts in these tasks, their top-2 hits, its share and their mean truth
    rank under the method (tag by tag, the methods in their order)."""
    per_method = [tag_table(store, tasks, m.scores) for m in methods]
    rows = tuple((row.tag, m.label, row.lefts, row.top2_hits, row.top2, row.mean_rank)
                 for k in range(len(per_method[0])) for m, row in zip(methods, (t[k] for t in per_method)))
    return Table("tags", "Per tag", ("tag", "method", "lefts", "top-2 hits", "top-2", "mean rank"), rows,
                 ("", "", "", "", ".3f", ".2f"))


def _caption(c: Candidate) -> str:
    return f"#{c.rank} · {c.score:.3f}"


def _card(tasks: TaskSet, scores: np.ndarray, i: int, thumbs: _Thumbnails) -> FailureCard:
    task = ranked_task(tasks, scores, i)
    truth = task.truth
    assert truth is not None and task.truth_rank is not None  # validation tasks (checked)
    left = thumbs(task.left_id, task.left, "")
    shown_truth = thumbs(truth.image_id, truth.name, f"#{task.truth_rank} · {truth.score:.3f}",
                             truth=True)
    beaten = tuple(thumbs(c.image_id, c.name, _caption(c)) for c in task.beating_truth)
    best = task.candidates[0].score
    return FailureCard(left, shown_truth, beaten, task.truth_rank, best - truth.score)


def _worst_table(tasks: TaskSet, scores: np.ndarray, found: Sequence) -> Table:  # found: list[Failure]
    """A row per candidate of each failure listed: its truth, then every candidate that beat it."""
    rows = []
    for f in found:
        task = ranked_task(tasks, scores, f.index)
        truth = task.truth
        rows.append((f.left, truth.name, "truth", task.truth_rank, truth.score, f.margin))
        rows += [(f.left, c.name, "beat the truth", c.rank, c.score, f.margin) for c in task.beating_truth]
    return Table("worst_failures", "Worst failures", ("left", "candidate", "role", "rank", "score", "margin"),
                 tuple(rows), ("", "", "", "", ".3f", ".3f"))


def _slices(tasks: TaskSet, a: ScoredMethod, b: ScoredMethod, thumbs: _Thumbnails) -> Slices:
    c = compare_methods(tasks, a.scores, b.scores)
    ranks_a, ranks_b = truth_ranks(a.scores, tasks.truth), truth_ranks(b.scores, tasks.truth)
    slices = c.slices
    table = Table("compare", f"{a.label} (A) against {b.label} (B)",
                  ("A", "B", *slices, "p"), ((a.label, b.label, *(len(s) for s in slices.values()), c.p_value),),
                  ("", "", *("" for _ in slices), ".3g"))
    members = Table("compare_slices", "Every left of each slice", ("slice", "left", "rank under A", "rank under B"),
                    tuple((name, tasks.left_names[i], int(ranks_a[i]), int(ranks_b[i]))
                          for name, lefts in slices.items() for i in lefts), ("", "", "", ""))
    lefts = tuple((name, len(slices[name]), tuple(
        thumbs(tasks.left_ids[i], tasks.left_names[i], f"A #{ranks_a[i]} · B #{ranks_b[i]}")
        for i in slices[name][:SLICE_THUMBNAILS])) for name in SLICES)
    return Slices(a.label, b.label, table, members, c.p_value, lefts)


# ------------------------------------------------------------------ charts: one list of shapes, two renderings

_FONT = 12  # px
_ROW = 28
_LEFT_PAD, _RIGHT = 12, 64
_PLOT = 420  # px of the 0..1 axis
_TOP, _BOTTOM = 44, 44
_MAX_LABEL_CHARS = 60
_BAR, _WHISKER, _REFERENCE, _INK, _GRID = "#4c78a8", "#222222", "#c0392b", "#222222", "#dddddd"


@dataclass(frozen=True)
class _Shape:
    kind: str  # rect, line, text
    x: float
    y: float
    x2: float = 0.0  # rect: width; line: end x
    y2: float = 0.0  # rect: height; line: end y
    colour: str = _INK
    text: str = ""
    anchor: str = "start"  # text: start, middle, end
    size: int = _FONT
    dashed: bool = False
    width: float = 1.0
    title: str = ""  # text: the whole label where it was shortened


def _font(size: int):  # -> ImageFont.FreeTypeFont: Pillow's own (Aileron), no system font needed
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _short(label: str) -> str:
    label = one_line(label)
    return label if len(label) <= _MAX_LABEL_CHARS else label[: _MAX_LABEL_CHARS - 1] + "…"


def chart_shapes(chart: BarChart) -> tuple[tuple[int, int], list[_Shape]]:
    """The chart's size and shapes: a bar per label with its whisker and value, the reference line, the axis."""
    font = _font(_FONT)
    labels = [_short(label) for label in chart.labels]
    label_w = min(360, max([font.getlength(s) for s in labels] + [40])) + 2 * _LEFT_PAD
    x0 = label_w
    x = lambda v: x0 + _PLOT * min(max(v, 0.0), 1.0)  # noqa: E731
    height = _TOP + _ROW * len(labels) + _BOTTOM
    width = int(x0 + _PLOT + _RIGHT)
    shapes = [_Shape("text", 8, 20, text=chart.title, size=_FONT + 2)]
    bottom = _TOP + _ROW * len(labels)
    for k in range(6):
        v = k / 5
        shapes += [_Shape("line", x(v), _TOP - 4, x(v), bottom, _GRID),
                   _Shape("text", x(v), bottom + 14, text=f"{v:.1f}", anchor="middle", size=_FONT - 1)]
    shapes.append(_Shape("text", x(0.5), bottom + 32, text=chart.axis, anchor="middle"))
    for k, (label, value, (lo, hi)) in enumerate(zip(labels, chart.values, chart.intervals)):
        mid = _TOP + _ROW * k + _ROW / 2
        full = one_line(chart.labels[k])
        shapes += [
            _Shape("text", x0 - _LEFT_PAD, mid, text=label, anchor="end", title=full if full != label else ""),
            _Shape("rect", x0, mid - 9, x(value) - x0, 18, _BAR),
            _Shape("line", x(lo), mid, x(hi), mid, _WHISKER, width=1.5),
            _Shape("line", x(lo), mid - 5, x(lo), mid + 5, _WHISKER, width=1.5),
            _Shape("line", x(hi), mid - 5, x(hi), mid + 5, _WHISKER, width=1.5),
            _Shape("text", x(hi) + 6, mid, text=f"{value:.3f}", size=_FONT - 1),
        ]
    shapes += [_Shape("line", x(chart.reference), _TOP - 8, x(chart.reference), bottom, _REFERENCE, dashed=True,
                      width=1.5),
               _Shape("text", x(chart.reference) + 4, _TOP - 12, text=chart.reference_label, colour=_REFERENCE,
                      size=_FONT - 1),
               _Shape("line", x0, _TOP - 4, x0, bottom, _INK)]
    return (width, height), shapes


def chart_svg(chart: BarChart, *, standalone: bool = True) -> str:
    """The chart as an SVG document; not ``standalone``: the element inlined in the HTML, which needs no
    namespace (so the page names no URL at all)."""
    (width, height), shapes = chart_shapes(chart)
    namespace = 'xmlns="http://www.w3.org/2000/svg" ' if standalone else ""
    out = [f'<svg {namespace}width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{_esc(chart.title)}" '
           f'font-family="Helvetica, Arial, sans-serif" font-size="{_FONT}">',
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>']
    for s in shapes:
        if s.kind == "rect":
            out.append(f'<rect x="{s.x:.1f}" y="{s.y:.1f}" width="{max(s.x2, 0):.1f}" height="{s.y2:.1f}" '
                       f'fill="{s.colour}"/>')
        elif s.kind == "line":
            dash = ' stroke-dasharray="5 4"' if s.dashed else ""
            out.append(f'<line x1="{s.x:.1f}" y1="{s.y:.1f}" x2="{s.x2:.1f}" y2="{s.y2:.1f}" stroke="{s.colour}" '
                       f'stroke-width="{s.width:g}"{dash}/>')
        else:
            title = f"<title>{_esc(s.title)}</title>" if s.title else ""
            out.append(f'<text x="{s.x:.1f}" y="{s.y:.1f}" text-anchor="{s.anchor}" dominant-baseline="middle" '
                       f'font-size="{s.size}" fill="{s.colour}">{title}{_esc(s.text)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def chart_png(chart: BarChart, scale: int = 2) -> bytes:
    """The same shapes drawn by Pillow at ``scale`` x (sharp in a printed report)."""
    from PIL import Image, ImageDraw

    (width, height), shapes = chart_shapes(chart)
    im = Image.new("RGB", (width * scale, height * scale), "white")
    draw = ImageDraw.Draw(im)
    fonts: dict[int, object] = {}
    anchors = {"start": "lm", "middle": "mm", "end": "rm"}
    for s in shapes:
        if s.kind == "rect":
            if s.x2 > 0:
                draw.rectangle([s.x * scale, s.y * scale, (s.x + s.x2) * scale - 1, (s.y + s.y2) * scale - 1],
                               fill=s.colour)
        elif s.kind == "line":
            for a, b in _dashes(s) if s.dashed else [((s.x, s.y), (s.x2, s.y2))]:
                draw.line([a[0] * scale, a[1] * scale, b[0] * scale, b[1] * scale], fill=s.colour,
                          width=max(1, round(s.width * scale)))
        else:
            font = fonts.setdefault(s.size, _font(s.size * scale))
            draw.text((s.x * scale, s.y * scale), s.text, fill=s.colour, font=font, anchor=anchors[s.anchor])
    out = io.BytesIO()
    im.save(out, "PNG", optimize=True)
    return out.getvalue()


def _dashes(s: _Shape, on: float = 5, off: float = 4) -> Iterable[tuple[tuple[float, float], tuple[float, float]]]:
    length = math.hypot(s.x2 - s.x, s.y2 - s.y)
    ux, uy = ((s.x2 - s.x) / length, (s.y2 - s.y) / length) if length else (0.0, 0.0)
    t = 0.0
    while t < length:
        end = min(t + on, length)
        yield (s.x + ux * t, s.y + uy * t), (s.x + ux * end, s.y + uy * end)
        t += on + off


# ------------------------------------------------------------------ HTML

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_STYLE = """
body{font:14px/1.45 Helvetica,Arial,sans-serif;color:#222;margin:0 auto;max-width:1180px;padding:16px 24px}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #ccc;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}.meta{color:#555;margin:0 0 8px}nav a{margin-right:14px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.t,th.t{text-align:left;max-width:420px;overflow-wrap:anywhere}
.cards{display:flex;flex-direction:column;gap:10px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px;break-inside:avoid}
.card h3{margin:0 0 6px;font-size:14px;overflow-wrap:anywhere}
.row{display:flex;flex-wrap:wrap;gap:6px;align-items:flex-start}
figure{margin:0;width:86px;font-size:11px;text-align:center;overflow-wrap:anywhere}
figure .img,figure .none{width:80px;height:80px;object-fit:contain;display:block;margin:0 auto;background:#f6f6f6;
border:2px solid transparent}
figure.truth .img{border-color:#1a9850}figure.left .img{border-color:#555}
figure .none{line-height:80px;color:#999}
.sep{align-self:center;color:#777;font-size:12px;padding:0 4px}
.chart{max-width:100%;height:auto}.note{color:#555;font-size:12px}
@media print{nav{display:none}h2{break-after:avoid}}
"""


def _esc(text: object) -> str:
    """User text as HTML/XML text: one printable line (control characters escaped), ``& < > " '`` escaped."""
    return html.escape(one_line(str(text)), quote=True)


def _table_html(table: Table) -> str:
    text = [i == 0 or not table.formats[i] and not _numeric(table, i) for i in range(len(table.columns))]
    head = "".join(f'<th class="{"t" if t else "n"}">{_esc(c)}</th>' for c, t in zip(table.columns, text))
    body = "".join("<tr>" + "".join(f'<td class="{"t" if t else "n"}">{_esc(v)}</td>'
                                    for v, t in zip(table.shown(row), text)) + "</tr>" for row in table.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _numeric(table: Table, column: int) -> bool:
    return all(not isinstance(row[column], str) for row in table.rows)


class _Images:
    """Each distinct image of the page once, as an SVG ``<image>`` in a hidden ``<defs>``; every place showing it
    draws a ``<use>`` of it. An image repeats often (a foil beats the truth of several lefts): on tll-dev's
    report this is a third of the bytes. Unlike a CSS background, it prints."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def use(self, url: str) -> str:
        ref = self.ids.setdefault(url, f"i{len(self.ids)}")
        return f'<use href="#{ref}"/>'

    def defs(self) -> str:
        side = THUMBNAIL_SIDE
        images = "".join(f'<image id="{ref}" href="{_esc(url)}" width="{side}" height="{side}"/>'
                         for url, ref in self.ids.items())
        return (f'<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>{images}</defs></svg>'
                if images else "")


def _thumb_html(images: _Images, t: Thumb, role: str = "") -> str:
    """A thumbnail with its caption; ``role`` (``left``; a truth is always ``truth``) framed and named above it."""
    role = "truth" if t.truth else role
    side = THUMBNAIL_SIDE
    img = (f'<svg class="img" viewBox="0 0 {side} {side}" role="img" aria-label="{_esc(t.name)}">'
           f"<title>{_esc(t.name)}</title>{images.use(t.url)}</svg>" if t.url
           else f'<span class="none" title="{_esc(t.name)}">unreadable</span>')
    lines = [f"<b>{role}</b>" if role else "", _esc(t.caption), _esc(t.name)]
    return f'<figure class="{role}">{img}<figcaption>{"<br>".join(x for x in lines if x)}</figcaption></figure>'


def _card_html(images: _Images, card: FailureCard) -> str:
    beaten = "".join(_thumb_html(images, t) for t in card.beaten_by)
    return (f'<div class="card"><h3>{_esc(card.left.name)} — truth rank {card.truth_rank}, '
            f'margin {card.margin:.3f}, beaten by {len(card.beaten_by)}</h3><div class="row">'
            f'{_thumb_html(images, card.left, "left")}{_thumb_html(images, card.truth)}'
            f'<span class="sep">beaten by →</span>{beaten}</div></div>')


def render_html(report: Report) -> str:
    """The report as one HTML document: no script, no request to any host (the CSP says so to the browser)."""
    images = _Images()
    parts = [f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
             f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
             f'<meta name="viewport" content="width=device-width, initial-scale=1">'
             f"<title>{_esc(report.title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{_esc(report.title)}</h1><p class=\"meta\">{_esc(report.summary)}</p>"]
    sections = [("leaderboard", "Leaderboard"), ("mcnemar", "Significance"), ("tags", "Per tag"),
                ("failures", "Worst failures"), ("compare", "Compare")]
    present = {"leaderboard": True, "mcnemar": report.mcnemar is not None, "tags": report.tags is not None,
               "failures": True, "compare": report.comparison is not None}
    parts.append("<nav>" + "".join(f'<a href="#{key}">{name}</a>' for key, name in sections if present[key])
                 + "</nav>")
    parts += ['<section id="leaderboard"><h2>Leaderboard</h2>', _table_html(report.leaderboard),
              f'<div class="chart">{chart_svg(report.chart, standalone=False)}</div>',
              f'<p class="note">Bars: {_esc(report.chart.axis)}; whiskers: its 95% bootstrap interval (1000 '
              f'resamples of the lefts); dashed: chance ({report.chart.reference:.2f}).</p></section>']
    if report.mcnemar is not None:
        parts += ['<section id="mcnemar"><h2>Significance</h2><p class="note">Two-sided exact McNemar test on '
                  "the lefts that one method has in its top 2 and the other not.</p>",
                  _table_html(report.mcnemar), "</section>"]
    if report.tags is not None:
        parts += ['<section id="tags"><h2>Per tag</h2><p class="note">Each tag\'s lefts among these tasks, their '
                  "top-2 hits and mean truth rank under each method.</p>", _table_html(report.tags), "</section>"]
    shown = len(report.worst)
    parts += [f'<section id="failures"><h2>Worst failures of {_esc(report.failures_of)}</h2>'
              f'<p class="note">{shown} of {report.n_failures} lefts whose truth is not in the top 2, worst truth '
              "rank first; each with its truth (green) and every candidate that scored at least as high "
              "(rank · score).</p>",
              '<div class="cards">' + "".join(_card_html(images, c) for c in report.worst) + "</div></section>"]
    if report.comparison is not None:
        c = report.comparison
        parts += ['<section id="compare"><h2>Compare</h2>',
                  f"<p>A: <b>{_esc(c.a)}</b><br>B: <b>{_esc(c.b)}</b></p>", _table_html(c.table)]
        for name, size, thumbs in c.lefts:
            more = f" (the first {len(thumbs)})" if size > len(thumbs) else ""
            parts.append(f"<h3>{_esc(name)}: {size} lefts{more}</h3>")
            parts.append('<div class="row">' + "".join(_thumb_html(images, t) for t in thumbs) + "</div>"
                         if thumbs else '<p class="note">none</p>')
        parts.append("</section>")
    parts.insert(2, images.defs())  # after the heading: every image the sections use, once
    parts.append("</body></html>\n")
    return "".join(parts)


# ------------------------------------------------------------------ files


def figures_folder(out: Path) -> Path:
    """Where a report's tables and charts go as files: ``<out stem>_figures/`` beside it."""
    return out.with_name(f"{out.stem}_figures")


_ALL_FILES = ("leaderboard.csv", "mcnemar.csv", "tags.csv", "worst_failures.csv", "compare.csv",
              "compare_slices.csv")


def check_report_path(out: str | Path, dataset=None) -> Path:  # dataset: Dataset
    """Refuse, in one line and before any scoring, an ``out`` (or its figures folder) that cannot be written."""
    out = check_output_path(out, dataset, what="the report", example="report.html")
    folder = figures_folder(out)
    if folder.exists() and not folder.is_dir():
        raise ReportError(f"{folder}: not a folder; the report's figure files go there (move it away)")
    return out


def write_report(report: Report, out: str | Path) -> list[Path]:
    """Write the HTML to ``out`` and each table (CSV) and chart (SVG, PNG) into :func:`figures_folder`, every
    file atomically; the HTML is written last. A figure file a previous report left there that this one does
    not have (``tags.csv`` once no left is tagged) is removed. Returns the HTML's path, then the figure files'."""
    out = check_report_path(out)
    folder = figures_folder(out)
    files = {f"{t.name}.csv": t.csv().encode("utf-8") for t in report.tables}
    files[f"{report.chart.name}.svg"] = chart_svg(report.chart).encode("utf-8")
    files[f"{report.chart.name}.png"] = chart_png(report.chart)
    written = []
    for name, data in files.items():
        write_atomically(folder / name, data)
        written.append(folder / name)
    for name in _ALL_FILES:
        if name not in files and (folder / name).is_file():
            (folder / name).unlink()
    write_atomically(out, render_html(report).encode("utf-8"))
    return [out, *written]
