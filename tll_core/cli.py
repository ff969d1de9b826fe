"""``python -m tll_core``: list backbones, write the demo, evaluate, submit, validate, manage the cache.

Every failure ends with one line on stderr naming the file or row, and a non-zero exit;
``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from .backbones.registry import DEFAULT_BACKBONE, BACKBONES, weights_available
from .device import DEVICES
from .errors import TLLError, bounded_line, os_problem, quoted, shown, shown_path
from .numbers import decimal_arg, whole_arg
from .evaluation.metrics import metric_names
from .register import KINDS, REGISTER, Part
from .evaluation.figures import PROTOCOLS, figures_of
from .evaluation.tasks import DEFAULT_SEED, DEFAULT_VAL_FRACTION

if TYPE_CHECKING:
    from .engine import Method

EXIT_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.notices = []  # one-line notices (a fallen-back default), shown after a run that succeeds
    try:
        with warnings.catch_warnings(record=True) as caught:  # a library's warning is one line too, never two
            code = int(args.run(args) or 0)
        args.notices += [_notice(str(w.message)) for w in caught]
        for notice in dict.fromkeys(args.notices):
            print(bounded_line(notice), file=sys.stderr)
        return code
    except TLLError as exc:
        if args.debug:
            raise
        print(f"error: {bounded_line(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted (finished batches are cached)", file=sys.stderr)
        return 130
    except OSError as exc:  # the machine, not the input: a full disk, a read-only or vanished folder
        if args.debug:
            raise
        print(f"error: {bounded_line(os_problem(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug, but still one line for the user
        if args.debug:
            raise
        print(bounded_line(f"error: unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)"),
              file=sys.stderr)
        return 1


def _notice(text: str) -> str:
    text = " ".join(text.split())
    return text if text.startswith("notice: ") else f"notice: {text}"


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line too (``error: …``, exit 2), not the usage block."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_ERROR, f"error: {bounded_line(f'{self.prog}: {message}')} (see --help)\n")

    def _check_value(self, action: argparse.Action, value: object) -> None:
        """argparse's choice check, quoting the value shortened (argparse's own message echoes it whole)."""
        if action.choices is not None and value not in action.choices:
            raise argparse.ArgumentError(action, f"invalid choice: {quoted(value)} "
                                                 f"(choose from {', '.join(map(str, action.choices))})")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m tll_core", description="Totally-Looks-Like matching engine")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("backbones", help="list the registered backbones")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_backbones)

    p = sub.add_parser("parts", help="list the register: backbone families, matchers and re-rankers with their options")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_parts)

    p = sub.add_parser("demo", help="write the demo dataset (Kaggle layout)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(run=cmd_demo)

    p = sub.add_parser("evaluate", help="backbones x methods on validation tasks built from the train pairs",
                       epilog=_options_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    _data_options(p)
    _validation_options(p)
    p.add_argument("--foils", choices=("random", "hard"), default="random",
                   help="hard: the 19 validation rights nearest to each left under --foil-backbone")
    p.add_argument("--foil-backbone", default=DEFAULT_BACKBONE)
    _method_options(p, repeat=True)
    _import_options(p, repeat=True)
    p.add_argument("--fuse", action="store_true", help="add a row fusing all the rows' scores (z-scored mean)")
    p.add_argument("--protocol", choices=PROTOCOLS, default="tasks",
                   help="tasks: 20 candidates per left (the competition's); gallery: every validation left "
                        "ranked against all validation rights (recall@k, median rank)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("submit", help="score the test tasks and write the Kaggle CSV", epilog=_options_epilog(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _data_options(p)
    p.add_argument("--backbone", help="default: the default recipe's (see README)")
    p.add_argument("--metric", choices=metric_names(), help="a zero-shot metric (given alone, the method is zero-shot)")
    p.add_argument("--seed", type=whole_arg, default=DEFAULT_SEED,
                   help="the seed of the test pools' order (the scores do not depend on it)")
    _method_options(p, repeat=False)
    _import_options(p, repeat=False)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(run=cmd_submit)

    p = sub.add_parser("report", help="one self-contained HTML report of backbones x methods on the validation "
                                      "tasks, its tables and charts also as CSV/SVG/PNG files beside it",
                       epilog=_options_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    _data_options(p)
    _validation_options(p)
    _method_options(p, repeat=True)
    _import_options(p, repeat=True)
    p.add_argument("--out", required=True, type=Path, help="the HTML file; its figures go to <stem>_figures/ beside it")
    p.add_argument("--worst", type=whole_arg, default=20, help="how many of the first method's worst failures (20)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"),
                   help="the two methods whose disagreements are shown, by label (default: the first two)")
    p.set_defaults(run=cmd_report)

    p = sub.add_parser("studio", help="open the studio (streamlit) on a folder, with your own scores and embeddings")
    p.add_argument("--data", required=True, type=Path, help="a TLL folder (Kaggle or release layout)")
    _import_options(p, repeat=True)
    p.add_argument("--port", type=whole_arg, default=8501)
    p.set_defaults(run=cmd_studio)

    p = sub.add_parser("tasks", help="write the tasks evaluate scores (left,c0..c19) and the fit pairs (left,right), "
                                     "to score them elsewhere and bring the scores back with --scores")
    _data_options(p)
    p.add_argument("--split", choices=("validation", "test"), default="validation")
    p.add_argument("--val-fraction", type=decimal_arg, default=DEFAULT_VAL_FRACTION)
    p.add_argument("--seed", type=whole_arg, default=DEFAULT_SEED)
    p.add_argument("--foils", choices=("random", "hard"), default="random",
                   help="hard: the 19 validation rights nearest to each left under --foil-backbone")
    p.add_argument("--foil-backbone", default=DEFAULT_BACKBONE)
    p.add_argument("--out", required=True, type=Path, help="the tasks: left,c0..c19 (the shape of test_candidates.csv)")
    p.add_argument("--fit-out", type=Path, help="the pairs to train on for these tasks: left,right")
    p.set_defaults(run=cmd_tasks)

    p = sub.add_parser("reproduce", help="the seed reports' experiments, wherever the weights are available")
    _data_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_reproduce)

    p = sub.add_parser("validate-submission", help="check a submission CSV against test_candidates.csv")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("file", type=Path)
    p.set_defaults(run=cmd_validate)

    p = sub.add_parser("runs", help="list the runs kept for a folder (every method evaluate, the API or the studio's "
                       "leaderboard evaluated on it), or delete one")
    p.add_argument("--data", required=True, type=Path, help="the TLL folder the runs were evaluated on")
    p.add_argument("--cache-dir", type=Path, help="default: $TLL_CACHE_DIR or ./cache")
    p.add_argument("--delete", metavar="ID", help="delete the run with this id (or a unique start of it)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_runs)

    p = sub.add_parser("cache", help="show or clear the embedding cache")
    p.add_argument("--cache-dir", type=Path, help="default: $TLL_CACHE_DIR or ./cache")
    p.add_argument("--size-limit", type=whole_arg, help="bytes: set the limit (older embeddings are evicted past it)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--info", action="store_true", help="(default)")
    group.add_argument("--clear", action="store_true")
    p.set_defaults(run=cmd_cache)
    return parser


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="a TLL folder (Kaggle or release layout)")
    p.add_argument("--cache-dir", type=Path, help="default: $TLL_CACHE_DIR or ./cache")
    p.add_argument("--no-cache", action="store_true", help="compute every embedding afresh")
    p.add_argument("--batch-size", type=whole_arg, default=32)
    p.add_argument("--workers", type=whole_arg, default=2, help="image decoding threads")
    p.add_argument("--weights", action="append", default=[], metavar="[NAME=]FILE",
                   help="local weights file for a deep backbone (NAME= needed with several backbones)")
    p.add_argument("--random-weights", action="store_true", help="deep backbones with seeded random weights (testing)")
    p.add_argument("--no-centre", dest="centre", action="store_false",
                   help="do not subtract the mean embedding before the metric")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="where deep backbones and learned matchers run (auto: cuda, else mps, else cpu)")


def _validation_options(p: argparse.ArgumentParser) -> None:
    """--backbone and --metric (repeatable), --val-fraction and --seed: backbones x methods on a validation split
    (``evaluate``, ``report``)."""
    p.add_argument("--backbone", action="append", help="repeatable (default: the default recipe's, see README)")
    p.add_argument("--metric", action="append", choices=metric_names(),
                   help="repeatable; a zero-shot metric (given alone, the method is zero-shot)")
    p.add_argument("--val-fraction", type=decimal_arg, default=DEFAULT_VAL_FRACTION)
    p.add_argument("--seed", type=whole_arg, default=DEFAULT_SEED)


def _method_options(p: argparse.ArgumentParser, repeat: bool) -> None:
    """--method, --rerank and --option: choices and help from the register (a new part appears here by itself)."""
    many = " (repeatable)" if repeat else ""
    matchers = "; ".join(f"{part.name}: {part.help}" for part in REGISTER.parts("matcher"))
    rerankers = "; ".join(f"{part.name}: {part.help}" for part in REGISTER.parts("rerank"))
    p.add_argument("--method", action="append" if repeat else "store", choices=REGISTER.names("matcher"),
                   help=f"the matcher{many} (default: the recipe's) — {matchers}")
    p.add_argument("--rerank", action="append" if repeat else "store", choices=REGISTER.names("rerank"),
                   help=f"test-time re-ranking{many} (default: the recipe's) — {rerankers}")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the chosen matcher(s) or re-ranker(s), checked against its type and range; "
                        "the options are listed below and by `python -m tll_core parts`")
    p.add_argument("--flip-tta", action="store_true", help="average scores over the images and their mirrors")


def _import_options(p: argparse.ArgumentParser, repeat: bool) -> None:
    """--scores and --embeddings: a model of the user's own, scored or embedded elsewhere (tll_core/imported.py)."""
    many = " (repeatable)" if repeat else ""
    p.add_argument("--scores", action="append" if repeat else "store", default=[] if repeat else None,
                   metavar="[NAME=]FILE", help=f"your own scores{many}: a left,c0..c19 CSV for these tasks (export "
                   "them with `tasks`); NAME (default: the file's stem) is a method beside the others")
    p.add_argument("--embeddings", action="append" if repeat else "store", default=[] if repeat else None,
                   metavar="[NAME=]FILE", help=f"your own embeddings{many}: .npz (names, embeddings) or .parquet "
                   "(name, embedding) by image path (train/left/abc.jpg); NAME is a backbone like the others")


