"""A whole B-spline KAN in one native call: outputs, squared-error losses and all gradients.

In: a :class:`~kanpiler.runtime.multkan.MultKAN` of sum nodes with B-spline edges only (any
order ``k``, uniform or non-uniform knots, e.g. after grid updates), on CPU in float32 or
float64, its inputs ``(N, n_in)`` and optionally targets. Out: the outputs ``(N, n_out)``, or
the mean squared error of every group of output columns (a restart of a stacked model) with
the gradients of ``coef``, ``scale_base`` and ``scale_sp`` of every layer written into given
buffers. Stage: runtime (training: the objective of small models).

Small models spend their time in per-operation overhead, not arithmetic: a ``[2, 5, 1]``
network does ~100 multiply-adds per sample, while one eager forward and backward launches some
hundred tensor operations. Here every layer is one pass over the samples, each input's
``k + 1`` non-zero B-splines evaluated from the per-interval polynomial table of
:meth:`BSplineBasis._table` (an interval search in the input's own knot vector, then Horner's
rule), and only edges with a non-zero mask are visited (a stacked model of restarts pays for
its diagonal blocks only). The C source is compiled on first use like :mod:`.native`; without
a compiler (or ``KANPILER_NATIVE=0``) :func:`kernel` is ``None`` and callers keep the torch
path, which gives the same values (tested).

>>> import torch
>>> from kanpiler.runtime import MultKAN
>>> model = MultKAN([2, 3, 1], dtype=torch.float64)
>>> x = torch.rand(8, 2, dtype=torch.float64)
>>> out = outputs(model, x)
>>> out is None or bool(torch.allclose(out, model(x)))
True
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import torch

from . import native
from .basis import BSplineBasis, snapshot, unchanged

__all__ = ["Model", "kernel", "applies", "outputs", "forward", "MAX_ORDER"]

MAX_ORDER = 15  # B-spline orders up to this are handled natively

_TEMPLATE = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#define KMAX 16
#define P_PER_LAYER 10
#define OUTSIDE (-(int64_t)1 << 40)
#define INLINE static inline __attribute__((always_inline))

/* Every element e = (n, i) of a layer's input: silu and its derivative, the first column of
   its k + 1 non-zero B-splines (OUTSIDE below the first knot, at or above the last or NaN),
   their values v and derivatives d (from the per-interval power table, Horner's rule). The
   interval is the count of knots <= x less one (searchsorted(right=True) - 1). */
INLINE void basis_pass_S(int64_t E, int64_t n_in, int64_t K, const int64_t k, const T *h,
                         const T *knots, const T *table, const T *inv_h, int64_t *first,
                         T *v, T *d, T *sil, T *dsil) {
    const int64_t size = k + 1;
    int64_t i = 0;
    for (int64_t e = 0; e < E; ++e) {
        const T x = h[e], sig = (T)1 / ((T)1 + exp(-x));
        sil[e] = x * sig;
        dsil[e] = sig * ((T)1 + x * ((T)1 - sig));
        const T *t = knots + i * K;
        int64_t m = -1;
        for (int64_t j = 0; j < K; ++j) m += (t[j] <= x);
        T *ve = v + e * size, *de = d + e * size;
        if (m < 0 || m > K - 2) {
            first[e] = OUTSIDE;
            for (int64_t r = 0; r < size; ++r) { ve[r] = (T)0; de[r] = (T)0; }
        } else {
            const int64_t row = i * (K - 1) + m;
            const T s = inv_h[row], u = (x - t[m]) * s;
            const T *c = table + row * size * size; /* c[p * size + r]: power p, column r */
            for (int64_t r = 0; r < size; ++r) {
                T acc = c[k * size + r], dacc = (T)0;
                for (int64_t p = k - 1; p >= 0; --p) {
                    dacc = dacc * u + acc;
                    acc = acc * u + c[p * size + r];
                }
                ve[r] = acc;
                de[r] = dacc * s;
            }
            first[e] = m - k;
        }
        if (++i == n_in) i = 0;
    }
}

/* edges with a non-zero mask, per input: CSR lists in one allocation */
static int64_t *active_S(const T *mask, int64_t n_in, int64_t n_out, int64_t **start) {
    int64_t *ptr = (int64_t *)malloc(sizeof(int64_t) * (size_t)(n_in + 1 + n_in * n_out));
    if (!ptr) return 0;
    int64_t *list = ptr + n_in + 1, count = 0;
    for (int64_t i = 0; i < n_in; ++i) {
        ptr[i] = count;
        for (int64_t j = 0; j < n_out; ++j)
            if (mask[i * n_out + j] != (T)0) list[count++] = j;
    }
    ptr[n_in] = count;
    *start = ptr;
    return list;
}

INLINE void layer_forward_S(int64_t N, const int64_t k, const int64_t *dim, void **p,
                            const int64_t *first, const T *v, const T *sil, T *o) {
    const int64_t n_in = dim[0], n_out = dim[1], K = dim[2], nb = K - 1 - k, size = k + 1;
    const T *coef = p[3], *sb = p[4], *sp = p[5], *mask = p[6];
    int64_t *start;
    int64_t *list = active_S(mask, n_in, n_out, &start);
    if (!list) return;
    memset(o, 0, sizeof(T) * (size_t)(N * n_out));
    for (int64_t n = 0; n < N; ++n) {
        T *on = o + n * n_out;
        for (int64_t i = 0; i < n_in; ++i) {
            const int64_t e = n * n_in + i, f = first[e];
            const int inside = f != OUTSIDE;
            const int64_t lo = f < 0 ? -f : 0, hi = f + size > nb ? nb - f : size;
            const T *ve = v + e * size, s = sil[e];
            for (int64_t a = start[i]; a < start[i + 1]; ++a) {
                const int64_t j = list[a], ij = i * n_out + j;
                T spl = (T)0;
                if (inside) {
                    const T *c = coef + ij * nb + f;
                    if (lo == 0 && hi == size)
                        for (int64_t r = 0; r < size; ++r) spl += ve[r] * c[r];
                    else
                        for (int64_t r = lo; r < hi; ++r) spl += ve[r] * c[r];
                }
                on[j] += (sb[ij] * s + sp[ij] * spl) * mask[ij];
            }
        }
    }
    free(start);
}

INLINE void layer_backward_S(int64_t N, const int64_t k, const int64_t *dim, void **p,
                             const int64_t *first, const T *v, const T *d, const T *sil,
                             const T *dsil, const T *gy, T *gh) {
    const int64_t n_in = dim[0], n_out = dim[1], K = dim[2], nb = K - 1 - k, size = k + 1;
    const T *coef = p[3], *sb = p[4], *sp = p[5], *mask = p[6];
    T *g_coef = p[7], *g_base = p[8], *g_sp = p[9];
    int64_t *start;
    int64_t *list = active_S(mask, n_in, n_out, &start);
    if (!list) return;
    memset(g_coef, 0, sizeof(T) * (size_t)(n_in * n_out * nb));
    memset(g_base, 0, sizeof(T) * (size_t)(n_in * n_out));
    memset(g_sp, 0, sizeof(T) * (size_t)(n_in * n_out));
    for (int64_t n = 0; n < N; ++n) {
        const T *gn = gy + n * n_out;
        for (int64_t i = 0; i < n_in; ++i) {
            const int64_t e = n * n_in + i, f = first[e];
            const int inside = f != OUTSIDE;
            const int64_t lo = f < 0 ? -f : 0, hi = f + size > nb ? nb - f : size;
            const T *ve = v + e * size, *de = d + e * size, s = sil[e], ds = dsil[e];
            T gx = (T)0;
            for (int64_t a = start[i]; a < start[i + 1]; ++a) {
                const int64_t j = list[a], ij = i * n_out + j;
                const T g = gn[j] * mask[ij];
                g_base[ij] += g * s;
                gx += g * sb[ij] * ds;
                if (inside) {
                    const T *c = coef + ij * nb + f;
                    T *gc = g_coef + ij * nb + f;
                    const T w = g * sp[ij];
                    T spl = (T)0, dspl = (T)0;
                    for (int64_t r = lo; r < hi; ++r) {
                        spl += ve[r] * c[r];
                        dspl += de[r] * c[r];
                        gc[r] += w * ve[r];
                    }
                    g_sp[ij] += g * spl;
                    gx += w * dspl;
                }
            }
            if (gh) gh[e] = gx;
        }
    }
    free(start);
}

/* acts[0] = the inputs, acts[l + 1] = the outputs of layer l (written). With y: the mean
   squared error of every group of no output columns (cols, one group per restart) against
   y (N, no) into loss, and with backward the gradients into every layer's buffers. work
   holds per layer (first, v, d, sil, dsil) of its inputs; ga and gb are (N, widest). */
INLINE void model_body_S(int64_t depth, int64_t N, const int64_t k, const int64_t *dims,
                         void **ptrs, T **acts, void **work, const T *y, const int64_t *cols,
                         int64_t n_groups, int64_t no, double *loss, int backward, T *ga,
                         T *gb, T *gx) {
    for (int64_t l = 0; l < depth && backward != 2; ++l) { /* 2: the forward pass is done */
        const int64_t *dim = dims + 3 * l;
        void **p = ptrs + P_PER_LAYER * l, **w = work + 5 * l;
        basis_pass_S(N * dim[0], dim[0], dim[2], k, acts[l], p[0], p[1], p[2], w[0], w[1],
                     w[2], w[3], w[4]);
        layer_forward_S(N, k, dim, p, w[0], w[1], w[3], acts[l + 1]);
    }
    if (!y) { /* backward from the output gradient the caller put into ga */
        if (!backward) return;
        goto back;
    }
    const int64_t n_last = dims[3 * (depth - 1) + 1];
    const T *out = acts[depth];
    const double scale = 1.0 / (double)(N * no);
    if (backward) memset(ga, 0, sizeof(T) * (size_t)(N * n_last));
    for (int64_t r = 0; r < n_groups; ++r) {
        double total = 0.0;
        for (int64_t o = 0; o < no; ++o) {
            const int64_t col = cols[r * no + o];
            for (int64_t n = 0; n < N; ++n) {
                const T diff = out[n * n_last + col] - y[n * no + o];
                total += (double)diff * (double)diff;
                if (backward) ga[n * n_last + col] = (T)(2.0 * scale) * diff;
            }
        }
        loss[r] = total * scale;
    }
    if (!backward) return;
back:
    for (int64_t l = depth - 1; l >= 0; --l) {
        void **w = work + 5 * l;
        T *gh = l > 0 ? gb : gx;
        layer_backward_S(N, k, dims + 3 * l, ptrs + P_PER_LAYER * l, w[0], w[1], w[2], w[3],
                         w[4], ga, gh);
        T *swap = ga; ga = gb; gb = swap;
    }
}

/* BatchedBFGS (optimizers.py), one problem r of R at a time: new directions where no step
   is pending (t == 0), then the trial points theta + t d. */
void bfgs_directions_S(int64_t R, int64_t P, const T *h, const T *grad, const uint8_t *fresh,
                       T *dir, T *slope, T *t, const T *theta, T *trial) {
    for (int64_t r = 0; r < R; ++r) {
        const T *g = grad + r * P, *hr = h + r * P * P;
        T *d = dir + r * P;
        if (t[r] == (T)0) {
            T sl = (T)0, l1 = (T)0, gg = (T)0;
            for (int64_t a = 0; a < P; ++a) {
                T acc = (T)0;
                for (int64_t b = 0; b < P; ++b) acc += hr[a * P + b] * g[b];
                d[a] = -acc;
                sl += g[a] * d[a];
                l1 += fabs(g[a]);
                gg += g[a] * g[a];
            }
            const int uphill = !(sl < (T)0);
            if (uphill) {
                for (int64_t a = 0; a < P; ++a) d[a] = -g[a];
                sl = -gg;
            }
            T first = (T)1 / (l1 > (T)1e-30 ? l1 : (T)1e-30);
            first = first < (T)1 ? first : (T)1;
            slope[r] = sl;
            t[r] = (fresh[r] || uphill) ? first : (T)1;
        }
        for (int64_t a = 0; a < P; ++a) trial[r * P + a] = theta[r * P + a] + t[r] * d[a];
    }
}

/* The Armijo test of the trials (values f, gradients g), the BFGS update of the inverse
   Hessian estimate where a step was taken, and the next step lengths (backtracking by the
   minimiser of the quadratic through f(0), f'(0), f(t), within [t/10, t/2]). work: 2P. */
void bfgs_accept_S(int64_t R, int64_t P, T c1, int64_t max_backtracks, T *theta,
                   const T *trial, const T *f, const T *g, T *loss, T *grad, T *h,
                   uint8_t *fresh, const T *slope, T *t, int64_t *rejected, T *work) {
    T *sv = work, *hy = work + P;
    for (int64_t r = 0; r < R; ++r) {
        const T *gr = g + r * P, *tr = trial + r * P;
        T *th = theta + r * P, *gd = grad + r * P, *hr = h + r * P * P;
        const T fr = f[r], old = loss[r], tt = t[r], sl = slope[r];
        int finite = isfinite(fr);
        for (int64_t a = 0; a < P; ++a) finite &= isfinite(gr[a]);
        const int ok = finite && fr <= old + c1 * tt * sl;
        const int64_t rej = ok ? 0 : rejected[r] + 1;
        const int give_up = rej >= max_backtracks;
        T sy = (T)0, ss = (T)0, yy = (T)0;
        for (int64_t a = 0; a < P; ++a) {
            sv[a] = tr[a] - th[a];
            const T y = gr[a] - gd[a];
            sy += sv[a] * y;
            ss += sv[a] * sv[a];
            yy += y * y;
        }
        const int use = ok && isfinite(sy) && sy > (T)1e-10 * sqrt(ss) * sqrt(yy);
        if (use) {
            if (fresh[r]) { /* a fresh estimate starts from (s.y / y.y) I */
                const T gamma = sy / (yy > (T)1e-30 ? yy : (T)1e-30);
                for (int64_t a = 0; a < P * P; ++a) hr[a] = (T)0;
                for (int64_t a = 0; a < P; ++a) hr[a * P + a] = gamma;
            }
            T yhy = (T)0;
            for (int64_t a = 0; a < P; ++a) {
                T acc = (T)0;
                for (int64_t b = 0; b < P; ++b) acc += hr[a * P + b] * (gr[b] - gd[b]);
                hy[a] = acc;
                yhy += (gr[a] - gd[a]) * acc;
            }
            const T rho = (T)1 / sy, coef = rho * rho * yhy + rho;
            for (int64_t a = 0; a < P; ++a) {
                const T sa = sv[a], ha = hy[a];
                T *row = hr + a * P;
                for (int64_t b = 0; b < P; ++b)
                    row[b] += sa * (coef * sv[b] - rho * hy[b]) - ha * rho * sv[b];
            }
        } else if (give_up) {
            for (int64_t a = 0; a < P * P; ++a) hr[a] = (T)0;
            for (int64_t a = 0; a < P; ++a) hr[a * P + a] = (T)1;
        }
        fresh[r] = (fresh[r] && !use) || give_up;
        if (ok) {
            loss[r] = fr;
            for (int64_t a = 0; a < P; ++a) { gd[a] = gr[a]; th[a] = tr[a]; }
        }
        T curv = fr - old - sl * tt;
        if (isnan(curv) || curv == (T)INFINITY) curv = (T)0;
        const T quad = curv > (T)0 ? -sl * tt * tt / ((T)2 * (curv > (T)1e-30 ? curv : (T)1e-30))
                                   : (T)0.5 * tt;
        T shorter = quad > (T)0.1 * tt ? quad : (T)0.1 * tt;
        shorter = shorter < (T)0.5 * tt ? shorter : (T)0.5 * tt;
        t[r] = (ok || give_up) ? (T)0 : shorter;
        rejected[r] = give_up ? 0 : rej;
    }
}

void model_S(int64_t depth, int64_t N, int64_t k, const int64_t *dims, void **ptrs, T **acts,
             void **work, const T *y, const int64_t *cols, int64_t n_groups, int64_t no,
             double *loss, int backward, T *ga, T *gb, T *gx) {
    if (k == 3) /* the usual order, with its loops unrolled */
        model_body_S(depth, N, 3, dims, ptrs, acts, work, y, cols, n_groups, no, loss,
                     backward, ga, gb, gx);
    else
        model_body_S(depth, N, k, dims, ptrs, acts, work, y, cols, n_groups, no, loss,
                     backward, ga, gb, gx);
}
"""

