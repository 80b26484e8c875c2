"""Native kernels for the cubic B-spline fast path, compiled on first use (optional).

In: inputs ``x (N, in)`` (float32 or float64, contiguous, on CPU) and a uniform cubic grid
(first knot and ``1/h`` per input). Out: the spline columns of the fused feature matrix, written
in one pass (zeros and the four non-zero values of each input), and on backward the spline part
of ``d out / dx`` read from ``grad @ W^T``. Stage: runtime (used by :mod:`.fused`).

Eager torch needs a dozen passes over ``(N, in)`` tensors, a zeroing of the feature matrix and
a scatter for the same work; here it is one loop per row. The C source below is compiled with
the system C compiler the first time a kernel is needed, into a private temporary directory
that is deleted again once the library is loaded (nothing stays on disk). No compiler, a failed
build or ``KANPILER_NATIVE=0`` in the environment: :func:`kernels` returns ``None`` and the
caller keeps its torch path; the probe is a ``PATH`` lookup, so the fallback costs nothing.
Rows are split across ``torch.get_num_threads()`` Python threads (a ctypes call releases the
GIL), so the kernels use the threads torch is told to use and start no thread pool of their own.

>>> k = kernels()
>>> k is None or callable(k.features)
True
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import torch

__all__ = ["Kernels", "kernels", "compiler", "WORK_PER_THREAD", "ROW_WISE"]

#: a thread gets at least this many feature-matrix elements (smaller calls run in the calling
#: thread: handing work to another thread costs more than it saves)
WORK_PER_THREAD = 1 << 18
#: rows of at least this many inputs are done row by row, shorter ones as one flat sequence
ROW_WISE = 16

_SOURCE = r"""
#include <stdint.h>
#include <string.h>
#define BLOCK 512

/* The elements (n, i) of rows n0 .. n1 are taken in blocks of BLOCK, whatever the row length:
   a scalar pass finds each element's input i and row offset, a vectorisable pass computes the
   interval and the four cubic B-spline values (columns of bases m-3 .. m on interval m), and
   a scalar pass stores them. */
#define INDEX_PASS                                                                              \
    int64_t n = e0 / n_in, i = e0 % n_in;                                                       \
    for (int64_t j = 0; j < len; ++j) {                                                         \
        ii[j] = (int32_t)i;                                                                     \
        row[j] = n * cols;                                                                      \
        if (++i == n_in) { i = 0; ++n; }                                                        \
    }

