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


THREAD_BATCH_SIZE = 8  # images a batch in a thread other than the main one (the studio's script threads)


def batch_for_this_thread(batch_size: int) -> int:
    """The batch size to embed with in the calling thread: ``batch_size`` in the main thread, at most
    :data:`THREAD_BATCH_SIZE` in any other.

    glibc gives every other thread its own malloc arena, grown in heaps of at most 64 MiB; an allocation that
    does not fit one is a fresh mmap whatever the thresholds :func:`tune_malloc` raised, page-faulted anew on
    every batch. A 32-image batch of efficientnet-lite2 (260 px) needs activation buffers larger than that:
    the studio, whose scripts run in their own threads, embedded the default recipe at 27 img/s where the CLI
    ran at 36. Eight images fit: 35 img/s in either thread (``bench/bench_engine.py``'s thread row)."""
    if threading.current_thread() is threading.main_thread():
        return batch_size
    return max(1, min(batch_size, THREAD_BATCH_SIZE))


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


_TORCH_LOCK = threading.Lock()


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """torch's CPU work on one thread while a learned matcher trains, one trainer at a time.

    Its matrices are small (a few hundred pairs x 256 dims): two threads gain nothing there, and on a busy
    machine (the studio embedding beside it, two processes on two cores) every step waits at a thread barrier
    for a core: an adaptation fit took 65 s on two threads against 3.8 s on one under load
    (``bench/bench_engine.py``'s fit row). One thread also makes a fit the same computation whatever the core
    count. torch's thread count is the process's, so it is restored after, and the lock keeps two fits from
    restoring it in each other's middle.
    """
    import torch

    with _TORCH_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)