def _imports(args: argparse.Namespace) -> tuple[list[str], list]:  # -> (backbones, [Method])
    """The imported backbones and methods, entered in the register (one line on a bad file)."""
    from .engine import Method
    from .imported import add_embeddings, add_scores, distinct, named_file

    backbones = [add_embeddings(named) for named in distinct([named_file(t) for t in _listed(args.embeddings)])]
    methods = [Method(add_scores(named), rerank=reranker) for named in distinct([named_file(t) for t in _listed(args.scores)])
               for reranker in (_listed(args.rerank) or ["none"])]
    return backbones, methods


def _evaluated(args: argparse.Namespace) -> tuple[list[str], list]:  # -> (backbones, [Method])
    """What ``evaluate`` and ``report`` score: the backbones and methods asked for (each checked) and the imported
    ones; given only your own scores, no backbone (nothing else to embed)."""
    imported_backbones, imported_methods = _imports(args)
    own_only = imported_methods and not (imported_backbones or _listed(args.backbone) or _listed(args.method)
                                         or args.metric)
    backbones = [] if own_only else list(dict.fromkeys(_backbones(args, imported_backbones)))
    _check_backbones(backbones)
    methods = ([] if own_only else _methods(args, args.metric or ["cosine"])) + imported_methods
    return backbones, methods


