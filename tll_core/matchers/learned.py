"""Learned matchers on frozen embeddings: the adaptation function, a Siamese net, a pair classifier.

All three share one recipe: centre + PCA fitted on the fit part only, a small torch model, AdamW with
weight decay, early stopping on top-2 over a held-back slice of the fit part (20-candidate tasks built
there with the same protocol as validation), a seeded run (same seed → identical scores).
Fitted state is a dict of named float arrays (saved as safetensors by the engine).
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..dataset import N_CANDIDATES
from ..device import resolve_device
from ..errors import TLLError
from ..evaluation.metrics import evaluate_scores
from ..evaluation.tasks import TaskSet, random_candidates
from ..register import REGISTER, Score, checked, option, register
from ..runtime import one_blas_thread, one_torch_thread
from .base import EpochReport, Embedded, GallerySearch, TrainingCallback, TrainingCurve, mean_over_views, views_of


MIN_HELD_BACK = N_CANDIDATES  # the early-stopping tasks need 20 rights to draw 20 candidates from
MIN_TRAIN_PAIRS = N_CANDIDATES  # a training part smaller than one task's candidates teaches nothing
MIN_FIT_PAIRS = MIN_HELD_BACK + MIN_TRAIN_PAIRS
# left out of a store key at these values: matchers stored before the option existed keep their keys
OPTIONS_ADDED_LATER = {"members": 1, "dropout": 0.0, "cca": 0.0}


def held_back(n_fit: int, holdout: float, name: str) -> int:
    """How many of ``n_fit`` fit pairs ``holdout`` holds back for early stopping (at least ``MIN_HELD_BACK``);
    a split that leaves fewer than ``MIN_TRAIN_PAIRS`` to train on is refused, naming the counts."""
    n_hold = max(MIN_HELD_BACK, int(round(n_fit * holdout)))
    if n_fit - n_hold < MIN_TRAIN_PAIRS:
        raise TLLError(f"{name}: holdout {holdout:g} holds back {n_hold} of {n_fit} fit pairs and leaves "
                       f"{n_fit - n_hold} to train on; training needs at least {MIN_TRAIN_PAIRS} "
                       f"(and the held-back part at least {MIN_HELD_BACK}): lower holdout")
    return n_hold


@dataclass(frozen=True)
class TrainCfg:
    epochs: int = option(60, lo=1, hi=100_000, help="most epochs (early stopping usually ends sooner)")
    batch_size: int = option(128, lo=2, hi=1_000_000, help="pairs per batch (the other pairs of a batch are its negatives)")
    lr: float = option(1e-3, above=0, hi=10, help="AdamW learning rate")
    weight_decay: float = option(1e-2, lo=0, hi=100, help="AdamW weight decay")
    patience: int = option(10, lo=1, hi=100_000, help="epochs without a better held-back top-2 before stopping")
    holdout: float = option(0.15, above=0, below=1, help="share of the fit pairs held back for early stopping")
    seed: int = option(0, lo=0, hi=2**63 - 1, help="the run's seed (same seed: identical scores)")
    dropout: float = option(0.0, lo=0, below=1, help="while training, zero this share of the projected inputs' "
                                                     "components (scaling the rest up): the map cannot lean on a few "
                                                     "of them, which 400 fit pairs would otherwise let it do")
    flip_augment: bool = option(False, help="add the mirrored images' embeddings as extra fit pairs")
    grayscale: bool = option(False, help="embed grayscale images everywhere (an ablation of colour)")
    centre_parts: bool = option(False, help="before the PCA, centre each part of the embedding (each backbone of an "
                                            "ensemble, each pooled stage) on its own mean and rescale it to unit length")
    transductive: bool = option(False, help="also fit the centring and PCA on the unlabelled lefts and rights being "
                                            "scored (the task set's images; never which goes with which)")

    def __post_init__(self) -> None:
        checked(self)


@dataclass(frozen=True)
class AdaptationCfg(TrainCfg):
    """The report's adaptation function: PCA → linear map (or small MLP) → cosine, InfoNCE loss."""

    pca_dim: int = option(256, lo=0, hi=65_536, help="PCA components kept (0: no PCA, the raw embedding)")
    whiten: bool = option(False, help="whiten the PCA components")
    hidden: int = option(0, lo=0, hi=65_536, help="0: one linear map (starts as the identity); >0: a residual MLP")
    temperature: float = option(1 / 15, lo=1e-4, hi=100, help="InfoNCE temperature")
    bidirectional: bool = option(True, help="left→right and right→left loss (false: the report's left→right)")
    shared: bool = option(True, help="one map for lefts and rights")
    members: int = option(1, lo=1, hi=64, help="train this many maps, each from its own seed and holding back its own "
                                               "pairs for early stopping, and score with the mean of their cosines "
                                               "(steadier than one map; the centring and PCA, fitted once on every fit "
                                               "pair, are most of a fit's time, so each member adds little)")
    cca: float = option(0.0, lo=0, hi=1e6, help="0: none; > 0: one more member, not trained: the canonical correlation "
                                                "map of the fit pairs in the PCA space (closed form, ridge = this "
                                                "share of the mean variance), its cosine averaged with the maps'")


