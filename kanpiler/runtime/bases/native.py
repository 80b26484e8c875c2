"""A native kernel for the dense bases' fused forward, compiled on first use (optional).

In: inputs ``x (N, in)`` (float32 or float64, contiguous, CPU), a family code and its
per-input or per-function parameters. Out: ``silu(x)`` and the basis values written into the
fused feature matrix ``(N, in * (nb + 1))`` (basis-major, see :mod:`.fused`) and the slopes
``dB_j/dx`` into ``(N, nb, in)``, in one loop per row. Stage: runtime.

The same library holds the group-rational forward and backward (:func:`rational_kernel`,
used by :mod:`.rational`). Eager torch needs ten or more passes over ``(N, nb, in)`` tensors
for the same work. The code
is compiled with ``-ffast-math`` (vectorised ``exp``; linked without it, so the process keeps
IEEE subnormals), which assumes finite values: callers pass only finite, moderate inputs
(:data:`LIMIT`) and keep the torch path for the rest. It is built by
:func:`kanpiler.runtime.native.build` (same ``KANPILER_NATIVE=0`` switch, a temporary
directory deleted once the library is loaded); without a compiler :func:`dense_kernel` returns ``None`` and the bases keep their torch
path, which computes the same values.

>>> k = dense_kernel()
>>> k is None or callable(k)
True
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from ..native import build

__all__ = ["dense_kernel", "rational_kernel", "RationalKernel", "GAUSS", "MEXICAN_HAT", "MORLET", "DOG", "RELU", "CHEB_TANH",
           "CHEB_SCALE", "FOURIER", "BSRBF"]  # fmt: skip

GAUSS, MEXICAN_HAT, MORLET, DOG, RELU, CHEB_TANH, CHEB_SCALE, FOURIER, BSRBF = range(9)

_SOURCE = r"""
#include <math.h>
#include <stdint.h>

/* kind 0-3: u = x a[j,i] + b[j,i]; value f(u), slope f'(u) a[j,i].
   kind 4 (ReLU-KAN): p = relu(x - a[j,i]) relu(b[j,i] - x); value r p^2, slope 2 r p (q - l).
   kind 5/6 (Chebyshev, tanh / clamped scaling): s = x a[i] + b[i]; T_j of t(s).
   kind 7 (Fourier): theta = (x - b[i]) a[i]; 1, cos(k theta), sin(k theta).
   kind 8 (BSRBF): the Gaussians of kind 0 plus the B-splines of order c[1] on the uniform
   knots r[i] + q / r[n_in + i] (first knot, 1 / spacing), those of index < nb.
   c[0] holds the wavelet norm / Morlet omega; r[i] the ReLU-KAN scale. */
