"""The GRU cell's scalar maths, written once for both backends.

Gate order and weight layout are PyTorch's (rows r, z, n of ``w_ih``/``w_hh``)::

    r  = σ(W_ir x + b_ir + W_hr h + b_hr)                      gate(x_r, rec_r, b_hr)
    z  = σ(W_iz x + b_iz + W_hz h + b_hz)                      gate(x_z, rec_z, b_hz)
    n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))             new_gate_after   (reset_after=True)
    n  = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)             new_gate_before  (reset_after=False)
    h' = n + z ⊙ (h − n)    (= (1 − z) ⊙ n + z ⊙ h)            blend

Every function here is plain Python on scalars: ``build(jit, target)`` compiles
them all with one decorator, ``njit`` for ``kernels/cpu.py`` and
``cuda.jit(device=True)`` for ``kernels/cuda.py``, each compiled function
calling the others' compiled forms. Under the CUDA simulator the kernels call
these Python functions as they are. So one set of formulas, with one order of
operations, runs everywhere.

A libm call per element (tanh, exp) cannot be vectorised on the CPU and would
cost as much as the recurrent GEMM (BASELINES.md), so both dtypes get plain
arithmetic that LLVM vectorises. float32: a rational approximation (Eigen's
fast tanh: within 6 ulp). float64: Cephes' exp and tanh (range reduction and
rational approximations, 1 ulp against libm's tanh over [-40, 40] in
tests/test_kernels.py). ``tanh`` and ``sigmoid`` choose by the argument's type,
at compile time when compiled: one compiled kernel serves both dtypes.
"""
import math
import sys
from types import FunctionType, ModuleType

import numpy as np

# ------------------------------------------------------------- float32

_TANH32_CLAMP = np.float32(7.90531110763549805)
_TANH32_P = tuple(np.float32(v) for v in (
    -2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
    1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03))
_TANH32_Q = tuple(np.float32(v) for v in (
    1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03))


def tanh32(a):
    """Eigen's rational float32 tanh (within 6 ulp: tests/test_kernels.py).

    Past ±clamp tanh is ±1 to float32 precision. Written as selects that
    NaN fails, so NaN propagates (no silent clamping).
    """
    p13, p11, p9, p7, p5, p3, p1 = _TANH32_P
    q6, q4, q2, q0 = _TANH32_Q
    x = _TANH32_CLAMP if a > _TANH32_CLAMP else a
    x = -_TANH32_CLAMP if x < -_TANH32_CLAMP else x
    x2 = x * x
    p = ((((((p13 * x2 + p11) * x2 + p9) * x2 + p7) * x2 + p5) * x2 + p3) * x2 + p1) * x
    q = ((q6 * x2 + q4) * x2 + q2) * x2 + q0
    t = p / q
    t = np.float32(1) if a >= _TANH32_CLAMP else t
    return np.float32(-1) if a <= -_TANH32_CLAMP else t


def sigmoid32(a):
    """σ(a) = (1 + tanh(a/2)) / 2: vectorisable, saturating at exactly 0 and 1.

    Within 4 ulp where σ >= 1/4; below, the sum cancels and the error is
    tanh's absolute one (3 ulp of 1/2 at most), not relative to σ.
    """
    half = np.float32(0.5)
    return half + half * tanh32(half * a)


# ------------------------------------------------------------- float64

def float64_bits(x):
    """The int64 holding the bits of float64 x (compiled: an LLVM bitcast, which vectorises)."""
    return np.float64(x).view(np.int64)


def float64_from_bits(bits):
    """The float64 whose bits are the int64 ``bits``."""
    return np.int64(bits).view(np.float64)


# NumPy's floor and copysign: LLVM vectorises them on the CPU. The CUDA target
# has no NumPy ufuncs in device code; ``build`` gives it math's (same results).
floor = np.floor
copysign = np.copysign

_EXP64_P = (1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1)
_EXP64_Q = (3.00198505138664455042e-6, 2.52448340349684104192e-3, 2.27265548208155028766e-1,
            2.00000000000000000009e0)
_LN2_HI, _LN2_LO = 6.93145751953125e-1, 1.42860682030941723212e-6     # ln 2 = hi + lo, k * hi exact
_LOG2_E = 1.4426950408889634073599
_EXP64_MAX = 709.782712893383996843           # exp overflows above
_EXP64_MIN_NORMAL = -708.3964185322641        # log of the smallest normal float64