@dataclass(frozen=True)
class SiameseCfg(TrainCfg):
    """A shared MLP trained with contrastive loss (positives pulled together, negatives pushed past a margin)."""

    pca_dim: int = option(256, lo=0, hi=65_536, help="PCA components kept (0: no PCA)")
    hidden: int = option(256, lo=1, hi=65_536, help="hidden units")
    out_dim: int = option(128, lo=1, hi=65_536, help="output embedding size")
    margin: float = option(1.0, above=0, hi=1e6, help="contrastive margin")
    negatives: int = option(4, lo=1, hi=1024, help="sampled negatives per positive")


@dataclass(frozen=True)
class PairClassifierCfg(TrainCfg):
    """An MLP over [a, b, |a-b|, a*b] → P(same pair), trained with balanced or 1:19 sampling."""

    pca_dim: int = option(128, lo=0, hi=65_536, help="PCA components kept (0: no PCA)")
    hidden: int = option(256, lo=1, hi=65_536, help="hidden units")
    sampling: str = option("balanced", choices=("balanced", "1:19"), help="negatives per positive: 1, or the task's 19")


# ---------------------------------------------------------------- shared pieces


class Projection:
    """Centre + PCA (optionally whitened) fitted on the fit part's lefts and rights only (and, transductive, the
    unlabelled images to be scored). With ``parts`` (the sizes of the embedding's blocks), each block is first
    centred on its own mean and rescaled to unit length: an ensemble's parts then weigh alike after centring,
    where their raw spreads differ (the head's pooled vector varies little around a large common mean)."""

    def __init__(self, mean: np.ndarray, basis: np.ndarray, parts: tuple[int, ...] = (),
                 part_mean: np.ndarray | None = None) -> None:
        self.mean, self.basis = mean.astype(np.float32), basis.astype(np.float32)
        self.parts = tuple(int(n) for n in parts)
        self.part_mean = None if part_mean is None else part_mean.astype(np.float32)

    @classmethod
    def fit(cls, x: np.ndarray, dim: int, whiten: bool, parts: tuple[int, ...] = ()) -> Projection:
        part_mean = None
        if parts:
            part_mean = x.mean(axis=0).astype(np.float32)
            x = centre_parts(x, part_mean, parts)
        mean = x.mean(axis=0)
        if dim <= 0:
            return cls(mean, np.eye(x.shape[1], dtype=np.float32), parts, part_mean)
        with one_blas_thread():  # the same basis under any thread count
            sv, vt = principal_axes((x - mean).astype(np.float64), dim)
        dim = min(dim, len(sv))
        basis = vt[:dim].T
        if whiten:
            basis = basis / np.maximum(sv[:dim] / np.sqrt(len(x)), 1e-8)
        return cls(mean, basis, parts, part_mean)

    def __call__(self, x: np.ndarray) -> torch.Tensor:
        with np.errstate(all="ignore"), one_blas_thread():  # overflow: a non-finite loss, reported as divergence
            x = np.asarray(x, dtype=np.float32)
            if self.part_mean is not None:
                x = centre_parts(x, self.part_mean, self.parts)
            return torch.from_numpy(((x - self.mean) @ self.basis).astype(np.float32))


EXACT_SVD_LIMIT = 5e10  # n * d * min(n, d): past it LAPACK's full SVD takes minutes on one thread