#define DEFINE(T, SUF)                                                                          \
int features_##SUF(const T *x, const T *silu, const T *g0, const T *inv_h, T *feats,            \
                   int64_t n0, int64_t n1, int64_t n_in, int64_t nb, T slack, T below_top) {    \
    const int64_t cols = n_in * (nb + 1);                                                       \
    const T top = (T)nb;                                                                        \
    const int64_t group = cols >= 8192 ? 1 : 8192 / cols; /* rows zeroed at a time */           \
    int32_t ii[BLOCK];                                                                          \
    int64_t row[BLOCK], pos[BLOCK];                                                             \
    T c0[BLOCK], c1[BLOCK], c2[BLOCK], c3[BLOCK];                                               \
    for (int64_t r0 = n0; r0 < n1; r0 += group) {                                               \
        const int64_t r1 = r0 + group < n1 ? r0 + group : n1;                                   \
        memset(feats + r0 * cols, 0, sizeof(T) * (size_t)((r1 - r0) * cols));                   \
        for (int64_t e0 = r0 * n_in; e0 < r1 * n_in; e0 += BLOCK) {                             \
            const int64_t len = r1 * n_in - e0 < BLOCK ? r1 * n_in - e0 : BLOCK;                \
            INDEX_PASS                                                                          \
            int bad = 0;                                                                        \
            for (int64_t j = 0; j < len; ++j) {                                                 \
                const int32_t k = ii[j];                                                        \
                T t = (x[e0 + j] - g0[k]) * inv_h[k];                                           \
                bad |= !((t >= (T)3 - slack) & (t <= top + slack)); /* NaN fails too */         \
                t = t < (T)3 ? (T)3 : t;                                                        \
                t = t > below_top ? below_top : t;                                              \
                int32_t m = (int32_t)t;                                                         \
                T u = t - (T)m, v = (T)1 - u, u2 = u * u, v2 = v * v;                           \
                pos[j] = row[j] + n_in + (int64_t)k * nb + m - 3;                               \
                c0[j] = v2 * v * ((T)1 / (T)6);                                                 \
                c1[j] = ((T)2 / (T)3 - u2) + u2 * u * (T)0.5;                                   \
                c2[j] = ((T)2 / (T)3 - v2) + v2 * v * (T)0.5;                                   \
                c3[j] = u2 * u * ((T)1 / (T)6);                                                 \
            }                                                                                   \
            if (bad) return 1;                                                                  \
            for (int64_t j = 0; j < len; ++j) {                                                 \
                T *c = feats + pos[j];                                                          \
                c[0] = c0[j]; c[1] = c1[j]; c[2] = c2[j]; c[3] = c3[j];                         \
                feats[row[j] + ii[j]] = silu[e0 + j];                                           \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
    return 0;                                                                                   \
}                                                                                               \
void grad_x_##SUF(const T *x, const T *sig, const T *g0, const T *inv_h, const T *gfeat,        \
                  const T *feats, T *gx, int64_t n0, int64_t n1, int64_t n_in, int64_t nb,      \
                  T below_top) {                                                                \
    const int64_t cols = n_in * (nb + 1);                                                       \
    int32_t ii[BLOCK];                                                                          \
    int64_t row[BLOCK], pos[BLOCK];                                                             \
    T d0[BLOCK], d1[BLOCK], d2[BLOCK], d3[BLOCK], base[BLOCK];                                  \
    for (int64_t e0 = n0 * n_in; e0 < n1 * n_in; e0 += BLOCK) {                                 \
        const int64_t len = n1 * n_in - e0 < BLOCK ? n1 * n_in - e0 : BLOCK;                    \
        INDEX_PASS                                                                              \
        for (int64_t j = 0; j < len; ++j) { /* silu' = s + silu (1 - s), silu from feats */     \
            const T s = sig[e0 + j], f = feats[row[j] + ii[j]];                                 \
            base[j] = gfeat[row[j] + ii[j]] * (s + f * ((T)1 - s));                             \
        }                                                                                       \
        for (int64_t j = 0; j < len; ++j) {                                                     \
            const int32_t k = ii[j];                                                            \
            T t = (x[e0 + j] - g0[k]) * inv_h[k];                                               \
            t = t < (T)3 ? (T)3 : t;                                                            \
            t = t > below_top ? below_top : t;                                                  \
            int32_t m = (int32_t)t;                                                             \
            T u = t - (T)m, v = (T)1 - u, h = inv_h[k];                                         \
            T q0 = (T)0.5 * v * v, q2 = (T)0.5 * u * u, q1 = (T)1 - q0 - q2;                    \
            pos[j] = row[j] + n_in + (int64_t)k * nb + m - 3;                                   \
            d0[j] = -q0 * h; d1[j] = (q0 - q1) * h; d2[j] = (q1 - q2) * h; d3[j] = q2 * h;      \
        }                                                                                       \
        for (int64_t j = 0; j < len; ++j) {                                                     \
            const T *g = gfeat + pos[j];                                                        \
            gx[e0 + j] = base[j] + g[0] * d0[j] + g[1] * d1[j] + g[2] * d2[j] + g[3] * d3[j];   \
        }                                                                                       \
    }                                                                                           \
}

DEFINE(float, f32)
DEFINE(double, f64)

/* Row by row, for rows of many inputs: no index pass, contiguous reads of x and the grid. */
#define ROW_BLOCK 256

/* Cubic uniform B-splines at u in [0, 1): columns of bases m-3 .. m on interval m. Each row
   is done in blocks of inputs: a vectorisable pass computing the interval and the four values,
   then the (scalar) stores into the row. */
#define DEFINE_ROWS(T, SUF)                                                                     \
int features_rows_##SUF(const T *x, const T *silu, const T *g0, const T *inv_h, T *feats,       \
                   int64_t n0, int64_t n1, int64_t n_in, int64_t nb, T slack, T below_top) {    \
    const int64_t cols = n_in * (nb + 1);                                                       \
    const T top = (T)nb;                                                                        \
    int32_t col[ROW_BLOCK];                                                                     \
    T c0[ROW_BLOCK], c1[ROW_BLOCK], c2[ROW_BLOCK], c3[ROW_BLOCK];                               \
    for (int64_t n = n0; n < n1; ++n) {                                                         \
        const T *xr = x + n * n_in;                                                             \
        T *row = feats + n * cols;                                                              \
        memcpy(row, silu + n * n_in, sizeof(T) * (size_t)n_in);                                 \
        memset(row + n_in, 0, sizeof(T) * (size_t)(n_in * nb));                                 \
        for (int64_t i0 = 0; i0 < n_in; i0 += ROW_BLOCK) {                                      \
            const int64_t len = n_in - i0 < ROW_BLOCK ? n_in - i0 : ROW_BLOCK;                  \
            int bad = 0;                                                                        \
            for (int64_t j = 0; j < len; ++j) {                                                 \
                T t = (xr[i0 + j] - g0[i0 + j]) * inv_h[i0 + j];                                \
                bad |= !((t >= (T)3 - slack) & (t <= top + slack)); /* NaN fails too */         \
                t = t < (T)3 ? (T)3 : t;                                                        \
                t = t > below_top ? below_top : t;                                              \
                int32_t m = (int32_t)t;                                                         \
                T u = t - (T)m, v = (T)1 - u, u2 = u * u, v2 = v * v;                           \
                col[j] = (int32_t)((i0 + j) * nb) + m - 3;                                      \
                c0[j] = v2 * v * ((T)1 / (T)6);                                                 \
                c1[j] = ((T)2 / (T)3 - u2) + u2 * u * (T)0.5;                                   \
                c2[j] = ((T)2 / (T)3 - v2) + v2 * v * (T)0.5;                                   \
                c3[j] = u2 * u * ((T)1 / (T)6);                                                 \
            }                                                                                   \
            if (bad) return 1;                                                                  \
            T *base = row + n_in;                                                               \
            for (int64_t j = 0; j < len; ++j) {                                                 \
                T *c = base + col[j];                                                           \
                c[0] = c0[j]; c[1] = c1[j]; c[2] = c2[j]; c[3] = c3[j];                         \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
    return 0;                                                                                   \
}                                                                                               \
void grad_x_rows_##SUF(const T *x, const T *sig, const T *g0, const T *inv_h, const T *gfeat,   \
                  const T *feats, T *gx, int64_t n0, int64_t n1, int64_t n_in, int64_t nb,      \
                  T below_top) {                                                                \
    const int64_t cols = n_in * (nb + 1);                                                       \
    int32_t col[ROW_BLOCK];                                                                     \
    T d0[ROW_BLOCK], d1[ROW_BLOCK], d2[ROW_BLOCK], d3[ROW_BLOCK];                               \
    for (int64_t n = n0; n < n1; ++n) {                                                         \
        const T *xr = x + n * n_in, *sr = sig + n * n_in;                                       \
        const T *grow = gfeat + n * cols, *frow = feats + n * cols;                             \
        T *out = gx + n * n_in;                                                                 \
        for (int64_t i0 = 0; i0 < n_in; i0 += ROW_BLOCK) {                                      \
            const int64_t len = n_in - i0 < ROW_BLOCK ? n_in - i0 : ROW_BLOCK;                  \
            for (int64_t j = 0; j < len; ++j) {                                                 \
                const int64_t i = i0 + j;                                                       \
                T t = (xr[i] - g0[i]) * inv_h[i];                                               \
                t = t < (T)3 ? (T)3 : t;                                                        \
                t = t > below_top ? below_top : t;                                              \
                int32_t m = (int32_t)t;                                                         \
                T u = t - (T)m, v = (T)1 - u, h = inv_h[i];                                     \
                T q0 = (T)0.5 * v * v, q2 = (T)0.5 * u * u, q1 = (T)1 - q0 - q2;                \
                col[j] = (int32_t)(n_in + i * nb) + m - 3;                                      \
                d0[j] = -q0 * h; d1[j] = (q0 - q1) * h; d2[j] = (q1 - q2) * h; d3[j] = q2 * h;  \
                /* silu' = s + silu (1 - s), silu(x) read back from the features */             \
                out[i] = grow[i] * (sr[i] + frow[i] * ((T)1 - sr[i]));                          \
            }                                                                                   \
            for (int64_t j = 0; j < len; ++j) {                                                 \
                const T *g = grow + col[j];                                                     \
                out[i0 + j] += g[0] * d0[j] + g[1] * d1[j] + g[2] * d2[j] + g[3] * d3[j];       \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
}

DEFINE_ROWS(float, f32)
DEFINE_ROWS(double, f64)
"""

_I64 = ctypes.c_int64
_PTR = ctypes.c_void_p
_SCALAR = {torch.float32: ctypes.c_float, torch.float64: ctypes.c_double}
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


class Kernels(NamedTuple):
    """The loaded kernels: ``features(x, silu, g0, inv_h, feats, slack, below_top) -> bool``
    (False: a point lies outside the grid proper, take the general path) and
    ``grad_x(x, sigmoid, g0, inv_h, gfeat, feats, gx, below_top)`` (all of ``d out / dx``)."""

    features: Callable[..., bool]
    grad_x: Callable[..., None]


_LOCK = threading.Lock()
_STATE: dict[str, object] = {}


def compiler() -> str | None:
    """The C compiler to build with: ``$CC`` if set, else ``cc``/``gcc``/``clang`` on PATH."""
    names = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def kernels() -> Kernels | None:
    """The native kernels, built on the first call; ``None`` when they cannot be had."""
    if "kernels" in _STATE:
        return _STATE["kernels"]  # type: ignore[return-value]
    with _LOCK:
        if "kernels" not in _STATE:
            _STATE["kernels"] = _load()
    return _STATE["kernels"]  # type: ignore[return-value]


def reset() -> None:
    """Forget the loaded kernels (the next :func:`kernels` probes and builds again)."""
    with _LOCK:
        _STATE.clear()


def build(source: str, name: str, flags: list[str]) -> ctypes.CDLL | None:
    """Compile C ``source`` into a shared library and load it; ``None`` when it cannot be had
    (``KANPILER_NATIVE=0``, no compiler, a failed build). The source is compiled to an object
    with ``flags`` and linked in a second step without them: linking with ``-ffast-math`` would
    add gcc's start-up code that switches the whole process to flush-to-zero arithmetic. The
    files live in a private temporary directory that is deleted once the library is loaded."""
    cc = compiler()
    if os.environ.get("KANPILER_NATIVE", "1") == "0" or cc is None:
        return None
    with tempfile.TemporaryDirectory(prefix=f"kanpiler-{name}-") as tmp:
        src, obj, lib = (Path(tmp) / f"{name}{ext}" for ext in (".c", ".o", ".so"))
        src.write_text(source)
        steps = [
            [cc, "-O3", "-march=native", "-fPIC", *flags, "-c", str(src), "-o", str(obj)],
            [cc, "-shared", str(obj), "-o", str(lib), "-lm"],
        ]
        try:
            for cmd in steps:
                if subprocess.run(cmd, capture_output=True, timeout=60).returncode != 0:
                    return None
            return ctypes.CDLL(str(lib))  # stays mapped after the file is deleted
        except (OSError, subprocess.SubprocessError):
            return None


def _load() -> Kernels | None:
    handle = build(_SOURCE, "spline", ["-fno-math-errno"])
    if handle is None:
        return None
    return Kernels(features=_bind_features(handle), grad_x=_bind_grad_x(handle))


def _ptr(t: torch.Tensor) -> int:
    return t.data_ptr()


def _chunks(n: int, row_work: int) -> list[tuple[int, int]]:
    parts = max(1, min(torch.get_num_threads(), n * row_work // WORK_PER_THREAD, n))
    step = -(-n // parts)
    return [(a, min(n, a + step)) for a in range(0, n, step)]


def _pool() -> ThreadPoolExecutor:
    """The worker threads, made again in a forked child (e.g. a DataLoader worker), where
    the parent's threads do not exist."""
    owner = _STATE.get("pool")
    if owner is None or owner[0] != os.getpid():  # type: ignore[index]
        owner = (os.getpid(), ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)))
        _STATE["pool"] = owner
    return owner[1]  # type: ignore[index]


def _run(calls: list) -> list:
    if len(calls) == 1:
        return [calls[0]()]
    return list(_pool().map(lambda f: f(), calls))


def _bound(handle: ctypes.CDLL, name: str, restype, argtypes) -> dict:
    """``{(dtype, by_rows): function}`` for the flat and the row-wise variant of ``name``."""
    funcs = {}
    for dtype, suffix in _SUFFIX.items():
        for by_rows, infix in ((False, ""), (True, "rows_")):
            fn = getattr(handle, f"{name}_{infix}{suffix}")
            fn.restype = restype
            fn.argtypes = argtypes(_SCALAR[dtype])
            funcs[dtype, by_rows] = fn
    return funcs


def _bind_features(handle: ctypes.CDLL):
    funcs = _bound(handle, "features", ctypes.c_int, lambda t: [_PTR] * 5 + [_I64] * 4 + [t] * 2)

    def features(x, silu, g0, inv_h, feats, slack: float, below_top: float) -> bool:
        (n, n_in), cols = x.shape, feats.shape[1]
        fn, nb = funcs[x.dtype, n_in >= ROW_WISE], cols // n_in - 1
        args = (_ptr(x), _ptr(silu), _ptr(g0), _ptr(inv_h), _ptr(feats))
        spans = _chunks(n, cols)
        calls = [(lambda a=a, b=b: fn(*args, a, b, n_in, nb, slack, below_top)) for a, b in spans]
        return not any(_run(calls))

    return features


def _bind_grad_x(handle: ctypes.CDLL):
    funcs = _bound(handle, "grad_x", None, lambda t: [_PTR] * 7 + [_I64] * 4 + [t])

    def grad_x(x, sigmoid, g0, inv_h, gfeat, feats, gx, below_top: float) -> None:
        (n, n_in), cols = x.shape, gfeat.shape[1]
        fn, nb = funcs[x.dtype, n_in >= ROW_WISE], cols // n_in - 1
        args = (_ptr(x), _ptr(sigmoid), _ptr(g0), _ptr(inv_h), _ptr(gfeat), _ptr(feats), _ptr(gx))
        spans = _chunks(n, cols)
        _run([(lambda a=a, b=b: fn(*args, a, b, n_in, nb, below_top)) for a, b in spans])

    return grad_x