def _options_epilog() -> str:
    """Every matcher's and re-ranker's options, one per line (type, range, default, help)."""
    lines = ["options (--option KEY=VALUE):"]
    for kind in ("matcher", "rerank"):
        for part in REGISTER.parts(kind):
            own = part.options
            if own:
                lines.append(f"  {part.name}:")
                lines += [f"    {spec.describe()}" for spec in own]
    return "\n".join(lines)



def _methods(args: argparse.Namespace, metrics: list[str]) -> list:  # -> list[Method]
    from .engine import Method, with_options
    from .recipes import default_recipe

    recipe = default_recipe()
    names = _listed(args.method) or (["zero-shot"] if args.metric else [recipe.method.name])
    reranks = _listed(args.rerank) or [recipe.method.rerank]
    default_options = {} if _listed(args.method) or recipe.method.name not in names else dict(recipe.method.options)
    texts = dict(_split_option(o) for o in args.option)
    parts = [REGISTER.get("matcher", n) for n in dict.fromkeys(names)]
    rerankers = [REGISTER.get("rerank", r) for r in dict.fromkeys(reranks)]
    for key in texts:
        owners = [q for q in parts + rerankers if key in _settable(q)]
        if not owners:
            names_ = ", ".join(q.name for q in parts + rerankers)
            raise TLLError(f"--option {shown(key)}: not an option of {names_}; see `python -m tll_core parts`")
    # each value parsed by its option's own spec: wrong types and ranges fail now, before any work
    rerank_options = {r.name: _parsed(r, texts) for r in rerankers}
    out = []
    for part in parts:
        own = dict(default_options) if part.name == recipe.method.name else {}
        own_options = _parsed(part, texts, own)
        for metric in (metrics if part.metric is None else [None]):  # --metric: for a matcher with that option
            options = with_options(part.name, own_options, metric=metric, centre=args.centre)
            for reranker in rerankers:
                out.append(Method(part.name, options, reranker.name, rerank_options[reranker.name], args.flip_tta))
    return out