def principal_axes(centred: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Singular values and right singular vectors (rows) of centred data. Small inputs: LAPACK's SVD. Large ones
    (a transductive fit on a test set: 6000 x 7046 took 148 s): the top ``dim`` eigenpairs of the smaller Gram
    matrix (``X Xᵀ`` or ``Xᵀ X``), one matrix product and a partial symmetric eigensolver — the same axes and
    values to 1e-14 (a few seconds: 3000 rows, 27 s → 4 s), each axis's sign as the solver returns it."""
    n, d = centred.shape
    if dim >= min(n, d) or n * d * min(n, d) <= EXACT_SVD_LIMIT:
        _, sv, vt = np.linalg.svd(centred, full_matrices=False)
        return sv, vt
    from scipy.linalg import eigh

    gram = centred @ centred.T if n <= d else centred.T @ centred
    m = len(gram)
    values, vectors = eigh(gram, subset_by_index=[m - dim, m - 1])  # ascending
    values, vectors = values[::-1], vectors[:, ::-1]
    sv = np.sqrt(np.maximum(values, 0.0))
    vt = (vectors.T @ centred) / np.maximum(sv, 1e-300)[:, None] if n <= d else vectors.T
    return sv, np.ascontiguousarray(vt)


def centre_parts(x: np.ndarray, mean: np.ndarray, parts: tuple[int, ...]) -> np.ndarray:
    """``x - mean`` with each block of ``parts`` (sizes, in order) rescaled to unit length (zero stays zero)."""
    if sum(parts) != x.shape[1]:
        raise TLLError(f"the embedding has {x.shape[1]} dimensions, its parts {list(parts)} add up to {sum(parts)}")
    centred = np.asarray(x, dtype=np.float32) - mean
    out, start = np.empty_like(centred), 0
    for size in parts:
        block = centred[:, start:start + size]
        out[:, start:start + size] = block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        start += size
    return out


class LearnedMatcher:
    """Shared fit loop: subclasses define the model, a batch loss, and how a model scores pairs."""

    name = "learned"
    learns = True
    uses_embeddings = True
    cfg: TrainCfg

    def __init__(self, cfg: TrainCfg) -> None:
        self.cfg = cfg
        self.projection: Projection | None = None
        self.model: nn.Module | None = None
        self.curve = TrainingCurve()
        self.device = torch.device("cpu")  # where it trains and scores; not an option: not part of any key

    @property
    def members(self) -> int:
        """How many maps the fit trains (only the adaptation function has the option; one elsewhere)."""
        return getattr(self.cfg, "members", 1)

    @property
    def max_epochs(self) -> int:
        return self.cfg.epochs * self.members

    def to(self, device: str | torch.device) -> LearnedMatcher:
        """Train and score on ``device`` (auto, cpu, cuda, mps); returns self, like ``nn.Module.to``."""
        self.device = resolve_device(device)
        if self.model is not None:
            self.model.to(self.device)
        return self

    def _project(self, x: np.ndarray) -> torch.Tensor:
        assert self.projection is not None
        return self.projection(x).to(self.device)

    # subclass hooks
    def build(self, dim: int) -> nn.Module:
        raise NotImplementedError

    def loss(self, model: nn.Module, left: torch.Tensor, right: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def side(self, model: nn.Module, x: torch.Tensor, which: str) -> torch.Tensor:
        """The learned map of one side (``which``: left or right) of projected vectors: the space ``compare``
        scores in. Default: none (the projected vectors themselves)."""
        return x

    def compare(self, model: nn.Module, left: torch.Tensor, right: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """``[n, 20]`` scores of mapped lefts and their candidates among the mapped rights."""
        raise NotImplementedError

    def pair_scores(self, model: nn.Module, left: torch.Tensor, right: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return self.compare(model, self.side(model, left, "left"), self.side(model, right, "right"), candidates)

    def build_model(self, dim: int) -> nn.Module:
        """The fitted model: one ``build``, or a :class:`Members` of ``members`` of them followed by the
        ``closed_form`` members."""
        maps = [self.build(dim) for _ in range(self.members)] + self.closed_form(dim)
        return Members(maps) if len(maps) > 1 else maps[0]

    def closed_form(self, dim: int) -> list[nn.Module]:
        """Members fitted in closed form on every fit pair after the trained maps (``fit_pairs``), none here."""
        return []

    def fit_views(self) -> tuple[str, ...]:
        return views_of(self.cfg.grayscale, self.cfg.flip_augment)

    def score_views(self, flip_tta: bool) -> tuple[str, ...]:
        return views_of(self.cfg.grayscale, flip_tta)

    def score_tasks(self, tasks: TaskSet, embedded: Embedded, flip_tta: bool) -> np.ndarray:
        return mean_over_views(self, tasks.candidates, embedded, flip_tta)

    def key_material(self) -> dict[str, Any]:
        cfg = asdict(self.cfg)
        for name, default in OPTIONS_ADDED_LATER.items():  # at its default: the key of a matcher stored before it
            if name in cfg and cfg[name] == default:      # existed
                del cfg[name]
        material = {"matcher": self.name, "version": REGISTER.get("matcher", self.name).version, "cfg": cfg}
        if self.cfg.flip_augment:  # since issue 18 mirrors are held back with their pairs: stored ones retrain
            material["held_back"] = "by pair"
        return material

    def pca_settings(self) -> tuple[int, bool]:
        return getattr(self.cfg, "pca_dim", 0), getattr(self.cfg, "whiten", False)

    # the protocol
    @property
    def fit_inputs(self) -> frozenset[str]:
        """What its fit takes beside the pairs, by its options: ``unlabelled`` (transductive: the images being
        scored) and ``parts`` (centre_parts: the sizes of the embedding's blocks). The engine passes just these."""
        return frozenset({"unlabelled"} if self.cfg.transductive else ()) | frozenset(
            {"parts"} if self.cfg.centre_parts else ())

    def fit(self, left: np.ndarray, right: np.ndarray, callback: TrainingCallback | None = None,
            unlabelled: np.ndarray | None = None, parts: tuple[int, ...] = ()) -> None:
        """Learn from the fit pairs (row i of ``left`` goes with row i of ``right``). ``unlabelled``
        (transductive only): embeddings of the images to be scored, whose pairing is unknown — they join the fit
        pairs in the centring and PCA, and nothing else (the learned map sees labelled pairs only). ``parts``
        (centre_parts only): the sizes of the embedding's blocks; without them the whole vector is one block."""
        if unlabelled is not None and not np.isfinite(unlabelled).all():
            raise TLLError(f"{self.name}: the unlabelled embeddings hold NaN or infinity (a broken backbone or weights file)")
        if self.device.type != "cpu":
            return self._fit(left, right, callback, unlabelled, parts)
        with one_torch_thread():
            return self._fit(left, right, callback, unlabelled, parts)

    def _fit(self, left: np.ndarray, right: np.ndarray, callback: TrainingCallback | None,
             unlabelled: np.ndarray | None, parts: tuple[int, ...]) -> None:
        cfg = self.cfg
        n_views = len(self.fit_views())  # the rows are view-major: every pair's plain view, then its mirror
        n_pairs = len(left) // n_views
        if len(left) != n_pairs * n_views or len(right) != len(left):
            raise ValueError(f"{self.name}: {len(left)} x {len(right)} fit rows for {n_views} view(s)")
        if n_pairs < MIN_FIT_PAIRS:
            raise TLLError(f"{self.name}: {n_pairs} fit pairs; at least {MIN_FIT_PAIRS} are needed to train")
        if not (np.isfinite(left).all() and np.isfinite(right).all()):
            raise TLLError(f"{self.name}: the fit embeddings hold NaN or infinity (a broken backbone or weights file)")
        n_hold = held_back(n_pairs, cfg.holdout, self.name)

        def split(seed: int) -> tuple[np.ndarray, np.ndarray]:
            """(held-back pairs, training rows) of one map. Pairs, not rows, are held back: a mirrored view trains
            with its pair or not at all, and early stopping scores the plain views of the held-back pairs."""
            order = np.random.default_rng([seed, 4]).permutation(n_pairs)
            return order[:n_hold], np.concatenate([order[n_hold:] + view * n_pairs for view in range(n_views)])

        # one map holds back its pairs from the centring and PCA too (as it always has); members share one
        # projection, fitted on every fit pair, since each holds back other pairs
        rows = split(cfg.seed)[1] if self.members == 1 else np.arange(len(left))
        seen = [left[rows], right[rows]] + ([unlabelled] if unlabelled is not None and cfg.transductive else [])
        blocks = (tuple(parts) or (left.shape[1],)) if cfg.centre_parts else ()
        self.projection = Projection.fit(np.concatenate(seen), *self.pca_settings(), parts=blocks)
        model = self.build_model(self.projection.basis.shape[1])
        curves = []
        maps = list(model) if isinstance(model, Members) else [model]
        for member, one in enumerate(maps[:self.members]):
            hold, train = split(cfg.seed + member)
            state, curve = self._train_member(left, right, train, hold, cfg.seed + member, member, callback)
            one.load_state_dict(state)
            curves.append(curve)
        for one in maps[self.members:]:  # no seed, nothing held back: every fit row
            one.fit_pairs(self._project(left).cpu().numpy(), self._project(right).cpu().numpy())
        self.model = model.eval()
        # score from the state a store would keep, through the code that reloads it: a fresh and a reloaded
        # matcher are then one computation (the trained module's tensors could otherwise take other kernels)
        self.load_state(self.state())
        self.curve = curves[0]  # the curve as trained (a stored one comes back rounded to float32): the first member's

    def _train_member(self, left: np.ndarray, right: np.ndarray, train: np.ndarray, hold: np.ndarray, seed: int,
                      member: int, callback: TrainingCallback | None) -> tuple[dict[str, torch.Tensor], TrainingCurve]:
        """Train one map on the ``train`` rows from ``seed``, early-stopped on 20-candidate tasks among the ``hold``
        pairs; its best state and its curve. Progress counts epochs across members."""
        cfg = self.cfg
        generator = torch.Generator().manual_seed(seed)  # local: no global seed, so concurrent fits can't interfere
        a, b = self._project(left[train]), self._project(right[train])
        ha, hb = self._project(left[hold]), self._project(right[hold])
        hold_candidates, hold_truth = random_candidates(len(hold), np.random.default_rng([seed, 3]))
        hold_candidates_t = torch.from_numpy(hold_candidates).to(self.device)
        model = self.build(a.shape[1])
        seeded_init(model, torch.Generator().manual_seed(seed))  # on the CPU: the same weights on any device
        model.to(self.device)
        optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        best, best_state, stale = -1.0, copy.deepcopy(model.state_dict()), 0
        curve = TrainingCurve()
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            losses = []
            perm = torch.randperm(len(a), generator=generator)
            for start in range(0, len(a), cfg.batch_size):
                idx = perm[start : start + cfg.batch_size].to(self.device)
                if len(idx) < 2:
                    continue
                loss = self.loss(model, dropped(a[idx], cfg.dropout, generator), dropped(b[idx], cfg.dropout, generator),
                                 generator)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(f"{self.name}: training diverged at epoch {epoch} (loss {loss.item()}); "
                                           f"lower lr (now {cfg.lr:g}){self._diverged_hint()}")
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                losses.append(loss.item())
            model.eval()
            with torch.no_grad():
                scores = self.pair_scores(model, ha, hb, hold_candidates_t).cpu().numpy()
            if not np.isfinite(scores).all():
                raise TrainingDiverged(f"{self.name}: training diverged at epoch {epoch} (non-finite held-back scores); "
                                       f"lower lr (now {cfg.lr:g}){self._diverged_hint()}")
            top2 = evaluate_scores(scores, hold_truth, n_boot=1).top2
            curve.train_loss.append(float(np.mean(losses)))
            curve.holdout_top2.append(top2)
            if callback:
                callback(EpochReport(member * cfg.epochs + epoch, self.max_epochs, curve.train_loss[-1], top2))
            if top2 > best:
                best, best_state, stale, curve.best_epoch = top2, copy.deepcopy(model.state_dict()), 0, epoch
            else:
                stale += 1
                if stale >= cfg.patience:
                    break
        return best_state, curve

    def _diverged_hint(self) -> str:
        return ""

    def score(self, left: np.ndarray, right: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        if self.model is None or self.projection is None:
            raise TLLError(f"{self.name}: score called before fit")
        return self._scores(self._project(left), self._project(right), candidates)

    def project(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The lefts and rights after centre + PCA and the learned map of each side: what ``compare`` scores."""
        if self.model is None or self.projection is None:
            raise TLLError(f"{self.name}: project called before fit")
        with torch.no_grad():
            return tuple(self.side(self.model, self._project(x), which).cpu().numpy().astype(np.float32)
                         for x, which in ((left, "left"), (right, "right")))  # type: ignore[return-value]

    def _scores(self, left: torch.Tensor, right: torch.Tensor, candidates: np.ndarray) -> np.ndarray:
        """``pair_scores`` of projected lefts and rights, as float32 numpy (what ``score`` and ``gallery`` give)."""
        with torch.no_grad():
            candidates_t = torch.from_numpy(np.asarray(candidates, dtype=np.int64)).to(self.device)
            return self.pair_scores(self.model, left, right, candidates_t).cpu().numpy().astype(np.float32)

    def gallery(self, left: np.ndarray, gallery: np.ndarray) -> GallerySearch:
        """The gallery projected once, not once per block of lefts (the same scores as ``score`` with every
        gallery item as a candidate); width: the pair classifier's ``[a, b, |a-b|, a*b]`` features, 4x the
        projected size, bound what any learned matcher holds per (left, item)."""
        if self.model is None or self.projection is None:
            raise TLLError(f"{self.name}: score called before fit")
        projected, every = self._project(gallery), np.arange(len(gallery), dtype=np.int64)

        def scores(start: int, stop: int) -> np.ndarray:
            return self._scores(self._project(left[start:stop]), projected, np.tile(every, (stop - start, 1)))

        return GallerySearch(scores, width=4 * self.projection.basis.shape[1])

    # state as named arrays (no pickle)
    def state(self) -> dict[str, np.ndarray]:
        assert self.model is not None and self.projection is not None
        out = {f"model.{k}": v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}
        out["projection.mean"], out["projection.basis"] = self.projection.mean, self.projection.basis
        if self.projection.part_mean is not None:
            out["projection.part_mean"] = self.projection.part_mean
            out["projection.parts"] = np.asarray(self.projection.parts, dtype=np.float32)
        out["curve.train_loss"] = np.asarray(self.curve.train_loss, dtype=np.float32)
        out["curve.holdout_top2"] = np.asarray(self.curve.holdout_top2, dtype=np.float32)
        out["curve.best_epoch"] = np.asarray([self.curve.best_epoch], dtype=np.float32)
        return out

    def load_state(self, state: dict[str, np.ndarray], dim: int | None = None) -> None:
        """Restore a fitted state, checked strictly: every expected name with its shape, float32 and finite
        values, and (given ``dim``) the embedding size it was fitted on. Anything else raises StateMismatch,
        so a damaged or foreign state is retrained, never used."""
        basis, mean = state.get("projection.basis"), state.get("projection.mean")
        if basis is None or mean is None or basis.ndim != 2 or mean.shape != (basis.shape[0],):
            raise StateMismatch("projection missing or misshapen")
        if dim is not None and basis.shape[0] != dim:
            raise StateMismatch(f"fitted on {basis.shape[0]}-d embeddings, these are {dim}-d")
        model = self.build_model(basis.shape[1])
        expected = {f"model.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
        expected.update({"projection.mean": mean.shape, "projection.basis": basis.shape})
        parts: tuple[int, ...] = ()
        if self.cfg.centre_parts:
            sizes = state.get("projection.parts")
            if sizes is None or sizes.ndim != 1 or not np.isfinite(sizes).all() or sizes.sum() != basis.shape[0] \
                    or (sizes < 1).any() or (sizes != np.round(sizes)).any():
                raise StateMismatch("projection parts missing or not the embedding's")
            parts = tuple(int(n) for n in sizes)
            expected.update({"projection.part_mean": mean.shape, "projection.parts": sizes.shape})
        curve = {"curve.train_loss", "curve.holdout_top2", "curve.best_epoch"}
        if set(state) != set(expected) | curve:
            raise StateMismatch(f"names differ: {sorted(set(state) ^ (set(expected) | curve))[:3]}")
        for name, array in state.items():
            if array.dtype != np.float32 or not np.isfinite(array).all():
                raise StateMismatch(f"{name}: not finite float32")
            if name in expected and tuple(array.shape) != expected[name]:
                raise StateMismatch(f"{name}: shape {array.shape}, expected {expected[name]}")
        self.projection = Projection(mean, basis, parts, state["projection.part_mean"] if parts else None)
        model.load_state_dict({k[len("model."):]: torch.from_numpy(np.array(v)) for k, v in state.items() if k.startswith("model.")})
        self.model = model.to(self.device).eval()
        self.curve = TrainingCurve(state["curve.train_loss"].tolist(), state["curve.holdout_top2"].tolist(),
                                   int(state["curve.best_epoch"][0]) if state["curve.best_epoch"].size else 0)


class TrainingDiverged(TLLError):
    """The loss or the held-back scores became NaN or infinite: the run stops; nothing is stored or scored."""


class StateMismatch(ValueError):
    """A stored state that does not fit this matcher (names, shapes, dtypes, finiteness): retrain instead."""


class Members(nn.ModuleList):
    """The maps of a fit with ``members`` > 1, each trained from its own seed on its own held-back split, then any
    closed-form member (``cca``)."""


def seeded_init(model: nn.Module, generator: torch.Generator) -> None:
    """Re-draw every ``nn.Linear`` as its own ``reset_parameters`` does, but from ``generator``, then let the
    model apply its deterministic inits (``init_fixed``). Equal to the former global-seed init, without
    touching the global RNG: two fits running at once each get exactly their seed's weights."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                if module.bias is not None:
                    bound = 1 / math.sqrt(module.weight.shape[1]) if module.weight.shape[1] > 0 else 0
                    nn.init.uniform_(module.bias, -bound, bound, generator=generator)
        for module in model.modules():
            if hasattr(module, "init_fixed"):
                module.init_fixed()


def dropped(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """``x`` with a share ``p`` of its entries zeroed and the rest scaled by 1 / (1 - p) (inverted dropout: with
    nothing dropped at scoring time the scale stays the same); the mask is drawn on the CPU from the fit's
    generator, so it is the same on every device. ``p`` = 0: ``x`` itself, and no random number drawn."""
    if not p:
        return x
    keep = torch.rand(x.shape, generator=generator) >= p
    return x * keep.to(x.device) / (1.0 - p)


def _gather(right: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    return right[candidates]  # [n, 20, d]


def _negatives(right: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """``[n, k, d]``: for each pair, k rights of *other* pairs in the batch, drawn at random."""
    n = len(right)
    shift = torch.randint(1, n, (n, k), generator=generator).to(right.device)  # drawn on the CPU generator
    picked = (torch.arange(n, device=right.device)[:, None] + shift) % n
    # a one-hot product, not ``right[picked]``: indexing's backward accumulates repeated rows in an order
    # that varies between runs on several threads (a Siamese fit gave another CSV each run); a matmul's
    # does not, and its forward is exactly the gathered rows (1 * x + 0 * the rest)
    one_hot = torch.nn.functional.one_hot(picked.reshape(-1), n).to(right.dtype)
    return (one_hot @ right).reshape(n, k, right.shape[1])


# ---------------------------------------------------------------- adaptation function


class _Residual(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.init_fixed()

    def init_fixed(self) -> None:
        """The residual branch starts at zero: the map starts as the identity."""
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class Canonical(nn.Module):
    """The closed-form member of ``cca``: regularised canonical correlation analysis of the fit pairs in the PCA
    space, each pair counted both ways (one map for lefts and rights, as ``shared``), every canonical direction
    scaled by the square root of its correlation (negative ones dropped), so its cosine weighs the directions in
    which a left and its right agree most. Nothing is trained — no seed, no early stopping, the same map on every
    run — which is what it adds beside the trained maps: on 400 fit pairs it scores nearly as they do, and
    differently."""

    def __init__(self, dim: int, ridge: float) -> None:
        super().__init__()
        self.left = self.right = nn.Linear(dim, dim)
        self.ridge = ridge

    def fit_pairs(self, left: np.ndarray, right: np.ndarray) -> None:
        with one_blas_thread():  # the same map under any thread count
            x = np.concatenate([left, right]).astype(np.float64)
            y = np.concatenate([right, left]).astype(np.float64)
            mean = x.mean(axis=0)
            x, y = x - mean, y - mean
            cov = x.T @ x / len(x)
            cov += max(self.ridge * np.trace(cov) / len(cov), 1e-12) * np.eye(len(cov))
            values, vectors = np.linalg.eigh(cov)  # rounding can leave a rank-deficient one a hair below zero
            whiten = (vectors / np.sqrt(np.maximum(values, 1e-12))) @ vectors.T
            cross = whiten @ (x.T @ y / len(x)) @ whiten  # symmetric: x and y hold the same pairs both ways
            corr, axes = np.linalg.eigh((cross + cross.T) / 2)
            weight = whiten @ axes * np.sqrt(np.maximum(corr, 0.0))
        with torch.no_grad():
            self.left.weight.copy_(torch.from_numpy(weight.T.astype(np.float32)))
            self.left.bias.copy_(torch.from_numpy((-mean @ weight).astype(np.float32)))


class _Maps(nn.Module):
    def __init__(self, dim: int, hidden: int, shared: bool) -> None:
        super().__init__()
        self.left = self._map(dim, hidden)
        self.right = self.left if shared else self._map(dim, hidden)
        self.init_fixed()

    @staticmethod
    def _map(dim: int, hidden: int) -> nn.Module:
        return _Residual(dim, hidden) if hidden else nn.Linear(dim, dim)

    def init_fixed(self) -> None:
        """A linear map starts as the identity."""
        for linear in (self.left, self.right):
            if isinstance(linear, nn.Linear):
                nn.init.eye_(linear.weight)
                nn.init.zeros_(linear.bias)


@register("matcher", "adaptation", cfg=AdaptationCfg, metric="cosine", version=2,
          score=Score("the cosine of the two embeddings after the learned maps: 1 same direction, 0 unrelated", -1, 1),
          help="the report's adaptation function: PCA → linear map → cosine, trained with InfoNCE")
class Adaptation(LearnedMatcher):
    name = "adaptation"
    cfg: AdaptationCfg

    def __init__(self, cfg: AdaptationCfg | None = None) -> None:
        super().__init__(cfg or AdaptationCfg())

    def build(self, dim: int) -> nn.Module:
        return _Maps(dim, self.cfg.hidden, self.cfg.shared)

    def closed_form(self, dim: int) -> list[nn.Module]:
        return [Canonical(dim, self.cfg.cca)] if self.cfg.cca else []

    def _diverged_hint(self) -> str:
        return f" or raise temperature (now {self.cfg.temperature:g})"

    def loss(self, model: nn.Module, left: torch.Tensor, right: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        za, zb = F.normalize(model.left(left), dim=1), F.normalize(model.right(right), dim=1)
        logits = za @ zb.T / self.cfg.temperature  # every other pair in the batch is a negative
        target = torch.arange(len(left), device=left.device)
        loss = F.cross_entropy(logits, target)
        if self.cfg.bidirectional:
            loss = (loss + F.cross_entropy(logits.T, target)) / 2
        return loss

    def side(self, model: nn.Module, x: torch.Tensor, which: str) -> torch.Tensor:
        if isinstance(model, Members):  # each member's unit vector / sqrt(k), side by side: their dot product is
            return torch.cat([self.side(one, x, which) for one in model], dim=1) / math.sqrt(len(model))  # the mean cosine
        return F.normalize((model.left if which == "left" else model.right)(x), dim=1)

    def compare(self, model: nn.Module, left: torch.Tensor, right: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nd,nkd->nk", left, _gather(right, candidates))  # cosine: both sides are unit vectors


# ---------------------------------------------------------------- Siamese network


@register("matcher", "siamese", cfg=SiameseCfg, metric="euclidean", version=2,
          score=Score("minus the Euclidean distance between the two embeddings after the learned network: 0 identical",
                      None, 0),
          help="a shared MLP trained with a contrastive loss; scores are negated distances")
class Siamese(LearnedMatcher):
    name = "siamese"
    cfg: SiameseCfg

    def __init__(self, cfg: SiameseCfg | None = None) -> None:
        super().__init__(cfg or SiameseCfg())

    def build(self, dim: int) -> nn.Module:
        return nn.Sequential(nn.Linear(dim, self.cfg.hidden), nn.ReLU(), nn.Linear(self.cfg.hidden, self.cfg.out_dim))

    def loss(self, model: nn.Module, left: torch.Tensor, right: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        za, zb = model(left), model(right)
        positive = (za - zb).pow(2).sum(1)
        negatives = _negatives(zb, self.cfg.negatives, generator)
        distance = (za[:, None] - negatives).pow(2).sum(-1).clamp_min(1e-12).sqrt()
        negative = (self.cfg.margin - distance).clamp_min(0).pow(2)
        return positive.mean() + negative.mean()

    def side(self, model: nn.Module, x: torch.Tensor, which: str) -> torch.Tensor:
        return model(x)  # one shared net

    def compare(self, model: nn.Module, left: torch.Tensor, right: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return -(left[:, None] - _gather(right, candidates)).pow(2).sum(-1).sqrt()


# ---------------------------------------------------------------- pair classifier


@register("matcher", "pair-classifier", cfg=PairClassifierCfg, metric="classifier", version=2,
          score=Score("the classifier's log-odds that the two images are a pair: 0 even odds, 2.2 about 9 to 1"),
          help="an MLP over [a, b, |a-b|, a*b] → P(same pair)")
class PairClassifier(LearnedMatcher):
    name = "pair-classifier"
    cfg: PairClassifierCfg

    def __init__(self, cfg: PairClassifierCfg | None = None) -> None:
        super().__init__(cfg or PairClassifierCfg())

    def build(self, dim: int) -> nn.Module:
        h = self.cfg.hidden
        return nn.Sequential(nn.Linear(4 * dim, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 1))

    @staticmethod
    def _features(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cat([a, b, (a - b).abs(), a * b], dim=-1)

    def loss(self, model: nn.Module, left: torch.Tensor, right: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = len(left)
        k = 1 if self.cfg.sampling == "balanced" else N_CANDIDATES - 1
        negatives = _negatives(right, k, generator)
        pairs = torch.cat([self._features(left, right)[:, None], self._features(left[:, None].expand_as(negatives), negatives)], 1)
        labels = torch.zeros(n, k + 1, device=left.device)
        labels[:, 0] = 1
        return F.binary_cross_entropy_with_logits(model(pairs).squeeze(-1), labels)

    def compare(self, model: nn.Module, left: torch.Tensor, right: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """No map of either side: the net scores each pair of projected vectors (so the map shows them)."""
        cands = _gather(right, candidates)
        return model(self._features(left[:, None].expand_as(cands), cands)).squeeze(-1)
