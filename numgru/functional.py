"""The functional form of one GRU layer in one direction, and the layer calls the classes make.

``gru_forward``/``gru_backward`` validate their arguments (through the same
``devices`` input functions as ``GRU`` and ``GRUCell``) and call
``forward_layer``/``backward_layer``, which the layer classes call directly
with arguments they have already validated, so nothing is checked twice.
"""
import numpy as np

from . import validation
from .devices import (array_ops, cuda_kernels, cuda_strategy, is_cuda_array, lengths_to_host, resolve_device,
                      grad_input, sequence_input, state_input, to_user, _host_only)
from .kernels import cpu
from .threads import cpu_threads, one_blas_thread


class LayerCache:
    """What one layer-direction's forward keeps for its backward."""

    __slots__ = ("device", "has_bias", "shape", "kernel", "host_io")

    def __init__(self, device, has_bias, shape, kernel, host_io=True):
        self.device = device
        self.has_bias = has_bias
        self.shape = shape          # (T, B, H) of the output
        self.kernel = kernel
        self.host_io = host_io      # the functional forward got NumPy (so its backward returns NumPy)


def forward_layer(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, *, reverse=False, reset_after=True,
                  training=True, device="cpu"):
    """One layer-direction on validated arrays: x (T, B, I), h0 (B, H) or None, lengths int64 (B,).

    On "cuda" the arrays may be host or device arrays; the results are device arrays.
    """
    T, B, _ = x.shape
    H = w_hh.shape[1]
    dtype = np.dtype(w_hh.dtype)
    has_bias = b_ih is not None
    if device == "cuda":
        ck = cuda_kernels()
        b_ih, b_hh = ((ck.asarray(b_ih, dtype), ck.asarray(b_hh, dtype)) if has_bias
                      else (ck.zeros(3 * H, dtype), ck.zeros(3 * H, dtype)))
        out, hn, kernel_cache = ck.forward(
            ck.asarray(x, dtype), ck.asarray(w_ih, dtype), ck.asarray(w_hh, dtype), b_ih, b_hh,
            ck.zeros((B, H), dtype) if h0 is None else ck.asarray(h0, dtype),
            ck.asarray(lengths, np.int64), reverse, reset_after, training, cuda_strategy())
        cache = LayerCache(device, has_bias, (T, B, H), kernel_cache) if training else None
        return out, hn, cache
    zeros = np.zeros(3 * H, dtype)
    with cpu_threads(B, H, lengths.mean(), dtype.itemsize) as (nthreads, by_batch):
        out, hn, kernel_cache = cpu.forward(
            np.ascontiguousarray(x), np.ascontiguousarray(w_ih), np.ascontiguousarray(w_hh),
            np.ascontiguousarray(b_ih) if has_bias else zeros,
            np.ascontiguousarray(b_hh) if has_bias else zeros,
            np.zeros((B, H), dtype) if h0 is None else h0,
            lengths, reverse, reset_after, training, nthreads, by_batch)
    cache = LayerCache(device, has_bias, (T, B, H), kernel_cache) if training else None
    return out, hn, cache


def stream_layer(x, w_ih, w_hh, b_ih, b_hh, h, lengths, reset_after):
    """One layer of a stream, on the CPU: x (T, B, I) and h (B, H) validated and C-contiguous,
    biases arrays (zeros for none), lengths int64 in [0, T]. Updates h; returns out.
    """
    B, H = h.shape
    with cpu_threads(B, H, 1, h.dtype.itemsize) as (nthreads, by_batch):
        return cpu.stream(x, w_ih, w_hh, b_ih, b_hh, h, lengths, reset_after, nthreads, by_batch)


