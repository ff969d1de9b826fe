"""Deep backbones built on first use, so that a warm start never builds a network it does not run.

Every cached vector is keyed by its backbone's ``identity`` (model, weights, preprocessing, traced or eager), which
a :class:`TorchBackbone` knows only once built: loading, mapping and tracing the three default-recipe networks
took about 7 s of a warm restart whose vectors all came from the cache. The identity a setup produced is recorded
(``backbones.json`` in the cache directory, keyed by everything the build reads: the backbone's config, the weights
file and its stat, the device, the torch version); the next process with the same setup gets a
:class:`LazyBackbone` that answers ``identity`` at once and builds the network when it must compute. A build whose
identity is not the recorded one (which the key should make impossible) is one line, and the record is replaced.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import TLLError
from ..files import write_atomic
from .base import Backbone, BackboneCfg, CellShares, FeatureCells, Region

RECORD_FILE = "backbones.json"
MAX_RECORD_BYTES = 2**20
_lock = threading.Lock()


def setup_key(cfg: BackboneCfg, weights_file: Path, device: str, engine: str = "") -> str | None:
    """What a build of ``cfg`` from ``weights_file`` on ``device`` depends on, as one digest (None: the file
    cannot be stat-ed). ``engine``: what picks the CPU inference engine (``deep.cpu_engine_key``)."""
    import torch

    try:
        st = os.stat(weights_file)
    except OSError:
        return None
    material = [repr(cfg), str(weights_file), st.st_size, st.st_mtime_ns, st.st_ino, device, torch.__version__, engine]
    return hashlib.sha1(json.dumps(material).encode()).hexdigest()


def recorded_identity(cache_dir: Path, key: str) -> str | None:
    identity = _read(cache_dir).get(key)
    return identity if isinstance(identity, str) else None


def record_identity(cache_dir: Path, key: str, identity: str) -> None:
    """Keep ``identity`` under ``key`` (atomically; a cache that cannot take it costs the next start a build)."""
    with _lock:
        record = _read(cache_dir)
        if record.get(key) == identity:
            return
        record[key] = identity
        try:
            write_atomic(cache_dir / RECORD_FILE, json.dumps(record))
        except OSError:
            pass


def _read(cache_dir: Path) -> dict[str, Any]:
    try:
        path = cache_dir / RECORD_FILE
        if path.stat().st_size > MAX_RECORD_BYTES:
            return {}
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class LazyBackbone(Backbone):
    """A backbone whose identity is known and whose network is built by ``build`` when first asked to compute."""

    def __init__(self, cfg: BackboneCfg, identity: str, build: Callable[[], Backbone],
                 on_mismatch: Callable[[str], None]) -> None:
        self.cfg, self.identity = cfg, identity
        self._build, self._on_mismatch = build, on_mismatch
        self._built: Backbone | None = None
        self._building = threading.Lock()

    @property
    def is_built(self) -> bool:
        return self._built is not None

    def built(self) -> Backbone:
        with self._building:
            if self._built is None:
                backbone = self._build()
                if backbone.identity != self.identity:
                    self._on_mismatch(backbone.identity)
                    raise TLLError(f"backbone {self.cfg.name}: it now builds as {backbone.identity}, not as recorded "
                                   f"({self.identity}); the record is updated, run again")
                self._built = backbone
        return self._built

    def prepare(self, image: Image.Image) -> Any:
        return self.built().prepare(image)

    def embed(self, prepared: list[Any]) -> np.ndarray:
        return self.built().embed(prepared)

    def vectors_of(self, image_ids: tuple[str, ...], view: str = "") -> np.ndarray | None:
        return None  # a deep backbone computes its vectors from pixels

    def feature_cells(self, images: list[Image.Image]) -> FeatureCells:
        return self.built().feature_cells(images)

    def input_region(self, size: tuple[int, int]) -> Region:
        return self.built().input_region(size)

    def cell_shares(self, left: np.ndarray, candidate: np.ndarray, centre: np.ndarray | None = None) -> CellShares:
        return self.built().cell_shares(left, candidate, centre)

    def __getattr__(self, name: str) -> Any:  # the built network's own attributes (model, transform, device, …)
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.built(), name)