def _parsed(part: Part, texts: dict[str, str], base: dict | None = None) -> tuple[tuple[str, object], ...]:
    """``base`` updated with the ``--option`` texts that are ``part``'s options, each parsed and checked."""
    chosen = {**(base or {}), **{k: part.option(k).parse(t) for k, t in texts.items() if k in _settable(part)}}
    return tuple(sorted(part.checked_options(chosen).items()))


def _settable(part: Part) -> set[str]:
    return {spec.name for spec in part.options}


def _listed(value: list[str] | str | None) -> list[str]:
    return value if isinstance(value, list) else ([value] if value else [])


def _backbones(args: argparse.Namespace, imported: list[str] | None = None) -> list[str]:
    """The backbones asked for (``imported`` ones too); else the default recipe's, with a one-line notice when it
    had to fall back."""
    from .recipes import default_recipe, fallback_notice

    if _listed(args.backbone) or imported:
        return _listed(args.backbone) + list(imported or [])
    notice = fallback_notice()
    if notice:
        args.notices.append(notice)
    return [default_recipe().backbone]


def _default_method(args: argparse.Namespace) -> bool:
    return not _listed(args.method) and not args.metric


def _small_fit(args: argparse.Namespace, method):  # -> Method
    """The default method, unless the fit part is too small for its learned matcher (then zero-shot, with a notice)."""
    from .recipes import for_fit_size

    method, notice = for_fit_size(method, args.n_fit)
    if notice:
        args.notices.append(notice)
    return method


def _split_option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise TLLError(f"--option {shown(text)}: expected KEY=VALUE")
    return key.strip(), value


def _engine(args: argparse.Namespace, backbones: list[str]):  # -> Engine
    from .cache import EmbeddingCache
    from .dataset import load_dataset
    from .engine import Engine
    from .imported import check_images

    if args.batch_size < 1 or args.workers < 1:
        raise TLLError("--batch-size and --workers must be at least 1")
    weights = {}
    parts = dict.fromkeys(part for b in backbones for part in _parts(b))  # ensembles name several backbones
    for spec in args.weights:
        name, sep, file = spec.partition("=")
        if not sep:
            deep = [b for b in parts if BACKBONES.get(b) and BACKBONES[b].needs_weights]
            if len(deep) != 1:
                raise TLLError(f"--weights {shown_path(spec)}: say which backbone it is for, as NAME=FILE")
            name, file = deep[0], spec
        weights[name] = file
    cache = None if args.no_cache else EmbeddingCache(args.cache_dir)
    dataset = load_dataset(args.data, index_dir=cache.directory if cache is not None else None)
    args.notices += [_notice(w) for w in dataset.warnings]
    check_images(dataset)  # imported embeddings name only this folder's images
    if cache is not None:
        args.notices += [_notice(n) for n in cache.notices]
    return Engine(dataset, cache, batch_size=args.batch_size, workers=args.workers, weights=weights,
                  pretrained=not args.random_weights, device=args.device)


def _parts(backbone: str) -> tuple[str, ...]:
    from .backbones.registry import Ensemble

    return Ensemble.parse(backbone).parts


def _check_backbones(names: list[str]) -> None:
    """Each name is a registered backbone or an ensemble ``a+b`` of them; one line naming the first bad part."""
    for name in names:
        for part in _parts(name):
            if part not in BACKBONES:
                where = f" (in {quoted(name)})" if part != name else ""
                raise TLLError(f"unknown backbone {quoted(part)}{where}; choose from: {', '.join(BACKBONES)} "
                               f"or an ensemble of them joined with +")


@contextmanager
def _progress(args: argparse.Namespace, label: str) -> Iterator:
    if args.quiet:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=0, desc=label, unit="img", file=sys.stderr, leave=False, disable=None)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


