"""What the studio shows with: literal text, one-line errors, confined images and option widgets.

Every name or message shown comes from files someone else may have named: it goes through :func:`md`
(literal text, never markdown or HTML), and images are shown from bytes read through the dataset's
confined reader (re-checked at every open), never from a path handed to the browser.
"""
from __future__ import annotations

import html
import math
import re
from typing import Any

import streamlit as st

from tll_core.engine import Engine
from tll_core.errors import TLLError, shown
from tll_core.images import check_bytes
from tll_core.register import OptionSpec

_MARKDOWN = re.compile(r"[!-/:-@\[-`{-~]")  # every ASCII punctuation character: all of them may be escaped
JS_SAFE_INTEGER = 2**53 - 1  # the browser's number widgets cannot hold a larger whole number exactly


def md(text: object) -> str:
    """``text`` as literal characters in any markdown context (st.markdown, captions, st.error, …).

    A file named ``![p](&#47;&#47;host&#47;b.png)`` must not make the browser fetch a URL, ``[x](…)`` must not
    become a link and ``**E**`` must not turn bold: every ASCII punctuation character is backslash-escaped
    (CommonMark lets each of them be), which also defuses HTML, entities, ``$`` maths and ``:colour[…]``.
    """
    return _MARKDOWN.sub(lambda m: "\\" + m.group(0), " ".join(str(text).splitlines()))


def chart_label(text: str, width: int = 22) -> str:
    """``text`` as a chart's tick label that stays inside its figure: escaped (plotly reads tags in labels) and
    broken onto lines of about ``width`` characters after ``·`` and ``+`` (a longer run is cut where it must)."""
    parts = re.findall(r"[^·+]+(?:[·+]|$)", text) or [text]
    lines = [""]
    for part in parts:
        for piece in [part[k:k + width] for k in range(0, len(part), width)]:
            if lines[-1] and len(lines[-1]) + len(piece) > width:
                lines.append("")
            lines[-1] += piece
    return "<br>".join(html.escape(line.strip()) for line in lines if line.strip())


def show_error(problem: object, where: Any = st) -> None:  # where: st or a container
    """One line of literal text in an error box (never a traceback); in a studio user's words where the
    problem has them (missing weights: ``$TLL_WEIGHTS_DIR`` for the running studio, not a CLI flag)."""
    where.error(md(getattr(problem, "studio", problem)))


def show_image(where: Any, eng: Engine, image_id: str, caption: str = "", **kwargs: Any) -> None:
    """An image from bytes read through the dataset's confined reader (re-resolved and checked now) and
    checked as the engine checks them (one of ``IMAGE_FORMATS``, within the pixel and decode limits) before
    Streamlit's own, unrestricted ``Image.open`` sees them; a refused, vanished or unreadable file is a
    one-line message in its place. ``where``: st or a container."""
    try:
        image = eng.dataset.read_image(image_id)
    except TLLError as exc:
        show_error(exc, where)
        return
    problem = check_bytes(image, shown(image_id))
    if problem:
        show_error(problem, where)
        return
    where.image(image.data, caption=caption or None, **kwargs)


def option_input(where: Any, spec: OptionSpec, value: Any, key: str) -> Any:
    """The widget of one option, from its register entry: bool → checkbox, choices → selectbox, int → whole
    number input, float → number input (both bounded by the option's range), other text → text input.

    ``value`` seeds it (the default when it does not suit the widget). What comes back is not yet checked
    (an exclusive bound such as ``above=0`` is the widget's minimum): ``Part.checked_options`` does that."""
    value = _seed(spec, value)
    label, helps = spec.name, {"key": key, "help": spec.help or None}
    if spec.kind is bool:
        return where.checkbox(label, value=value, **helps)
    if spec.choices:
        return where.selectbox(label, spec.choices, index=spec.choices.index(value), **helps)
    if spec.kind is int:
        low, high = _whole_bounds(spec)
        return where.number_input(label, min_value=low, max_value=high, value=value, step=1, **helps)
    if spec.kind is float:
        low, high = (None if b is None else float(b) for b in (spec.minimum, spec.maximum))
        return where.number_input(label, min_value=low, max_value=high, value=value, format="%.4g", **helps)
    return where.text_input(label, value=str(value), **helps)


def _seed(spec: OptionSpec, value: Any) -> Any:
    """``value`` if the option accepts it, else its default (a widget must never be seeded out of range)."""
    try:
        value = spec.check(value)
    except TLLError:
        return spec.default
    return float(value) if spec.kind is float else value


def _whole_bounds(spec: OptionSpec) -> tuple[int | None, int | None]:
    """The whole-number range of an int option, within what the browser can hold."""
    low = math.ceil(spec.lo) if spec.lo is not None else (
        math.floor(spec.above) + 1 if spec.above is not None else -JS_SAFE_INTEGER)
    high = math.floor(spec.hi) if spec.hi is not None else (
        math.ceil(spec.below) - 1 if spec.below is not None else JS_SAFE_INTEGER)
    return max(low, -JS_SAFE_INTEGER), min(high, JS_SAFE_INTEGER)