#define DEFINE(T, SUF, EXP, COS, SIN, FLOOR)                                                   \
void dense_##SUF(const T *x, T *feats, T *slopes, const T *a, const T *b, const T *r,          \
                 const T *c, int64_t kind, int64_t n0, int64_t n1, int64_t n_in, int64_t nb) {  \
    const int64_t cols = n_in * (nb + 1);                                                       \
    for (int64_t n = n0; n < n1; ++n) {                                                         \
        const T *xr = x + n * n_in;                                                             \
        T *fr = feats + n * cols, *sr = slopes + n * nb * n_in;                                 \
        for (int64_t i = 0; i < n_in; ++i) fr[i] = xr[i] / ((T)1 + EXP(-xr[i]));                \
        for (int64_t j = 0; (kind <= 3 || kind == 8) && j < nb; ++j) {                          \
            const T *aj = a + j * n_in, *bj = b + j * n_in;                                     \
            T *fj = fr + n_in + j * n_in, *sj = sr + j * n_in;                                  \
            const T c0 = c[0];                                                                  \
            if (kind == 0 || kind == 8) {                                                       \
                for (int64_t i = 0; i < n_in; ++i) {                                            \
                    T u = xr[i] * aj[i] + bj[i], v = EXP(-u * u);                               \
                    fj[i] = v; sj[i] = (T)-2 * u * v * aj[i];                                   \
                }                                                                               \
            } else if (kind == 1) {                                                             \
                for (int64_t i = 0; i < n_in; ++i) {                                            \
                    T u = xr[i] * aj[i] + bj[i], u2 = u * u, e = c0 * EXP((T)-0.5 * u2);        \
                    fj[i] = ((T)1 - u2) * e; sj[i] = u * (u2 - (T)3) * e * aj[i];               \
                }                                                                               \
            } else if (kind == 2) { /* three loops: each vectorises (cos, sin, exp) */          \
                for (int64_t i = 0; i < n_in; ++i) fj[i] = COS(c0 * (xr[i] * aj[i] + bj[i]));   \
                for (int64_t i = 0; i < n_in; ++i) sj[i] = SIN(c0 * (xr[i] * aj[i] + bj[i]));   \
                for (int64_t i = 0; i < n_in; ++i) {                                            \
                    T u = xr[i] * aj[i] + bj[i], e = EXP((T)-0.5 * u * u), cw = fj[i];          \
                    fj[i] = cw * e; sj[i] = -(c0 * sj[i] + u * cw) * e * aj[i];                 \
                }                                                                               \
            } else {                                                                            \
                for (int64_t i = 0; i < n_in; ++i) {                                            \
                    T u = xr[i] * aj[i] + bj[i], u2 = u * u, e = EXP((T)-0.5 * u2);             \
                    fj[i] = -u * e; sj[i] = (u2 - (T)1) * e * aj[i];                            \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        if (kind == 4) {                                                                        \
            for (int64_t j = 0; j < nb; ++j) {                                                  \
                const T *aj = a + j * n_in, *bj = b + j * n_in;                                 \
                T *fj = fr + n_in + j * n_in, *sj = sr + j * n_in;                              \
                for (int64_t i = 0; i < n_in; ++i) {                                            \
                    T l = xr[i] - aj[i], q = bj[i] - xr[i];                                     \
                    l = l > 0 ? l : 0; q = q > 0 ? q : 0;                                       \
                    T p = l * q;                                                                \
                    fj[i] = r[i] * p * p; sj[i] = (T)2 * r[i] * p * (q - l);                    \
                }                                                                               \
            }                                                                                   \
        } else if (kind == 5 || kind == 6) {                                                    \
            T *t = sr, *dt = sr + n_in; /* rows 0, 1 of the slopes are set last */              \
            for (int64_t i = 0; i < n_in; ++i) {                                                \
                T sv = xr[i] * a[i] + b[i], sc = sv < -20 ? -20 : (sv > 20 ? 20 : sv);     \
                if (kind == 5) {                                                                \
                    T tv = (T)1 - (T)2 / (EXP((T)2 * sc) + (T)1);                               \
                    t[i] = tv; dt[i] = ((T)1 - tv * tv) * a[i];                                 \
                } else {                                                                        \
                    T tv = sv < -1 ? -1 : (sv > 1 ? 1 : sv);                                    \
                    t[i] = tv; dt[i] = (sv >= -1 && sv <= 1) ? a[i] : 0;                        \
                }                                                                               \
            }                                                                                   \
            T *f0 = fr + n_in;                                                                  \
            for (int64_t i = 0; i < n_in; ++i) f0[i] = 1;                                       \
            if (nb > 1) for (int64_t i = 0; i < n_in; ++i) f0[n_in + i] = t[i];                 \
            /* slopes: T'_j in rows j >= 2 (scaled by dt below), built from T'_0 = 0, T'_1 = 1 */ \
            for (int64_t j = 2; j < nb; ++j) {                                                  \
                T *fj = f0 + j * n_in, *sj = sr + j * n_in;                                     \
                const T *f1 = fj - n_in, *f2 = fj - 2 * n_in;                                   \
                const T *s1 = sj - n_in, *s2 = sj - 2 * n_in;                                   \
                for (int64_t i = 0; i < n_in; ++i) {                                            \
                    T d1 = j == 2 ? (T)1 : s1[i], d2 = j <= 3 ? (T)0 : s2[i];                  \
                    if (j == 3) d2 = (T)1;                                                      \
                    fj[i] = (T)2 * t[i] * f1[i] - f2[i];                                        \
                    sj[i] = (T)2 * f1[i] + (T)2 * t[i] * d1 - d2;                               \
                }                                                                               \
            }                                                                                   \
            for (int64_t j = 2; j < nb; ++j)                                                    \
                for (int64_t i = 0; i < n_in; ++i) sr[j * n_in + i] *= dt[i];                   \
            for (int64_t i = 0; i < n_in; ++i) { if (nb > 1) sr[n_in + i] = dt[i]; sr[i] = 0; } \
        } else if (kind == 7) {                                                                 \
            const int64_t K = (nb - 1) / 2;                                                     \
            T *c1 = sr, *s1 = sr + n_in; /* scratch in the slope rows 0 and 1, set last */      \
            for (int64_t i = 0; i < n_in; ++i) {                                                \
                T th = (xr[i] - b[i]) * a[i];                                                   \
                c1[i] = COS(th);                                                                \
            }                                                                                   \
            for (int64_t i = 0; i < n_in; ++i) {                                                \
                T th = (xr[i] - b[i]) * a[i];                                                   \
                s1[i] = SIN(th);                                                                \
            }                                                                                   \
            T *f0 = fr + n_in;                                                                  \
            for (int64_t i = 0; i < n_in; ++i) {                                                \
                f0[i] = 1; f0[n_in + i] = c1[i]; f0[(K + 1) * n_in + i] = s1[i];               \
            }                                                                                   \
            for (int64_t k = 2; k <= K; ++k) {                                                  \
                T *ck = f0 + k * n_in, *sk = f0 + (K + k) * n_in;                               \
                const T *cp = ck - n_in, *sp = sk - n_in;                                       \
                for (int64_t i = 0; i < n_in; ++i) {                                            \
                    ck[i] = cp[i] * c1[i] - sp[i] * s1[i];                                      \
                    sk[i] = sp[i] * c1[i] + cp[i] * s1[i];                                      \
                }                                                                               \
            }                                                                                   \
            for (int64_t k = 1; k <= K; ++k) {                                                  \
                const T *ck = f0 + k * n_in, *sk = f0 + (K + k) * n_in;                         \
                T *dc = sr + k * n_in, *ds = sr + (K + k) * n_in;                               \
                for (int64_t i = 0; i < n_in; ++i) {                                            \
                    dc[i] = -(T)k * a[i] * sk[i]; ds[i] = (T)k * a[i] * ck[i];                  \
                }                                                                               \
            }                                                                                   \
            for (int64_t i = 0; i < n_in; ++i) sr[i] = 0;                                       \
        } else if (kind == 8) { /* BSRBF: add the uniform B-splines of order K = c[1] */        \
            const int64_t K = (int64_t)c[1], top = nb + K - 1; /* last interval: L - 2 */      \
            T u[n_in], v[(K + 1) * n_in], w[(K + 1) * n_in];                                   \
            int64_t mi[n_in];                                                                   \
            for (int64_t i = 0; i < n_in; ++i) {                                                \
                T t = (xr[i] - r[i]) * r[n_in + i], fm = FLOOR(t);                              \
                u[i] = t - fm; mi[i] = (fm < 0 || fm > (T)top) ? -1 - K - nb : (int64_t)fm;     \
                v[i] = 1;                                                                       \
            }                                                                                   \
            for (int64_t d = 1; d <= K; ++d) { /* w: order d - 1, v: order d */                 \
                for (int64_t q = 0; q < d * n_in; ++q) w[q] = v[q];                             \
                const T inv_d = (T)1 / (T)d;                                                    \
                for (int64_t q = 0; q <= d; ++q) {                                              \
                    T *vq = v + q * n_in;                                                       \
                    const T *wl = w + (q - 1) * n_in, *wr = w + q * n_in;                       \
                    if (q == 0)                                                                 \
                        for (int64_t i = 0; i < n_in; ++i)                                      \
                            vq[i] = ((T)1 - u[i]) * wr[i] * inv_d;                              \
                    else if (q == d)                                                            \
                        for (int64_t i = 0; i < n_in; ++i) vq[i] = (u[i] + (T)0) * wl[i] * inv_d; \
                    else                                                                        \
                        for (int64_t i = 0; i < n_in; ++i)                                      \
                            vq[i] = ((u[i] + (T)(d - q)) * wl[i] + ((T)(q + 1) - u[i]) * wr[i]) * inv_d; \
                }                                                                               \
            }                                                                                   \
            for (int64_t q = 0; q <= K; ++q) {                                                  \
                const T *vq = v + q * n_in, *wl = w + (q - 1) * n_in, *wr = w + q * n_in;       \
                for (int64_t i = 0; i < n_in; ++i) {                                            \
                    int64_t j = mi[i] - K + q;                                                  \
                    if (j < 0 || j >= nb || vq[i] == 0) continue;                               \
                    T dv = K == 0 ? 0 : ((q >= 1 ? wl[i] : 0) - (q < K ? wr[i] : 0));           \
                    fr[n_in + j * n_in + i] += vq[i];                                           \
                    sr[j * n_in + i] += dv * r[n_in + i];                                       \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
}

/* d out / dx = silu'(x) gfeat_0 + sum_j gfeat_j slope_j, row by row */
#define DEFINE_GRAD(T, SUF, EXP)                                                                \
void dense_grad_##SUF(const T *x, const T *gfeat, const T *slopes, T *gx, int64_t n0,          \
                      int64_t n1, int64_t n_in, int64_t nb) {                                   \
    const int64_t cols = n_in * (nb + 1);                                                       \
    for (int64_t n = n0; n < n1; ++n) {                                                         \
        const T *xr = x + n * n_in, *gr = gfeat + n * cols, *sr = slopes + n * nb * n_in;       \
        T *out = gx + n * n_in;                                                                 \
        for (int64_t i = 0; i < n_in; ++i) {                                                    \
            T sg = (T)1 / ((T)1 + EXP(-xr[i]));                                                 \
            out[i] = gr[i] * sg * ((T)1 + xr[i] * ((T)1 - sg));                                 \
        }                                                                                       \
        for (int64_t j = 0; j < nb; ++j) {                                                      \
            const T *gj = gr + n_in + j * n_in, *sj = sr + j * n_in;                            \
            for (int64_t i = 0; i < n_in; ++i) out[i] += gj[i] * sj[i];                         \
        }                                                                                       \
    }                                                                                           \
}

DEFINE(float, f32, expf, cosf, sinf, floorf)
DEFINE(double, f64, exp, cos, sin, floor)
DEFINE_GRAD(float, f32, expf)
DEFINE_GRAD(double, f64, exp)

/* Group-rational y = P(x) / Q(x) per channel c of rows n0..n1 of x (N, C):
   P = sum_{i<=m} a[i,c] x^i, Q = 1 + sum_{1<=j<=nd} bb[j-1,c] |x|^j (bb >= 0, the |b_j|).
   Backward: gx = g (P' - (P/Q) Q') / Q; ga[i,c] += g x^i / Q; gbb[j-1,c] += -g P/Q^2 |x|^j
   (ga, gbb: this span's own accumulators). Inner loops run over channels (vectorised). */
#define DEFINE_RATIONAL(T, SUF, FABS)                                                           \
void rational_##SUF(const T *x, T *y, const T *a, const T *bb, int64_t n0, int64_t n1,        \
                    int64_t C, int64_t m, int64_t nd) {                                         \
    T p[C], q[C];                                                                               \
    for (int64_t n = n0; n < n1; ++n) {                                                         \
        const T *xr = x + n * C;                                                                \
        for (int64_t c = 0; c < C; ++c) { p[c] = a[m * C + c]; q[c] = 0; }                      \
        for (int64_t i = m - 1; i >= 0; --i)                                                    \
            for (int64_t c = 0; c < C; ++c) p[c] = p[c] * xr[c] + a[i * C + c];                 \
        for (int64_t j = nd - 1; j >= 0; --j)                                                   \
            for (int64_t c = 0; c < C; ++c) q[c] = (q[c] + bb[j * C + c]) * FABS(xr[c]);        \
        T *yr = y + n * C;                                                                      \
        for (int64_t c = 0; c < C; ++c) yr[c] = p[c] / (q[c] + (T)1);                           \
    }                                                                                           \
}                                                                                               \
void rational_grad_##SUF(const T *x, const T *g, const T *a, const T *bb, T *gx, T *ga,       \
                         T *gbb, int64_t n0, int64_t n1, int64_t C, int64_t m, int64_t nd) {   \
    T p[C], dp[C], q[C], dq[C], w[C];                                                           \
    for (int64_t n = n0; n < n1; ++n) {                                                         \
        const T *xr = x + n * C, *gr = g + n * C;                                               \
        for (int64_t c = 0; c < C; ++c) { p[c] = a[m * C + c]; dp[c] = 0; q[c] = 0; dq[c] = 0; } \
        for (int64_t i = m - 1; i >= 0; --i)                                                    \
            for (int64_t c = 0; c < C; ++c) {                                                   \
                dp[c] = dp[c] * xr[c] + p[c]; p[c] = p[c] * xr[c] + a[i * C + c];              \
            }                                                                                   \
        for (int64_t j = nd - 1; j >= 0; --j)                                                   \
            for (int64_t c = 0; c < C; ++c) {                                                   \
                T ax = FABS(xr[c]), s = q[c] + bb[j * C + c];                                   \
                dq[c] = dq[c] * ax + s; q[c] = s * ax;                                          \
            }                                                                                   \
        T *gxr = gx + n * C;                                                                    \
        for (int64_t c = 0; c < C; ++c) {                                                       \
            T r = gr[c] / (q[c] + (T)1), f = p[c] / (q[c] + (T)1);                             \
            T sg = xr[c] > 0 ? (T)1 : (xr[c] < 0 ? (T)-1 : (T)0);                              \
            gxr[c] = r * (dp[c] - f * sg * dq[c]);                                              \
            w[c] = r; q[c] = -r * f; /* q now holds -g P / Q^2 */                               \
        }                                                                                       \
        for (int64_t i = 0; i <= m; ++i)                                                        \
            for (int64_t c = 0; c < C; ++c) { ga[i * C + c] += w[c]; w[c] *= xr[c]; }           \
        for (int64_t j = 0; j < nd; ++j)                                                        \
            for (int64_t c = 0; c < C; ++c) {                                                   \
                q[c] *= FABS(xr[c]); gbb[j * C + c] += q[c];                                    \
            }                                                                                   \
    }                                                                                           \
}

DEFINE_RATIONAL(float, f32, fabsf)
DEFINE_RATIONAL(double, f64, fabs)
"""

_PTR, _I64 = ctypes.c_void_p, ctypes.c_int64
_LOCK = threading.Lock()
_STATE: dict[str, object] = {}
#: inputs of larger magnitude (or not finite) take the torch path
LIMIT = 1e6
#: feature elements per thread below which a call stays in the calling thread
WORK_PER_THREAD = 1 << 18


def dense_kernel() -> Callable[..., None] | None:
    """``fill(kind, x, feats, slopes, a, b, r, c)`` (all contiguous tensors of ``x``'s dtype),
    built on the first call; ``None`` when it cannot be had."""
    if "fill" not in _STATE:
        with _LOCK:
            if "fill" not in _STATE:
                _STATE["fill"] = _load()
    return _STATE["fill"]  # type: ignore[return-value]


def _load() -> Callable[..., None] | None:
    handle = build(_SOURCE, "bases", ["-ffast-math"])
    if handle is None:
        return None
    fills, grads, rationals, rational_grads = {}, {}, {}, {}
    for dtype, suffix in ((torch.float32, "f32"), (torch.float64, "f64")):
        fn = getattr(handle, f"dense_{suffix}")
        fn.restype, fn.argtypes = None, [_PTR] * 7 + [_I64] * 5
        fills[dtype] = fn
        fn = getattr(handle, f"dense_grad_{suffix}")
        fn.restype, fn.argtypes = None, [_PTR] * 4 + [_I64] * 4
        grads[dtype] = fn
        fn = getattr(handle, f"rational_{suffix}")
        fn.restype, fn.argtypes = None, [_PTR] * 4 + [_I64] * 5
        rationals[dtype] = fn
        fn = getattr(handle, f"rational_grad_{suffix}")
        fn.restype, fn.argtypes = None, [_PTR] * 7 + [_I64] * 5
        rational_grads[dtype] = fn
    fill = _binder(fills, grads)
    fill.rational = _rational_binder(rationals, rational_grads)  # type: ignore[attr-defined]
    return fill


_POOL: list[ThreadPoolExecutor] = []


def _spans(n: int, work: int) -> list[tuple[int, int]]:
    """Row spans, one per thread (one span for small work)."""
    parts = max(1, min(torch.get_num_threads(), n * work // WORK_PER_THREAD, n))
    step = -(-n // parts)
    return [(s, min(n, s + step)) for s in range(0, n, step)]


def _run_spans(spans: list[tuple[int, int]], call: Callable[[int, int], None]) -> None:
    if len(spans) == 1:
        call(*spans[0])
        return
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)))
    list(_POOL[0].map(lambda se: call(*se), spans))


def _binder(fills: dict, grads: dict) -> Callable[..., None]:
    def run(n: int, work: int, call: Callable[[int, int], None]) -> None:
        _run_spans(_spans(n, work), call)

    def fill(kind: int, x, feats, slopes, a, b, r, c) -> None:
        """silu, values and slopes (see the module)."""
        n, n_in = x.shape
        nb = feats.shape[1] // max(n_in, 1) - 1
        fn, args = fills[x.dtype], [t.data_ptr() for t in (x, feats, slopes, a, b, r, c)]
        run(n, feats.shape[1], lambda s, e: fn(*args, kind, s, e, n_in, nb))

    def grad(x, gfeat, slopes, gx) -> None:
        """``gx = silu'(x) gfeat_0 + sum_j gfeat_j slopes_j``."""
        n, n_in = x.shape
        nb = gfeat.shape[1] // max(n_in, 1) - 1
        fn, args = grads[x.dtype], [t.data_ptr() for t in (x, gfeat, slopes, gx)]
        run(n, gfeat.shape[1], lambda s, e: fn(*args, s, e, n_in, nb))

    fill.grad = grad  # type: ignore[attr-defined]
    return fill


class RationalKernel:
    """The group-rational forward and backward on ``(N, C)`` rows (see the C source): ``a``
    ``(m+1, C)`` and ``bb`` ``(nd, C)`` are per-channel coefficients, ``bb`` already ``|b|``."""

    def __init__(self, forwards: dict, backwards: dict) -> None:
        self.forwards, self.backwards = forwards, backwards

    def forward(self, x: torch.Tensor, a: torch.Tensor, bb: torch.Tensor) -> torch.Tensor:
        n, c = x.shape
        y = torch.empty_like(x)
        fn = self.forwards[x.dtype]
        args = [t.data_ptr() for t in (x, y, a, bb)]
        m, nd = a.shape[0] - 1, bb.shape[0]
        _run_spans(_spans(n, c * (m + nd + 2)), lambda s, e: fn(*args, s, e, c, m, nd))
        return y

    def backward(self, x: torch.Tensor, g: torch.Tensor, a: torch.Tensor, bb: torch.Tensor):
        """``(gx, ga, gbb)``: each span sums its coefficient gradients apart, then they add."""
        n, c = x.shape
        m, nd = a.shape[0] - 1, bb.shape[0]
        spans = _spans(n, 2 * c * (m + nd + 2))
        gx = torch.empty_like(x)
        ga = torch.zeros(len(spans), m + 1, c, dtype=x.dtype, device=x.device)
        gbb = torch.zeros(len(spans), max(nd, 1), c, dtype=x.dtype, device=x.device)
        fn = self.backwards[x.dtype]
        args = [t.data_ptr() for t in (x, g, a, bb, gx)]
        part = {se: k for k, se in enumerate(spans)}

        def call(s: int, e: int) -> None:
            k = part[(s, e)]
            fn(*args, ga[k].data_ptr(), gbb[k].data_ptr(), s, e, c, m, nd)

        _run_spans(spans, call)
        return gx, ga.sum(0), gbb.sum(0)[:nd]


def _rational_binder(forwards: dict, backwards: dict) -> RationalKernel:
    return RationalKernel(forwards, backwards)


def rational_kernel() -> RationalKernel | None:
    """The group-rational kernel (same library as :func:`dense_kernel`), or ``None``."""
    fill = dense_kernel()
    return None if fill is None else fill.rational  # type: ignore[attr-defined]