def cmd_backbones(args: argparse.Namespace) -> int:
    rows = [{"name": c.name, "family": c.family, "dim": c.dim, "pretrained": c.pretrained,
             "available": weights_available(c.name), "weights": _weights_source(c)} for c in BACKBONES.values()]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'name':24} {'family':12} {'dim':>5}  weights")
    for row in rows:
        state = "none needed" if not row["pretrained"] else ("available" if row["available"] else "not available here")
        print(f"{row['name']:24} {row['family']:12} {row['dim']:>5}  {state} ({row['weights']})")
    return 0


def cmd_parts(args: argparse.Namespace) -> int:
    rows = [_part_row(part) for kind in KINDS for part in REGISTER.parts(kind)]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for row in rows:
        metric = f" [scores with {row['metric']}]" if row.get("metric") else ""
        print(f"{row['kind']:8} {row['name']:16} {row['help']}{metric}")
        for spec in REGISTER.get(row["kind"], row["name"]).options:
            print(f"{'':26}{spec.describe()}")
    return 0


def _part_row(part: Part) -> dict:
    row = {"kind": part.kind, "name": part.name, "help": part.help,
           "options": [{"name": s.name, "type": s.kind.__name__, "default": s.default, "min": s.minimum,
                        "max": s.maximum, "choices": list(s.choices), "help": s.help} for s in part.options]}
    if part.kind == "matcher":
        row["metric"] = part.metric or "the metric option"
    if part.kind == "figure":
        row["protocols"] = list(part.create().protocols)
    return row


