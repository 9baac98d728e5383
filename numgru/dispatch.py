"""Device choice, core ownership, and the functional form of one layer-direction.

``gru_forward``/``gru_backward`` validate their arguments and call ``forward_layer``/
``backward_layer``, which the layer classes call directly with arguments they
have already validated, so nothing is checked twice.
"""
import contextlib

import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  the BLAS behind Numba's np.dot; loaded so threadpoolctl sees it
from threadpoolctl import ThreadpoolController

from . import validation
from .kernels import cpu

DEVICES = ("cpu", "cuda", "auto")


def resolve_device(device):
    """'cpu', 'cuda' or 'auto' -> the device that will run the kernels."""
    if not isinstance(device, str):
        raise TypeError(f"device must be one of {DEVICES}, got {device!r}")
    name = device.lower()
    if name not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if name == "cuda":
        raise RuntimeError("device='cuda' is not available: numgru's CUDA backend is not built yet; "
                           "use device='cpu' (or 'auto', which picks the CPU on this machine)")
    return "cpu"


_blas_threads = None


@contextlib.contextmanager
def cpu_threads():
    """Give the cores to Numba's threads: BLAS runs single-threaded inside each of them.

    Yields the number of Numba threads, which is also the number of blocks
    every kernel splits its work into (so results are bit-stable for a fixed
    ``numba.set_num_threads``).
    """
    global _blas_threads
    if _blas_threads is None:
        _blas_threads = ThreadpoolController().select(user_api="blas")
    with _blas_threads.limit(limits=1):
        yield numba.get_num_threads()


class LayerCache:
    """What one layer-direction's forward keeps for its backward."""

    __slots__ = ("device", "has_bias", "shape", "kernel")

    def __init__(self, device, has_bias, shape, kernel):
        self.device = device
        self.has_bias = has_bias
        self.shape = shape          # (T, B, H) of the output
        self.kernel = kernel


def forward_layer(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, *, reverse=False, reset_after=True,
                  training=True, device="cpu"):
    """One layer-direction on validated arrays: x (T, B, I), h0 (B, H) or None, lengths int64 (B,)."""
    T, B, _ = x.shape
    H = w_hh.shape[1]
    dtype = w_hh.dtype
    has_bias = b_ih is not None
    zeros = np.zeros(3 * H, dtype)
    with cpu_threads() as nthreads:
        out, hn, kernel_cache = cpu.forward(
            np.ascontiguousarray(x), np.ascontiguousarray(w_ih), np.ascontiguousarray(w_hh),
            np.ascontiguousarray(b_ih) if has_bias else zeros,
            np.ascontiguousarray(b_hh) if has_bias else zeros,
            np.zeros((B, H), dtype) if h0 is None else h0,
            lengths, reverse, reset_after, training, nthreads)
    cache = LayerCache(device, has_bias, (T, B, H), kernel_cache) if training else None
    return out, hn, cache


def backward_layer(cache, dout, dhn):
    """Gradients of one layer-direction; dout (T, B, H) and dhn (B, H) validated, either may be None."""
    T, B, H = cache.shape
    dtype = cache.kernel["x"].dtype
    dout = np.zeros((T, B, H), dtype) if dout is None else np.ascontiguousarray(dout)
    dhn = np.zeros((B, H), dtype) if dhn is None else dhn
    with cpu_threads() as nthreads:
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = cpu.backward(cache.kernel, dout, dhn, nthreads)
    if not cache.has_bias:
        db_ih = db_hh = None
    return dx, dh0, (dw_ih, dw_hh, db_ih, db_hh)