def exp64(x):
    """exp(x) in float64: Cephes' exp, e^x = 2^k e^r with |r| <= ln2 / 2 (about 1 ulp).

    Results below the smallest normal number are 0: ``sigmoid64`` and
    ``tanh64`` only add them to 1, where they vanish anyway. NaN propagates.
    The order of operations matters (exact k * _LN2_HI): compiled without
    fast-math reassociation (config.FASTMATH).
    """
    p2, p1, p0 = _EXP64_P
    q3, q2, q1, q0 = _EXP64_Q
    y = _LOG2_E * x + 0.5
    y = y if y < 1025.0 else 1025.0             # keeps NaN and ±inf out of the integer conversion
    y = y if y > -1025.0 else -1025.0
    k = floor(y)
    r = x - k * _LN2_HI
    r = r - k * _LN2_LO
    rr = r * r
    p = r * ((p2 * rr + p1) * rr + p0)
    q = ((q3 * rr + q2) * rr + q1) * rr + q0
    e = 1.0 + 2.0 * (p / (q - p))
    e = float64_from_bits(float64_bits(e) + (np.int64(k) << 52))     # e * 2^k
    e = np.inf if x > _EXP64_MAX else e
    e = 0.0 if x < _EXP64_MIN_NORMAL else e
    return x if x != x else e


_TANH64_P = (-9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3)
_TANH64_Q = (1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3)


def tanh64(x):
    """tanh(x) in float64: Cephes' tanh, a rational function below 0.625, 1 − 2 / (e^2|x| + 1) above.

    Both are computed for |x| and given x's sign (-0.0 and NaN included) by
    one copysign: a select on the sign instead kept LLVM from vectorising
    the loops that call this (10.7 against 1.6 ns an element).
    """
    p2, p1, p0 = _TANH64_P
    q2, q1, q0 = _TANH64_Q
    a = abs(x)
    large = 1.0 - 2.0 / (exp64(2.0 * a) + 1.0)
    s = a * a
    small = a + a * s * (((p2 * s + p1) * s + p0) / (((s + q2) * s + q1) * s + q0))
    return copysign(large if a >= 0.625 else small, x)


def sigmoid64(a):
    """1 / (1 + e^-a): e^-a -> inf for a -> -inf gives exactly 0, never NaN."""
    return 1.0 / (1.0 + exp64(-a))


# ------------------------------------------------- by type (see build)

def tanh(a):
    return tanh32(a) if isinstance(a, np.float32) else tanh64(a)


def sigmoid(a):
    return sigmoid32(a) if isinstance(a, np.float32) else sigmoid64(a)


# ------------------------------------------------------------- the cell

def time_of(step, length, reverse):
    """The time a sequence of ``length`` is at in step ``step``: the step itself, or counted from its end."""
    return length - 1 - step if reverse else step


def gate(x_part, rec_part, b_h):
    """r or z: σ(W_i x + b_i + W_h h + b_h), with x_part = W_i x + b_i and rec_part = W_h h."""
    return sigmoid(x_part + rec_part + b_h)


def new_gate_after(x_n, rec_n, b_hn, r):
    """reset_after: (aux, n) with aux = W_hn h + b_hn (saved for the backward), n = tanh(x_n + r ⊙ aux)."""
    aux = rec_n + b_hn
    return aux, tanh(x_n + r * aux)


def reset_state(r, h):
    """reset_after=False: r ⊙ h, the vector W_hn multiplies (saved as aux for the backward)."""
    return r * h


def new_gate_before(x_n, rec_rh, b_hn):
    """reset_after=False: n = tanh(x_n + W_hn (r ⊙ h) + b_hn), with rec_rh = W_hn (r ⊙ h)."""
    return tanh(x_n + rec_rh + b_hn)


def blend(n, z, h):
    """h' = n + z ⊙ (h − n)."""
    return n + z * (h - n)