def _weights_source(cfg) -> str:  # cfg: BackboneCfg
    if not cfg.needs_weights:
        return "weight-free"
    hub = f"{cfg.family} hub {cfg.hub_model or f'{cfg.model_id}.{cfg.weights_tag}'}"
    return f"pip package {cfg.packaged.distribution}, else {hub}" if cfg.packaged else hub


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import write_demo

    out = write_demo(args.out, overwrite=args.overwrite)
    print(f"demo dataset written to {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.protocol == "gallery" and (args.foils == "hard" or args.fuse):
        raise TLLError(f"{'--foils hard' if args.foils == 'hard' else '--fuse'} applies to the 20-candidate tasks, "
                       "not to --protocol gallery (every left is ranked against all validation rights)")
    backbones, methods = _evaluated(args)
    _check_backbones([args.foil_backbone])
    engine = _engine(args, backbones)
    if _default_method(args):
        from .evaluation.tasks import split_pairs

        fit, _ = split_pairs(engine.dataset.train_pairs, args.val_fraction, args.seed) if engine.dataset.train_pairs else ((), ())
        args.n_fit = len(fit)
        methods = [_small_fit(args, m) for m in methods]
    if args.protocol == "gallery":
        with _progress(args, "embedding") as progress:
            rows = engine.evaluate_gallery(backbones, methods, val_fraction=args.val_fraction, seed=args.seed,
                                           progress=progress)
        _record(args, engine, backbones, methods, rows)
        _print_rows(rows, args.json)
        return 0
    with _progress(args, "embedding") as progress:
        rows = engine.evaluate(backbones, methods=methods, val_fraction=args.val_fraction, seed=args.seed,
                               foils=args.foils, foil_backbone=args.foil_backbone, fuse=args.fuse, progress=progress)
    if args.foils == "random":  # hard foils are not a selection the studio can reopen
        _record(args, engine, backbones, methods, rows)
    _print_rows(rows, args.json)
    return 0


def _record(args: argparse.Namespace, engine, backbones: list[str], methods: list, rows: list) -> None:
    """Keep each row as a run of the folder (``python -m tll_core runs``); with --no-cache, nothing is kept."""
    from .selection import record_evaluation

    record_evaluation(engine, backbones, methods, rows, args.val_fraction, args.seed, args.cache_dir)


def _print_rows(rows: list, as_json: bool) -> None:  # rows: list[ResultRow], one protocol
    """JSON, or a table with a column per registered figure of the rows' protocol (its header and format)."""
    if as_json:
        print(json.dumps([r.as_dict() for r in rows], indent=1))
        return
    protocol = rows[0].protocol if rows else "tasks"
    figures = figures_of(protocol)
    width = max([len(r.method) for r in rows] + [10])
    versus = protocol == "tasks" and any(math.isfinite(r.versus_first) for r in rows)  # McNemar p against row 1
    tail = f" {'gallery':>7}" if protocol == "gallery" else "  top2 95% CI   " + (" p vs 1st" if versus else "")
    print(f"{'backbone':22} {'metric':10} {'method':{width}} " + " ".join(f"{f.header:>6}" for f in figures)
          + f" {'n':>5}{tail}")
    for r in rows:
        values = " ".join(f"{f.shown(r[f.name]):>6}" for f in figures)
        tail = f" {r.gallery:7d}" if protocol == "gallery" else f"  [{r.ci[0]:.3f}, {r.ci[1]:.3f}]"
        if versus:
            tail += f"  {r.versus_first:8.3g}" if math.isfinite(r.versus_first) else f"  {'-':>8}"
        if r.skipped:
            values, tail = "  ".join("-" * 5 for _ in figures), f"  not run: {bounded_line(r.skipped)}"
        print(f"{r.backbone:22} {r.metric:10} {r.method:{width}} {values} {r.n:5d}{tail}")


def cmd_report(args: argparse.Namespace) -> int:
    from .engine import NO_BACKBONE
    from .report import (ScoredMethod, build_report, check_compare, check_report_path, figures_folder, headline,
                         write_report)
    from .tags import TagStore

    if args.worst < 1:
        raise TLLError(f"--worst {args.worst}: give how many failures to show, at least 1")
    backbones, methods = _evaluated(args)
    engine = _engine(args, backbones)
    out = check_report_path(args.out, engine.dataset)  # before the minutes of scoring
    split = engine.validation(args.val_fraction, args.seed)
    if _default_method(args):
        args.n_fit = len(split.fit)
        methods = [_small_fit(args, m) for m in methods]
    runs = [(b, m) for b in backbones for m in methods if m.uses_embeddings]
    runs += [(NO_BACKBONE, m) for m in methods if not m.uses_embeddings]  # your scores: once each, no backbone
    chosen = {_report_label(b, m): (b, m) for b, m in runs}
    compare = tuple(args.compare) if args.compare else None
    if compare:
        check_compare(list(chosen), compare)
    tags = TagStore.open(args.data, args.cache_dir)
    if tags.notice:
        args.notices.append(_notice(tags.notice))
    with _progress(args, "embedding") as progress:
        scored = [ScoredMethod(label, engine.score(split.tasks, b, m, split.fit, progress=progress))
                  for label, (b, m) in chosen.items()]
    title, summary = headline(engine.dataset, split.tasks, val_fraction=args.val_fraction, seed=args.seed,
                              fit_pairs=len(split.fit))
    report = build_report(engine.dataset, split.tasks, scored, tags=tags, worst=args.worst, compare=compare,
                          seed=args.seed, title=title, summary=summary)
    paths = write_report(report, out)
    print(f"wrote {out} ({paths[0].stat().st_size / 1024:.0f} KiB) and {len(paths) - 1} figure files in "
          f"{figures_folder(out)}")
    return 0


def _report_label(backbone: str, method) -> str:  # method: Method
    """``backbone · method label · metric`` (the metric where the matcher scores with the metric option), as the
    studio labels a selection; imported scores (no backbone) by their name."""
    from .engine import NO_BACKBONE

    if backbone == NO_BACKBONE:
        return method.label
    return f"{backbone} · {method.label}" + (f" · {method.shown_metric}" if method.part.metric is None else "")


def cmd_submit(args: argparse.Namespace) -> int:
    from .engine import NO_BACKBONE
    from .imported import named_file
    from .submission import check_output_path, validate_submission

    check_output_path(args.out)  # before the minutes of scoring
    if args.scores:
        mixed = [flag for flag, given in (("--backbone", args.backbone), ("--embeddings", args.embeddings),
                                          ("--method", args.method), ("--metric", args.metric), ("--option", args.option),
                                          ("--flip-tta", args.flip_tta)) if given]
        if mixed:
            raise TLLError(f"--scores are your submission's scores: {', '.join(mixed)} would not apply to them")
        if os.path.realpath(args.out) == os.path.realpath(named_file(args.scores)[1]):
            raise TLLError(f"--out {shown_path(args.out)} is your --scores file; write the submission elsewhere")
    imported_backbones, imported_methods = _imports(args)
    chosen = [NO_BACKBONE] if imported_methods else _backbones(args, imported_backbones)
    if len(chosen) > 1:
        raise TLLError("submit scores with one backbone: give --backbone or --embeddings, not both")
    backbone = chosen[0]
    _check_backbones([b for b in chosen if b != NO_BACKBONE])
    method, = imported_methods or _methods(args, [args.metric or "cosine"])
    engine = _engine(args, [b for b in chosen if b != NO_BACKBONE])
    if _default_method(args) and not imported_methods:
        args.n_fit = len(engine.dataset.train_pairs)
        method = _small_fit(args, method)
    with _progress(args, "embedding") as progress:
        path = engine.submit(backbone, args.out, method=method, seed=args.seed, progress=progress)
    validate_submission(path, args.data)
    print(f"wrote {path} ({len(engine.dataset.test_rows)} rows; {backbone}, {method.label}, {method.shown_metric})")
    print(trained_on(method, len(engine.dataset.train_pairs)))
    return 0


def trained_on(method: Method, n_pairs: int) -> str:
    """What the submission's matcher learned from: every train pair (none is held out for validation; its early
    stopping holds back a share of them), and for a transductive one the test images too, unlabelled."""
    matcher = method.matcher()
    if not matcher.learns:
        return f"its matcher ({method.name}) learns nothing: no train pair was used"
    also = (" and, unlabelled, the test images (its centring and PCA)"
            if "unlabelled" in getattr(matcher, "fit_inputs", frozenset()) else "")
    return f"its matcher ({method.name}) was trained on all {n_pairs} train pairs{also}"


def cmd_studio(args: argparse.Namespace) -> int:
    """Check the folder and your files first (one line each), then run the studio on them until it stops."""
    from .api import run_studio
    from .dataset import load_dataset
    from .engine import Engine
    from .imported import add_embeddings, add_scores, check_images, distinct, named_file, read_scores

    engine = Engine(load_dataset(args.data))
    imports = []
    for kind, texts, enter in (("scores", args.scores, add_scores), ("embeddings", args.embeddings, add_embeddings)):
        for name, path in distinct([named_file(text) for text in texts]):
            enter((name, path))  # read and checked now: a bad file fails here, not in the browser
            imports.append((kind, name, str(path)))
            if kind == "scores":
                _studio_tasks_of(engine, path, read_scores)
    check_images(engine.dataset)
    return run_studio(args.data, imports, port=args.port)


def _studio_tasks_of(engine, path: Path, read) -> None:
    """Scores the studio can show: for its default validation tasks or for the test tasks (else the validation
    tasks' problem, one line)."""
    validation = engine.validation().tasks
    try:
        read(path, validation)
    except TLLError:
        if not engine.dataset.test_rows:
            raise
        try:
            read(path, engine.test())
        except TLLError:
            read(path, validation)  # the validation tasks' own words


def cmd_tasks(args: argparse.Namespace) -> int:
    """Write the tasks ``evaluate`` builds with the same flags (and their fit pairs): what your own model scores."""
    from .submission import HEADER, check_output_path, write_atomically

    outs = [check_output_path(args.out), *([check_output_path(args.fit_out)] if args.fit_out else [])]
    if args.fit_out and os.path.realpath(outs[0]) == os.path.realpath(outs[1]):
        raise TLLError("--out and --fit-out name the same file")
    if args.split == "test" and args.foils == "hard":
        raise TLLError("--foils hard builds validation tasks; the test tasks are test_candidates.csv's")
    _check_backbones([args.foil_backbone])
    engine = _engine(args, [args.foil_backbone] if args.foils == "hard" else [])
    root = os.path.realpath(engine.dataset.root)
    for path in outs:
        if os.path.realpath(path).startswith(root + os.sep):  # its CSVs, its hidden truth, its methods/ folder
            raise TLLError(f"{shown_path(path)}: is inside the data folder {shown_path(root)}; write the tasks elsewhere")
    if args.split == "test":
        tasks, fit = engine.tasks_for("test", args.val_fraction, args.seed)
    else:
        with _progress(args, "embedding") as progress:
            split = engine.validation(args.val_fraction, args.seed, args.foils, args.foil_backbone, progress)
        tasks, fit = split.tasks, split.fit
    write_atomically(outs[0], _csv([HEADER, *([left, *tasks.candidate_names(i)] for i, left in enumerate(tasks.left_names))]))
    if args.fit_out:
        write_atomically(outs[1], _csv([("left", "right"), *((p.left, p.right) for p in fit)]))
    print(f"wrote {outs[0]} ({len(tasks)} {args.split} tasks" + (f"; {outs[1]}: {len(fit)} fit pairs" if args.fit_out else "")
          + "); score them and bring the scores back with evaluate --scores NAME=FILE")
    return 0


def _csv(rows) -> bytes:
    import csv
    import io

    text = io.StringIO(newline="")
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue().encode("utf-8")


def cmd_validate(args: argparse.Namespace) -> int:
    from .submission import submission_problems

    problems = submission_problems(args.file, args.data)
    if problems:
        print(bounded_line(f"{args.file}: {len(problems)} problem(s)"), file=sys.stderr)
        for problem in problems:
            print(f"  {bounded_line(problem)}", file=sys.stderr)
        return 1
    print(f"{args.file}: valid")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    import warnings

    from .cache import (CacheNotice, EmbeddingCache, MatcherStore, check_size_limit, clear_cache, damaged_note,
                        default_cache_dir)

    directory = args.cache_dir or default_cache_dir()
    if args.size_limit is not None:
        check_size_limit(args.size_limit)  # before --clear empties anything
    with warnings.catch_warnings():  # the stores' notices are printed after, one line each
        warnings.simplefilter("ignore", CacheNotice)
        if args.clear:  # without opening the cache again after: it works on a full disk
            removed, trained = clear_cache(directory)
            print(f"cleared {removed} embeddings and {trained} trained matchers from {directory}{damaged_note(directory)}")
            if args.size_limit is None:
                return 0
        cache = EmbeddingCache(directory, size_limit=args.size_limit)
        store = MatcherStore(directory)
        if args.size_limit is not None:
            cache.set_size_limit(args.size_limit)
        if not args.clear:
            print(f"{directory}: {len(cache)} embeddings, {cache.volume() / 2**20:.1f} MiB "
                  f"(limit {cache.size_limit / 2**20:.0f} MiB), {len(store)} trained matchers{damaged_note(directory)}")
    args.notices.extend(cache.notices + store.notices)
    cache.close()
    store.close()
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """The folder's runs, newest first (stale: the folder's content changed since), or delete one."""
    from .cache import default_cache_dir
    from .dataset import load_dataset
    from .runs import RunStore

    store = RunStore.open(args.data, args.cache_dir)
    if store.notice:
        args.notices.append(_notice(store.notice))
    if args.delete is not None:
        gone = store.delete(args.delete)
        print(f"deleted run {gone.id} ({gone.label})")
        return 0
    try:
        content: str | None = load_dataset(args.data, index_dir=args.cache_dir or default_cache_dir()).fingerprint()
    except TLLError as exc:  # the runs are still listed; whether they are stale cannot be said
        content = None
        args.notices.append(_notice(f"cannot tell stale runs: {exc}"))
    runs = store.list()
    if args.json:
        print(json.dumps([{**r.as_json(), "stale": None if content is None else r.content != content} for r in runs],
                         indent=1))
        return 0
    if not runs:
        print(f"no runs kept for {shown_path(args.data)} (evaluate records them)")
        return 0
    print(f"{'id':16} {'when':16} {'top2':>6} {'top2 95% CI':16} {'took':>8} {'stale':5}  selection")
    for r in runs:
        top2, ci = r.figure("top2"), r.ci
        stale = "?" if content is None else ("yes" if r.content != content else "no")
        print(f"{r.id:16} {time.strftime('%Y-%m-%d %H:%M', time.localtime(r.when)):16} "
              f"{'-' if top2 is None else f'{top2:.3f}':>6} {'' if ci is None else f'[{ci[0]:.3f}, {ci[1]:.3f}]':16} "
              f"{r.took:7.1f}s {stale:5}  {bounded_line(r.label)}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import reproduce

    engine = _engine(args, [])
    if not args.json:  # the text table grows row by row as each experiment finishes (the run takes minutes)
        print(f"{'experiment':34} {'backbone':22} {'method':34} {'metric':10} {'top2':>6} {'top1':>6} {'MRR':>6}  note",
              flush=True)
    with _progress(args, "embedding") as progress:
        rows = reproduce(engine, progress=progress, on_row=None if args.json else _print_repro_row)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=1))
    return 0


def _print_repro_row(r) -> None:  # r: ResultRow with its experiment
    from tqdm import tqdm

    head = f"{r.experiment:34} {r.backbone:22} {r.method:34} {r.metric:10}"
    if r.skipped:
        line = f"{head} {'-':>6} {'-':>6} {'-':>6}  skipped: {r.skipped}"
    else:
        line = f"{head} {r.top2:6.3f} {r.top1:6.3f} {r.mrr:6.3f}  [{r.top2_ci[0]:.3f}, {r.top2_ci[1]:.3f}] n={r.n}"
    tqdm.write(line, file=sys.stdout)  # clears the progress bar (stderr) first, so the two never share a line
    sys.stdout.flush()
