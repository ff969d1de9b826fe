"""What is known of a data folder's images across processes: per image, its stat signature when last seen, whether
its header checked out, and its content SHA-1.

Loading a folder checks every image's header and the studio fingerprints every image's content (``Dataset``):
on tll-dev's 6000 images that is most of a warm restart (about 12 s of reading on 2 busy cores). An image whose
(size, mtime, ctime, inode) is what the index holds has not been rewritten since (any rewrite changes its ctime),
so its recorded check and hash stand; any other image is checked and hashed again. One JSON file per folder in the
cache directory (never in the data folder; never unpickled); a damaged or foreign file is ignored and rewritten.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .files import write_atomic

VERSION = 1
MAX_INDEX_BYTES = 64 * 2**20  # ~120 bytes an image: half a million images
Signature = tuple[int, int, int, int]


@dataclass
class ImageIndex:
    """The index of one data folder, held in memory and saved with :meth:`save` (atomically)."""

    path: Path | None  # None: kept in memory only (no cache directory)
    entries: dict[str, tuple[Signature, bool, str]] = field(default_factory=dict)  # id → (signature, checked, sha1)
    changed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def for_folder(cls, cache_dir: Path | None, root: Path) -> ImageIndex:
        """The index of ``root`` kept under ``cache_dir`` (empty when there is none yet or it does not read)."""
        if cache_dir is None:
            return cls(None)
        key = hashlib.sha1(str(Path(os.path.realpath(root))).encode()).hexdigest()
        index = cls(Path(cache_dir) / "images" / f"{key}.json")
        index.entries = _read(index.path)
        return index

    def checked(self, image_id: str, signature: Signature) -> bool:
        """Whether the image's header checked out when it last had this signature."""
        entry = self.entries.get(image_id)
        return entry is not None and entry[0] == signature and entry[1]

    def sha1(self, image_id: str, signature: Signature) -> str | None:
        entry = self.entries.get(image_id)
        return entry[2] or None if entry is not None and entry[0] == signature else None

    def record(self, image_id: str, signature: Signature, *, checked: bool | None = None, sha1: str | None = None) -> None:
        """What was just learnt of an image with this signature (what was known of another signature is dropped)."""
        with self._lock:
            old = self.entries.get(image_id)
            same = old is not None and old[0] == signature
            entry = (signature, checked if checked is not None else same and old[1],
                     sha1 if sha1 is not None else (old[2] if same else ""))
            if entry != old:
                self.entries[image_id], self.changed = entry, True

    def save(self) -> None:
        """Write the index if it changed (atomically: a temporary file renamed over it); a cache that cannot
        take it costs the next start its checks, nothing else."""
        if self.path is None or not self.changed:
            return
        with self._lock:
            payload = json.dumps({"version": VERSION, "images": {i: [*s, c, h] for i, (s, c, h) in
                                                                 self.entries.items()}}, separators=(",", ":"))
            self.changed = False
        try:
            write_atomic(self.path, payload)
        except OSError:
            self.changed = True


def _read(path: Path) -> dict[str, tuple[Signature, bool, str]]:
    """The entries of an index file; {} when it is missing, too large, damaged or of another version."""
    try:
        if path.stat().st_size > MAX_INDEX_BYTES:
            return {}
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("images"), dict):
        return {}
    entries = {}
    for image_id, value in data["images"].items():
        if (isinstance(value, list) and len(value) == 6 and all(type(v) is int for v in value[:4])
                and type(value[4]) is bool and isinstance(value[5], str) and len(value[5]) in (0, 40)):
            entries[image_id] = ((value[0], value[1], value[2], value[3]), value[4], value[5])
    return entries
