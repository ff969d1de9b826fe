"""Process-level speed settings that every entry point (CLI, studio, benchmarks) gets by default."""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 2**31 - 1  # mallopt takes an int; glibc 2.36 accepts it (2 GiB)
TRIM_THRESHOLD = 2**31 - 1


@functools.cache
def tune_malloc() -> bool:
    """Keep freed memory in the heap instead of returning it to the OS after every batch.

    PyTorch's CPU inference allocates and frees the same large activation buffers on every batch; with
    glibc's defaults each of them is a fresh mmap and page-faults anew. Raising the mmap and trim
    thresholds (the in-process form of ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``) lets them
    be reused: mobilenetv3 57 → 111 img/s on 2 cores (``bench/``). A no-op where glibc is absent.
    """
    if os.environ.get("TLL_MALLOC_TUNE") == "0":  # off switch, for measuring the difference
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    except (OSError, AttributeError):
        return False
    return bool(ok)


_BLAS_LOCK = threading.Lock()


@functools.cache
def _blas_controller():  # -> threadpoolctl.ThreadpoolController over the BLAS libraries loaded (numpy's OpenBLAS)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy's BLAS/LAPACK on one thread, one caller at a time.

    OpenBLAS's results depend on its thread count: a learned matcher's PCA fitted under ``OMP_NUM_THREADS=1``
    and under the default differed in the last bits, and so did every score and CSV after it (issue 18). One
    thread makes them the same whatever the environment says; the lock keeps a concurrent caller (another
    studio session) from restoring the thread count in the middle of a fit.
    """
    with _BLAS_LOCK, _blas_controller().limit(limits=1, user_api="blas"):
        yield