_SOURCE = "\n".join(
    _TEMPLATE.replace("_S(", f"_{suffix}(")
    .replace("T ", f"{ctype} ")
    .replace("(T)", f"({ctype})")
    .replace("exp(", exp)
    for suffix, ctype, exp in (("f32", "float", "expf("), ("f64", "double", "exp("))
)

_PTR = ctypes.c_void_p
_PER_LAYER = 10  # pointers per layer, as P_PER_LAYER in the C source
_I64 = ctypes.c_int64
_LOCK = threading.Lock()
_STATE: dict[str, Any] = {}


def kernel() -> dict[tuple[str, torch.dtype], Any] | None:
    """``{(name, dtype): C function}`` (``"model"``, ``"bfgs_directions"``,
    ``"bfgs_accept"``; float32 and float64), built on the first call; ``None`` when no
    compiler is found, the build fails or ``KANPILER_NATIVE=0``."""
    if "kernel" in _STATE:
        return _STATE["kernel"]
    with _LOCK:
        if "kernel" not in _STATE:
            _STATE["kernel"] = _load()
    return _STATE["kernel"]


def reset() -> None:
    """Forget the loaded kernel (the next :func:`kernel` probes and builds again)."""
    with _LOCK:
        _STATE.clear()


def _load() -> dict[tuple[str, torch.dtype], Any] | None:
    handle = native.build(_SOURCE, "kanmodel", ["-fno-math-errno"])
    if handle is None:
        return None
    funcs = {}
    for dtype, suffix, scalar in (
        (torch.float32, "f32", ctypes.c_float), (torch.float64, "f64", ctypes.c_double)
    ):  # fmt: skip
        args = {
            "model": [_I64, _I64, _I64, _PTR, _PTR, _PTR, _PTR, _PTR, _PTR, _I64, _I64, _PTR,
                      ctypes.c_int, _PTR, _PTR, _PTR],
            "bfgs_directions": [_I64, _I64] + [_PTR] * 8,
            "bfgs_accept": [_I64, _I64, scalar, _I64] + [_PTR] * 12,
        }  # fmt: skip
        for name, argtypes in args.items():
            fn = getattr(handle, f"{name}_{suffix}")
            fn.restype = None
            fn.argtypes = argtypes
            funcs[name, dtype] = fn
    return funcs