def gate_grads(grad_h, h, r, z, n, aux, reset_after, one):
    """One unit's gradients at one step from grad_h = dL/dh'; h is the state before the step, aux its aux.

    Returns (dr_pre, dz_pre, dn_pre, d_n, dh_direct): the pre-activation
    gradients (dr_pre is 0 when not reset_after: it waits for W_hn's
    product, see ``reset_grad``), the gradient of W_hn's product's output
    (dn_pre ⊙ r when reset_after, dn_pre otherwise) and the part of dL/dh
    that bypasses W_hh.
    """
    dn_pre = grad_h * (one - z) * (one - n * n)
    dz_pre = grad_h * (h - n) * z * (one - z)
    dh_direct = grad_h * z
    if reset_after:
        return dn_pre * aux * r * (one - r), dz_pre, dn_pre, dn_pre * r, dh_direct
    return one - one, dz_pre, dn_pre, dn_pre, dh_direct


def reset_grad(d_rh, h, r, one):
    """reset_after=False: dr_pre = dL/d(r ⊙ h) ⊙ h ⊙ r ⊙ (1 − r)."""
    return d_rh * h * r * (one - r)


# ------------------------------------------------------------- builds

# Compiled one by one, in this order, by ``build``.
_SCALAR_FUNCTIONS = ("tanh32", "sigmoid32", "exp64", "tanh64", "sigmoid64", "time_of", "gate",
                     "new_gate_after", "reset_state", "new_gate_before", "blend", "gate_grads", "reset_grad")
_BY_TYPE = {"tanh": ("tanh32", "tanh64"), "sigmoid": ("sigmoid32", "sigmoid64")}


def build(jit=None, target="cpu", jit_options=None):
    """Every function of the cell compiled with ``jit``: a module of the compiled functions.

    jit: a decorator (``njit(**options)``, ``cuda.jit(device=True)``), or
    None for this module's plain Python (what the CUDA simulator runs).
    target: the Numba target ("cpu" or "cuda") on which ``tanh`` and
    ``sigmoid`` choose their dtype's function by type, at compile time;
    jit_options: the options of that choice (``NJIT_OPTIONS`` on the CPU).
    Each compiled function looks up the others in a namespace of its own
    (a copy of this module's globals holding the compiled forms), so this
    module is left as plain Python (and is what ``jit=None`` returns).
    """
    if jit is None:
        return sys.modules[__name__]
    from numba import types
    from numba.core.extending import overload

    namespace = dict(globals())
    namespace["float64_bits"], namespace["float64_from_bits"] = _bitcasts()
    if target == "cuda":
        namespace["floor"], namespace["copysign"] = math.floor, math.copysign
    for name in _SCALAR_FUNCTIONS:
        fn = globals()[name]
        copy = FunctionType(fn.__code__, namespace, name, fn.__defaults__)
        copy.__doc__, copy.__qualname__ = fn.__doc__, fn.__qualname__
        namespace[name] = jit(copy)
    for name, (name32, name64) in _BY_TYPE.items():
        namespace[name] = _by_type(name, namespace[name32], namespace[name64], target, jit_options, overload,
                                   types.float32)
    # A module, not any namespace: compiled code resolves ``cell.gate`` on a module global.
    compiled = ModuleType(f"{__name__}[{target}]", __doc__)
    for name in _SCALAR_FUNCTIONS + tuple(_BY_TYPE):
        setattr(compiled, name, namespace[name])
    return compiled


def _by_type(name, fn32, fn64, target, jit_options, overload, float32):
    """A function that calls ``fn32`` on a float32 and ``fn64`` otherwise: chosen at compile time on ``target``."""
    def by_type(a):
        return fn32(a) if isinstance(a, np.float32) else fn64(a)

    def choose(a):
        chosen = fn32 if a == float32 else fn64
        return lambda a: chosen(a)

    by_type.__name__ = by_type.__qualname__ = name
    overload(by_type, target=target, jit_options=jit_options or {})(choose)
    return by_type


_BITCASTS = None


def _bitcasts():
    """float64 <-> int64 bit casts as Numba intrinsics (one LLVM bitcast each, on every target)."""
    global _BITCASTS
    if _BITCASTS is None:
        from llvmlite import ir
        from numba import types
        from numba.core.extending import intrinsic

        @intrinsic
        def bits(typingctx, x):
            return types.int64(types.float64), lambda context, builder, sig, args: \
                builder.bitcast(args[0], ir.IntType(64))

        @intrinsic
        def from_bits(typingctx, b):
            return types.float64(types.int64), lambda context, builder, sig, args: \
                builder.bitcast(args[0], ir.DoubleType())

        _BITCASTS = (bits, from_bits)
    return _BITCASTS
