"""Scores a person can read: what a method's score means, and two figures that compare across methods.

A raw score is on its method's own scale: a cosine in [-1, 1], a negated distance in the hundreds, Sinkhorn's
log assignment weight (at most 0). Each part declares what its score means (``Part.score``, a
:class:`tll_core.register.Score`); :func:`score_help` puts the selection's parts into words. Beside the raw
score the studio shows two figures on one scale for every method:

- the candidate's **rank** in its task (1 = the highest of the 20 scores), and
- its **share**: a softmax over its task's 20 scores after standardising them
  (:func:`tll_core.evaluation.shares.task_shares`).
"""
from __future__ import annotations

from .engine import Method
from .evaluation.shares import SHARE_HELP
from .register import REGISTER, Score


def _declared(score: Score | None, name: str) -> str:
    return score.describe() if score is not None else f"{name} declares no meaning for its score (higher = better match)"


def matcher_score(method: Method) -> Score | None:
    """What the method's matcher declares its score to mean, with the method's options (its metric)."""
    return method.part.score_of(dict(method.options))


def shown_score(method: Method) -> str:
    """What the score shown for ``method`` is, in one line: the re-ranker's declared meaning when it re-ranks,
    else the matcher's."""
    if method.rerank != "none":
        return f"{method.rerank} re-ranking: {_declared(REGISTER.get('rerank', method.rerank).score, method.rerank)}"
    return f"{method.name}: {_declared(matcher_score(method), method.name)}"


def score_help(method: Method) -> str:
    """What the scores of ``method`` mean, in the words its parts declare: the matcher's, then the re-ranker's
    (the score shown), then how to read share and rank."""
    text = f"Score of {method.name}: {_declared(matcher_score(method), method.name)}."
    if method.rerank != "none":
        rerank = REGISTER.get("rerank", method.rerank).score
        text += f" Re-ranked by {method.rerank}, the score shown is {_declared(rerank, method.rerank)}."
    return f"{text} {SHARE_HELP}"


def reading(score: float, rank: int, share: float, n: int = 20) -> str:
    """``-0.950 (rank 1 of 20, share 41%)``."""
    return f"{score:.3f} (rank {rank} of {n}, share {share:.0%})"


def why_relation(method: Method, backbone: str, member: str, member_cosine: float, centred: bool,
                 score: float, rank: int, share: float, n: int = 20) -> str:
    """One sentence: which score the Why map explains (``member``'s cosine of the two embeddings, centred or
    not) and how it relates to the score the selection ranks by."""
    explained = f"{'centred ' if centred else ''}cosine {member_cosine:.3f}"
    part = method.part
    options = dict(method.options)
    same = (method.rerank == "none" and not method.flip_tta and member == backbone
            and part.metric is None and part.metric_label(options) == "cosine"
            and "centre" in {s.name for s in part.options} and options.get("centre", part.option("centre").default) == centred)
    reranked = method.rerank != "none"
    head = f"The selection scores this candidate {reading(score, rank, share, n)}" + (
        f" after {method.rerank} re-ranking" if reranked else "")
    if same:
        return f"{head}; the map explains that very score: {member}'s {explained}."
    plain = part.metric is None and "centre" in {s.name for s in part.options}  # a metric on the embeddings
    steps = [*([] if plain else [method.name]), *([f"{method.rerank} re-ranking"] if reranked else [])]
    before = f", before {' and '.join(steps)}" if steps else ""
    return (f"{head}; the map explains the {member} member's {explained} (the zero-shot similarity{before}), "
            "one input to it.")