def applies(model: Any) -> bool:
    """Whether ``model`` is one the kernel computes exactly: sum nodes only, every layer
    B-splines (order <= :data:`MAX_ORDER`) with silu base and a fixed mask, no symbolic edge,
    frozen identity node and subnode affines, float32/float64 on CPU."""
    if model.dtype not in (torch.float32, torch.float64) or model.device.type != "cpu":
        return False
    if any(w[1] for w in model.width) or model.depth == 0:
        return False
    for li in range(model.depth):
        layer, sym = model.layers[li], model.symbolic[li]
        if type(layer.basis) is not BSplineBasis or layer.base_fun_name != "silu":
            return False
        if layer.basis.k > MAX_ORDER or layer.mask.requires_grad or sym.active:
            return False
        if layer.basis.k != model.layers[0].basis.k:
            return False
    for plist, value in ((model.node_scale, 1.0), (model.subnode_scale, 1.0),
                         (model.node_bias, 0.0), (model.subnode_bias, 0.0)):  # fmt: skip
        for p in plist:
            if p.requires_grad or not bool((p == value).all()):
                return False
    return kernel() is not None


def outputs(model: Any, x: torch.Tensor) -> torch.Tensor | None:
    """``model(x)`` (no autograd) by the kernel; ``None`` when it does not apply."""
    if not applies(model):
        return None
    return Model(model).outputs(x)


