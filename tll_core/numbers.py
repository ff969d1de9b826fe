"""One rule for a number a user writes — a matcher option, a flag, a URL parameter, an environment variable, a
submission's score: plain ASCII decimals, an optional sign, fraction and exponent, as Kaggle parses them.

Python's ``int()``/``float()`` also take ``1_000``, full-width ``５`` and Arabic-Indic digits; ``str.isdigit``
takes ``²``. None of those is a number here, anywhere.
"""
from __future__ import annotations

import argparse
import re

from .errors import shown

DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
WHOLE = re.compile(r"[+-]?\d+", re.ASCII)
NON_FINITE = re.compile(r"[+-]?(nan|inf|infinity)", re.ASCII | re.IGNORECASE)
WHOLE_RULE = "plain ASCII digits such as 5 or -3"
DECIMAL_RULE = "plain ASCII decimals such as 5, 0.25 or -1.5e-3"
RULES = {int: WHOLE_RULE, float: DECIMAL_RULE}
MAX_WHOLE_DIGITS = 19  # every whole number the tool takes (seeds, sizes, counts) is below 2^63


def parse_whole(text: str) -> int:
    """``text`` (surrounding spaces and tabs aside) as a whole number, or ValueError naming it and the rule
    (past 19 digits: too large for anything here, and never handed to ``int``, which refuses 4300 digits)."""
    text = text.strip(" \t")  # ASCII blanks only: a no-break space is not one (nor is it to Kaggle)
    if not WHOLE.fullmatch(text):
        raise ValueError(f"'{shown(text)}' is not a whole number ({WHOLE_RULE})")
    if len(text.lstrip("+-").lstrip("0")) > MAX_WHOLE_DIGITS:
        raise ValueError(f"'{shown(text)}' is too large (at most {MAX_WHOLE_DIGITS} digits)")
    return int(text)


def parse_decimal(text: str, *, non_finite: bool = False) -> float:
    """``text`` as a number by the one rule; ``non_finite``: ``nan``/``inf`` too (for a range check to refuse
    in its own words). ValueError naming the text otherwise."""
    text = text.strip(" \t")  # ASCII blanks only: a no-break space is not one (nor is it to Kaggle)
    if DECIMAL.fullmatch(text) or (non_finite and NON_FINITE.fullmatch(text)):
        return float(text)
    raise ValueError(f"'{shown(text)}' is not a number ({DECIMAL_RULE})")


def whole_arg(text: str) -> int:
    """An argparse ``type=``: one line (argparse's own, naming the flag) on anything but a whole number."""
    try:
        return parse_whole(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def decimal_arg(text: str) -> float:
    """An argparse ``type=`` for a (finite) number by the one rule."""
    try:
        return parse_decimal(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