def backward_layer(cache, dout, dhn, into=None):
    """Gradients of one layer-direction; dout (T, B, H) and dhn (B, H) validated, either may be None.

    into: None, or the (weight_ih, weight_hh) gradient arrays to add the weight gradients into
    (on the CPU that saves a weight-sized temporary; elsewhere they are added here); the
    returned weight gradients are then None.
    """
    T, B, H = cache.shape
    dtype = cache.kernel["x"].dtype
    if cache.device == "cuda":
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = cuda_kernels().backward(cache.kernel, dout, dhn, cuda_strategy())
    else:
        dout = np.zeros((T, B, H), dtype) if dout is None else np.ascontiguousarray(dout)
        dhn = np.zeros((B, H), dtype) if dhn is None else dhn
        with one_blas_thread():     # the forward's split: the cache is packed for its blocks
            dx, dh0, dw_ih, dw_hh, db_ih, db_hh = cpu.backward(cache.kernel, dout, dhn, into)
    if into is not None and dw_ih is not None:
        ops = array_ops(cache.device)
        ops.add_(into[0], dw_ih)
        ops.add_(into[1], dw_hh)
        dw_ih = dw_hh = None
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
    is None and the forward saves nothing per step). device: "cpu", "cuda" or
    "auto" ("auto" with a CUDA array ``x`` means "cuda"). NumPy inputs give
    NumPy results; CUDA arrays give device arrays.

    Returns (out (T, B, H), hn (B, H), cache).
    """
    if isinstance(device, str) and device.lower() == "auto" and is_cuda_array(x):
        device = "cuda"
    device = resolve_device(device)
    w_ih, w_hh, b_ih, b_hh = _check_weights(weights, device)
    dtype = np.dtype(w_hh.dtype)
    H = w_hh.shape[1]
    host_io = not is_cuda_array(x)
    x, batched = sequence_input(x, w_ih.shape[1], False, dtype, check_finite, device)     # the layers' rules
    T, B, _ = x.shape
    if not batched:
        raise ValueError(f"x must have shape (T, B, {w_ih.shape[1]}) to match w_ih {tuple(w_ih.shape)}, "
                         f"got {(T, w_ih.shape[1])}")
    h0 = state_input("h0", h0, (B, H), dtype, check_finite, device)
    lengths = validation.check_lengths(lengths_to_host(lengths), B, T)
    out, hn, cache = forward_layer(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, reverse=bool(reverse),
                                   reset_after=bool(reset_after), training=bool(training), device=device)
    if cache is not None:
        cache.host_io = host_io
    return to_user(out, host_io), to_user(hn, host_io), cache


def gru_backward(cache, dout, dhn=None):
    """Backpropagate through the forward that returned ``cache``.

    dout: (T, B, H) gradient of the loss with respect to ``out`` (None: zero);
    dhn: (B, H) with respect to ``hn`` (None: zero). Returns
    (dx (T, B, I), dh0 (B, H), (dw_ih, dw_hh, db_ih, db_hh)); the bias
    gradients are None when the forward had no biases. On "cuda" they are
    NumPy arrays when ``dout`` is one (or, with no ``dout``, when the forward's
    ``x`` was), device arrays otherwise.
    """
    if cache is None:
        raise RuntimeError("gru_backward needs the cache of a forward run with training=True; "
                           "this forward kept none")
    if not isinstance(cache, LayerCache):
        raise TypeError(f"cache must be the third value returned by gru_forward, got {type(cache).__name__}")
    T, B, H = cache.shape
    dtype = np.dtype(cache.kernel["x"].dtype)
    host_io = cache.host_io if dout is None else not is_cuda_array(dout)
    if dout is not None:
        dout = grad_input("dout", dout, (T, B, H), dtype, cache.device)
    if dhn is not None:
        dhn = grad_input("dhn", dhn, (B, H), dtype, cache.device)
    dx, dh0, dweights = backward_layer(cache, dout, dhn)
    return to_user(dx, host_io), to_user(dh0, host_io), tuple(to_user(g, host_io) for g in dweights)


def _check_weights(weights, device="cpu"):
    if not isinstance(weights, (tuple, list)) or len(weights) != 4:
        raise TypeError("weights must be a tuple (w_ih, w_hh, b_ih, b_hh); biases may be None")
    names = ("weights[0] (w_ih)", "weights[1] (w_hh)", "weights[2] (b_ih)", "weights[3] (b_hh)")
    for name, w in zip(names, weights):
        if w is not None:
            _host_only(name, w, device)
    info = validation.cuda_array_info(weights[1])
    if info is None:
        w_hh = validation._to_numpy(names[1], weights[1])
        shape, dtype = w_hh.shape, w_hh.dtype
    else:
        shape, dtype = info
    if dtype.kind != "f" or dtype not in validation.FLOAT_DTYPES:
        raise TypeError(f"weights[1] (w_hh) must be float32 or float64, got dtype {dtype.name}")
    dtype = np.dtype(dtype)
    if len(shape) != 2 or shape[0] != 3 * shape[1]:
        raise ValueError(f"weights[1] (w_hh) must have shape (3*hidden_size, hidden_size), got {tuple(shape)}")
    H = shape[1]
    b_ih, b_hh = weights[2], weights[3]
    if (b_ih is None) != (b_hh is None):
        raise ValueError("weights: b_ih and b_hh must both be arrays or both be None")
    expected = ((3 * H, None), (3 * H, H), (3 * H,), (3 * H,))
    checked = []
    for name, w, want in zip(names, weights, expected):
        if w is None:
            checked.append(None)
            continue
        info = validation.cuda_array_info(w)
        if info is None:
            w = validation.as_float_array(name, w, dtype)
            got = w.shape
        else:
            got = info[0]
            validation.check_float_dtype(name, info[1])
        if len(got) != len(want) or any(e is not None and g != e for g, e in zip(got, want)):
            shape_text = {0: f"({3 * H}, input_size)", 1: f"({3 * H}, {H})"}.get(len(checked), f"({3 * H},)")
            raise ValueError(f"{name} must have shape {shape_text}, got {tuple(got)}")
        if device == "cuda":
            w = cuda_kernels().asarray(w, dtype)      # no copy for a device array of the right dtype
        checked.append(w)
    return tuple(checked)