class Model:
    """The kernel bound to one model (checked with :func:`applies` first). ``grads`` maps a
    parameter to the buffer its gradient goes to (default: its ``.grad`` when that is a
    contiguous tensor of its shape, else scratch)."""

    def __init__(self, model: Any, grads: dict[int, torch.Tensor] | None = None) -> None:
        fns = kernel()
        assert fns is not None
        self.model, self.fn = model, fns["model", model.dtype]
        self.k = model.layers[0].basis.k
        self.grads = grads or {}
        self._work: dict[tuple, list[torch.Tensor]] = {}
        self._cached: tuple | None = None

    def _layer_ptrs(self, li: int) -> tuple[list[int], list[int], list[torch.Tensor]]:
        layer = self.model.layers[li]
        basis = layer.basis
        table, inv_h = basis._table()
        keep = [basis.knots.contiguous(), table.contiguous(), inv_h.contiguous()]
        for p in (layer.coef, layer.scale_base, layer.scale_sp, layer.mask):
            keep.append(p.detach().contiguous())
        for p in (layer.coef, layer.scale_base, layer.scale_sp):
            g = self.grads.get(id(p))
            if g is None:
                g = p.grad
                if g is None or not g.is_contiguous() or g.shape != p.shape or g.dtype != p.dtype:
                    g = self._scratch(("g", li, id(p)), p.shape)
            keep.append(g)
        dims = [layer.in_features, layer.out_features, basis.knots.shape[1]]
        return [t.data_ptr() for t in keep], dims, keep

    def _scratch(
        self, key: tuple, shape: Sequence[int], dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        found = self._work.get(key)
        if found is None or found[0].shape != tuple(shape):
            found = [torch.empty(tuple(shape), dtype=dtype or self.model.dtype)]
            self._work[key] = found
        return found[0]

    def _key(self, n: int) -> list:
        """What the argument arrays depend on: the batch size, each layer's knots (object and
        version: a grid update replaces them) and the parameter and gradient tensors."""
        key: list = [n]
        for layer in self.model.layers:
            knots = layer.basis.knots
            key += [knots, knots._version]
            for p in (layer.coef, layer.scale_base, layer.scale_sp, layer.mask):
                key += [p, p.data_ptr(), p.grad]
        return key

    def _frame(self, n: int) -> tuple:
        """The argument arrays of the kernel for batch size ``n`` (rebuilt when the key
        changes) and the activation buffers."""
        key = self._key(n)
        old = self._cached
        if (
            old is not None
            and len(old[0]) == len(key)
            and all(a is b or (type(a) is int and a == b) for a, b in zip(old[0], key))
        ):
            return old[1]
        model = self.model
        ptrs: list[int] = []
        dims: list[int] = []
        keep: list[torch.Tensor] = []
        for li in range(model.depth):
            p, d, kept = self._layer_ptrs(li)
            ptrs += p
            dims += d
            keep += kept
        widths = [layer.out_features for layer in model.layers]
        acts = [self._scratch(("act", li), (n, w)) for li, w in enumerate(widths)]
        ints, floats = self.work_buffers(n, fresh=False)
        work = self._work_ptrs(n, ints, floats)
        wide = max([model.layers[0].in_features, *widths])
        grads = [self._scratch((name,), (n, wide)).data_ptr() for name in ("ga", "gb")]
        frame = (
            (_I64 * len(dims))(*dims), (_PTR * len(ptrs))(*ptrs), work, acts, [a.data_ptr() for a in acts], grads, keep,
        )  # fmt: skip
        self._cached = (key, frame)
        return frame

    def work_buffers(self, n: int, fresh: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """What the forward pass leaves for the backward pass at batch size ``n``: interval
        starts (int64) and basis values, derivatives, silu and silu' of every layer's
        inputs; new tensors, or (``fresh`` False) the model's scratch."""
        count = sum(n * layer.in_features for layer in self.model.layers)
        shapes = ((count,), (count * (2 * self.k + 4),))
        if fresh:
            return torch.empty(shapes[0], dtype=torch.int64), torch.empty(
                shapes[1], dtype=self.model.dtype
            )
        return self._scratch(("ints",), shapes[0], torch.int64), self._scratch(
            ("floats",), shapes[1]
        )

    def _work_ptrs(self, n: int, ints: torch.Tensor, floats: torch.Tensor) -> Any:
        size, item = self.k + 1, floats.element_size()
        at_int, at_float = ints.data_ptr(), floats.data_ptr()
        ptrs: list[int] = []
        for layer in self.model.layers:
            e = n * layer.in_features
            ptrs.append(at_int)
            at_int += 8 * e
            for length in (e * size, e * size, e, e):
                ptrs.append(at_float)
                at_float += item * length
        return (_PTR * len(ptrs))(*ptrs)

    def run(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        cols: torch.Tensor | None = None,
        backward: bool = False,
        grad_out: torch.Tensor | None = None,
        grads: Sequence[torch.Tensor] | None = None,
        grad_x: torch.Tensor | None = None,
        work: tuple[torch.Tensor, torch.Tensor] | None = None,
        done: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Outputs ``(N, n_out)`` (a buffer reused by the next call) and, with ``y (N, no)``
        and ``cols (G, no)`` (the output columns of each group), the ``(G,)`` mean squared
        errors (float64); with ``backward`` the gradients are written into the parameters'
        gradient buffers. Without ``y``, ``grad_out (N, n_out)`` is the gradient of the
        outputs to go back from, ``grads`` (``coef``, ``scale_base``, ``scale_sp`` of every
        layer) receive the parameters' gradients and ``grad_x`` (if given) that of ``x``.
        ``work`` (from :meth:`work_buffers`) keeps the forward pass's results for a later
        call with ``done`` (only the backward pass then)."""
        x = x.detach().contiguous()
        n = x.shape[0]
        dims, ptrs, work_ptrs, acts, act_ptrs, (ga, gb), _ = self._frame(n)
        if work is not None:
            work_ptrs = self._work_ptrs(n, *work)
        if grad_out is not None:
            backward = True
            scratch = self._work[("ga",)][0]
            scratch.view(-1)[: grad_out.numel()].view(grad_out.shape).copy_(grad_out)
        mode = int(backward and (y is not None or grad_out is not None))
        if done:
            assert grad_out is not None and work is not None
            mode = 2
        if grads is not None:
            ptrs = (_PTR * len(ptrs))(*ptrs)
            for li in range(self.model.depth):
                for j in range(3):
                    ptrs[_PER_LAYER * li + 7 + j] = grads[3 * li + j].data_ptr()
        loss = None
        y_ptr = cols_ptr = loss_ptr = None
        groups = width = 0
        if y is not None:
            assert cols is not None
            y = y.detach().contiguous()
            cols = cols.contiguous()
            groups, width = cols.shape
            loss = torch.empty(groups, dtype=torch.float64)
            y_ptr, cols_ptr, loss_ptr = y.data_ptr(), cols.data_ptr(), loss.data_ptr()
        self.fn(
            self.model.depth, n, self.k, dims, ptrs,
            (_PTR * (len(acts) + 1))(x.data_ptr(), *act_ptrs), work_ptrs, y_ptr, cols_ptr,
            groups, width, loss_ptr, mode, ga, gb,
            None if grad_x is None else grad_x.data_ptr(),
        )  # fmt: skip
        return acts[-1], loss

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """``model(x)`` without autograd (a fresh tensor)."""
        return self.run(x)[0].clone()


_BOUND: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _state(model: Any) -> list[torch.Tensor]:
    """The tensors whose content decides whether the kernel applies to ``model``."""
    out = [*model.node_scale, *model.node_bias, *model.subnode_scale, *model.subnode_bias]
    for layer, sym in zip(model.layers, model.symbolic):
        out += [layer.mask, sym.mask]
    return out


def bound(model: Any) -> Model | None:
    """The kernel bound to ``model`` if it applies (checked again only when the model's
    masks, affines or layers change), else ``None``."""
    tensors = _state(model)
    layers = [(layer, layer.basis, layer.base_fun_name) for layer in model.layers]
    found = _BOUND.get(model)
    if found is not None:
        key, kern = found
        same = len(key[1]) == len(layers) and all(
            a is b and c is d and e == f for (a, c, e), (b, d, f) in zip(key[1], layers)
        )
        if same and unchanged(key[0], *tensors) and key[2] == model.dtype:
            return kern
    kern = Model(model) if applies(model) else None
    _BOUND[model] = ((snapshot(*tensors), layers, model.dtype), kern)
    return kern


def _params(model: Any) -> list[torch.Tensor]:
    return [p for layer in model.layers for p in (layer.coef, layer.scale_base, layer.scale_sp)]


def forward(model: Any, x: torch.Tensor) -> torch.Tensor | None:
    """``model(x)`` by the kernel, differentiable (first derivatives by the kernel, higher
    ones through the layers' own path); ``None`` where it does not apply."""
    if torch._C._are_functorch_transforms_active() or x.device.type != "cpu":
        return None
    if x.dtype != model.dtype or x.dim() != 2 or x.shape[1] != model.n_inputs:
        return None
    kern = bound(model)
    if kern is None:
        return None
    params = _params(model)
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
        out: torch.Tensor = _WholeModel.apply(x, kern, *params)
        return out
    return kern.run(x)[0].clone()


class _WholeModel(torch.autograd.Function):
    """The model's output with the kernel's backward (from the basis values the forward pass
    kept). Double backward differentiates the layers' own path."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, kern: Model, *params: torch.Tensor) -> torch.Tensor:
        ctx.kern = kern
        ctx.work = kern.work_buffers(x.shape[0])
        ctx.save_for_backward(x, *params)
        return kern.run(x, work=ctx.work)[0].clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        x, *params = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if torch.is_grad_enabled():  # a graph of the gradient is asked for
            inputs = [x, *params]
            wanted = [t for t, need in zip(inputs, (needs[0], *needs[2:])) if need]
            with torch.enable_grad():
                out = ctx.kern.model.run(x)[0]
                found = iter(torch.autograd.grad(out, wanted, grad, create_graph=True))
            got = [next(found) if need else None for need in (needs[0], *needs[2:])]
            return (got[0], None, *got[1:])
        gx = torch.empty_like(x) if needs[0] else None
        grads = [torch.empty_like(p) for p in params]
        ctx.kern.run(
            x, grad_out=grad.contiguous(), grads=grads, grad_x=gx, work=ctx.work, done=True
        )  # ctx.work is kept: a graph retained (retain_graph=True) may be gone back through again
        return (gx, None, *(g if need else None for g, need in zip(grads, needs[2:])))
