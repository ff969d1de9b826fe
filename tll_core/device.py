"""Which torch device to run on: ``auto`` picks CUDA, then Apple's MPS, then the CPU.

A leaf module (nothing from tll_core but the errors) so that the CLI, the engine, the backbones, the
matchers and the studio resolve a device name the same way. torch is imported only when a device is
looked up: the CLI's option list must not cost a torch import.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import TLLError, quoted, shown

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda", "mps")


def available_devices() -> list[str]:
    """The concrete devices usable here, in the order ``auto`` prefers them, CPU last: e.g. ``["cuda", "cpu"]``."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    found = [name for name, ok in (("cuda", torch.cuda.is_available()),
                                   ("mps", mps is not None and mps.is_available())) if ok]
    return found + ["cpu"]


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """A device name (one of :data:`DEVICES`) → the ``torch.device`` to use; a one-line :class:`TLLError`
    when the name is unknown or names an accelerator that is not here."""
    import torch

    if isinstance(name, torch.device):
        name = name.type
    if name not in DEVICES:
        raise TLLError(f"unknown device {quoted(name)}; choose from: {', '.join(DEVICES)}")
    here = available_devices()
    if name == "auto":
        return torch.device(here[0])
    if name not in here:
        raise TLLError(f"device {shown(name)} was asked for but is not available here; available: {', '.join(['auto', *here])}")
    return torch.device(name)