def gru_forward(x, weights, h0=None, *, lengths=None, reset_after=True, training=False,
                reverse=False, device="auto", check_finite=False):
    """Run one GRU layer in one direction over a whole sequence.

    x: (T, B, I). weights: (w_ih (3H, I), w_hh (3H, H), b_ih (3H,) or None,
    b_hh (3H,) or None) in PyTorch's gate order (r, z, n); their dtype is the
    compute dtype. h0: (B, H) or None (zeros). lengths: (B,) integers in
    [1, T], any order. reverse: run from each sequence's last step to its
    first. training: keep the cache ``gru_backward`` needs (otherwise the cache
    is None and the forward saves nothing per step).

    Returns (out (T, B, H), hn (B, H), cache).
    """
    device = resolve_device(device)
    w_ih, w_hh, b_ih, b_hh = _check_weights(weights)
    dtype = w_hh.dtype
    H = w_hh.shape[1]
    x = validation.as_float_array("x", x, dtype, check_finite)
    if x.ndim != 3 or x.shape[2] != w_ih.shape[1]:
        raise ValueError(f"x must have shape (T, B, {w_ih.shape[1]}) to match w_ih {w_ih.shape}, got {x.shape}")
    T, B, _ = x.shape
    if T == 0 or B == 0:
        raise ValueError(f"x must have at least one time step and one sequence, got shape {x.shape}")
    if h0 is not None:
        h0 = validation.check_state("h0", h0, (B, H), dtype, check_finite)
    lengths = validation.check_lengths(lengths, B, T)
    return forward_layer(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, reverse=bool(reverse),
                         reset_after=bool(reset_after), training=bool(training), device=device)


def gru_backward(cache, dout, dhn=None):
    """Backpropagate through the forward that returned ``cache``.

    dout: (T, B, H) gradient of the loss with respect to ``out`` (None: zero);
    dhn: (B, H) with respect to ``hn`` (None: zero). Returns
    (dx (T, B, I), dh0 (B, H), (dw_ih, dw_hh, db_ih, db_hh)); the bias
    gradients are None when the forward had no biases.
    """
    if cache is None:
        raise RuntimeError("gru_backward needs the cache of a forward run with training=True; "
                           "this forward kept none")
    if not isinstance(cache, LayerCache):
        raise TypeError(f"cache must be the third value returned by gru_forward, got {type(cache).__name__}")
    T, B, H = cache.shape
    dtype = cache.kernel["x"].dtype
    if dout is not None:
        dout = validation.check_grad_output("dout", dout, (T, B, H), dtype)
    if dhn is not None:
        dhn = validation.check_grad_output("dhn", dhn, (B, H), dtype)
    return backward_layer(cache, dout, dhn)


def _check_weights(weights):
    if not isinstance(weights, (tuple, list)) or len(weights) != 4:
        raise TypeError("weights must be a tuple (w_ih, w_hh, b_ih, b_hh); biases may be None")
    w_hh = validation._to_numpy("weights[1] (w_hh)", weights[1])
    dtype = validation.check_dtype(w_hh.dtype) if w_hh.dtype.kind == "f" else None
    if dtype is None:
        raise TypeError(f"weights[1] (w_hh) must be float32 or float64, got dtype {w_hh.dtype.name}")
    if w_hh.ndim != 2 or w_hh.shape[0] != 3 * w_hh.shape[1]:
        raise ValueError(f"weights[1] (w_hh) must have shape (3*hidden_size, hidden_size), got {w_hh.shape}")
    H = w_hh.shape[1]
    w_ih = validation.as_float_array("weights[0] (w_ih)", weights[0], dtype)
    if w_ih.ndim != 2 or w_ih.shape[0] != 3 * H:
        raise ValueError(f"weights[0] (w_ih) must have shape ({3 * H}, input_size), got {w_ih.shape}")
    b_ih, b_hh = weights[2], weights[3]
    if (b_ih is None) != (b_hh is None):
        raise ValueError("weights: b_ih and b_hh must both be arrays or both be None")
    if b_ih is not None:
        b_ih = validation.as_float_array("weights[2] (b_ih)", b_ih, dtype)
        b_hh = validation.as_float_array("weights[3] (b_hh)", b_hh, dtype)
        for name, b in (("weights[2] (b_ih)", b_ih), ("weights[3] (b_hh)", b_hh)):
            if b.shape != (3 * H,):
                raise ValueError(f"{name} must have shape ({3 * H},), got {b.shape}")
    return w_ih, validation.as_float_array("weights[1] (w_hh)", w_hh, dtype), b_ih, b_hh
