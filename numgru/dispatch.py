"""Device choice, core ownership, and the functional form of one layer-direction.

``gru_forward``/``gru_backward`` validate their arguments and call ``forward_layer``/
``backward_layer``, which the layer classes call directly with arguments they
have already validated, so nothing is checked twice.

Devices: ``"cpu"`` runs ``kernels.cpu``; ``"cuda"`` runs ``kernels.cuda`` (the
one module that imports ``numba.cuda``, imported here only when a CUDA device
is asked for, so ``import numgru`` needs no CUDA package); ``"auto"`` picks a
real GPU when one works and the CPU otherwise (never the simulator, which is
for tests). On ``"cuda"``, NumPy inputs are copied over and NumPy comes back;
CUDA arrays (Numba device arrays, anything with ``__cuda_array_interface__``)
are used without a copy and device arrays come back.
"""
import os
import threading

import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  the BLAS behind Numba's np.dot; loaded so threadpoolctl sees it
from threadpoolctl import ThreadpoolController

from . import config, validation
from .kernels import cpu

DEVICES = ("cpu", "cuda", "auto")

# How the CUDA recurrence runs: "auto" (persistent kernel where it fits, else one
# launch per step), "step" or "persistent". Read at each call, so tests can force one.
CUDA_STRATEGY_ENV = "NUMGRU_CUDA_STRATEGY"

_cuda_state = None     # (kernels.cuda module or None, works, why), probed once


def _cuda_probe():
    global _cuda_state
    if _cuda_state is None:
        try:
            from .kernels import cuda as cuda_kernels
        except Exception as err:   # numba without its CUDA target, a broken toolkit ...
            _cuda_state = (None, False, f"numba.cuda could not be imported ({type(err).__name__}: {err}); "
                                        "install the CUDA extra: pip install numgru[cuda]")
        else:
            works, why = cuda_kernels.status()
            _cuda_state = (cuda_kernels, works, why)
    return _cuda_state


def cuda_kernels():
    """The ``kernels.cuda`` module; RuntimeError naming the reason where CUDA cannot run."""
    module, works, why = _cuda_probe()
    if not works:
        raise RuntimeError(f"device='cuda' is not available: {why}; use device='cpu' "
                           "(or 'auto', which picks a GPU only where one works)")
    return module


def gpu_available():
    """Whether a real GPU works here ('auto' picks it); the simulator does not count."""
    module, works, _ = _cuda_probe()
    return works and not module.SIMULATOR


def resolve_device(device, supported=("cpu", "cuda"), owner=None):
    """'cpu', 'cuda' or 'auto' -> the device that will run the kernels.

    ``supported``: the devices the caller implements ('auto' picks among them).
    """
    if not isinstance(device, str):
        raise TypeError(f"device must be one of {DEVICES}, got {device!r}")
    name = device.lower()
    if name not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if name == "cuda":
        if "cuda" not in supported:
            raise RuntimeError(f"device='cuda' is not available for {owner or 'this object'}: "
                               "it has no CUDA implementation yet; use device='cpu'")
        cuda_kernels()
        return "cuda"
    if name == "auto" and "cuda" in supported and gpu_available():
        return "cuda"
    return "cpu"


def cuda_strategy():
    strategy = os.environ.get(CUDA_STRATEGY_ENV, "auto").strip().lower() or "auto"
    if strategy not in ("auto", "step", "persistent"):
        raise ValueError(f"{CUDA_STRATEGY_ENV} must be 'auto', 'step' or 'persistent', got {strategy!r}")
    return strategy


def is_cuda_array(value):
    return validation.cuda_array_info(value) is not None


def _blas_thread_controls():
    """(get, set) of the thread count of every loaded BLAS.

    OpenBLAS's own C entry points where threadpoolctl finds them: a call costs
    about 0.1 µs, where threadpoolctl's methods cost about 1 µs, and a
    streaming step holds and restores every BLAS around a few µs of work.
    threadpoolctl's methods otherwise.
    """
    controls = []
    for library in ThreadpoolController().select(user_api="blas").lib_controllers:
        direct = (library.internal_api == "openblas" and getattr(library, "threading_layer", None) != "openmp"
                  and hasattr(library, "_get_symbol"))
        get = library._get_symbol("openblas_get_num_threads") if direct else None
        set_ = library._get_symbol("openblas_set_num_threads") if direct else None
        if get is None or set_ is None:
            get, set_ = (lambda library=library: library.num_threads), library.set_num_threads
        controls.append((get, set_))
    return controls


_blas_controls = None


class one_blas_thread:
    """Context manager: hold every loaded BLAS to one thread for the duration.

    Inside the parallel kernels each Numba thread calls BLAS itself. In the
    serial kernels and around them (a Linear head, a training loop), BLAS
    workers woken by one product keep spinning after it and compete for the
    cores with whatever runs next: numgru's own threads, or another library's
    (PyTorch in the same process ran 2-4x slower). Costs about 1 µs a call.
    """

    __slots__ = ("_restore",)

    def __enter__(self):
        global _blas_controls
        if _blas_controls is None:
            _blas_controls = _blas_thread_controls()
        self._restore = []
        for get, set_ in _blas_controls:
            count = get()
            if count is not None and count != 1:
                set_(1)
                self._restore.append((set_, count))
        return self

    def __exit__(self, *exc_info):
        for set_, count in self._restore:
            set_(count)


# numba.get_num_threads() from Python takes two locks and costs 0.7 µs, a
# twentieth of a streaming step; compiled, it reads the calling thread's
# setting (the same value) in 0.1 µs.
_numba_threads = numba.njit(lambda: numba.get_num_threads())


class cpu_threads(one_blas_thread):
    """Context manager deciding who owns the cores for one recurrence; gives (blocks, by_batch).

    ``steps``: how many steps a sequence runs, on average (the real work of
    a ragged batch is B x steps sequence-steps: the kernels skip padding;
    a stream passes 1, so that its split, and with it its bits, do not
    depend on how the stream is cut);
    ``itemsize``: the bytes of a float. A recurrence is shared between
    Numba's threads by sequences (by_batch: each thread runs its own block
    of sequences through every step, one parallel region in all) at small H
    or with large blocks (``config.BATCH_SPLIT_ALWAYS_MAX_H``,
    ``config.BATCH_SPLIT_MIN_BLOCK``), as long as W_hh is small enough for
    every thread to read all of it each step
    (``config.BATCH_SPLIT_MAX_WEIGHT_BYTES``); else by hidden units (the
    threads meet at every step). It runs on one thread (where both splits
    are the same computation) when a parallel region would hold fewer than
    ``config.PARALLEL_MIN_REGION_WORK`` multiply-adds. BLAS is held to one
    thread throughout, so no two thread pools ever fight. The block count is
    the number of Numba threads, so results are bit-stable for a fixed
    ``numba.set_num_threads``.
    """

    __slots__ = ("plan",)

    def __init__(self, B, H, steps, itemsize):
        threads = _numba_threads()
        step_work = B * 3 * H * H
        w_hh_bytes = 3 * H * H * itemsize
        by_batch = (B >= threads and w_hh_bytes <= config.BATCH_SPLIT_MAX_WEIGHT_BYTES
                    and (H <= config.BATCH_SPLIT_ALWAYS_MAX_H or B // threads >= config.BATCH_SPLIT_MIN_BLOCK))
        if threads > 1 and by_batch and steps * step_work >= config.PARALLEL_MIN_REGION_WORK:
            self.plan = (threads, True)
        elif threads > 1 and step_work >= config.PARALLEL_MIN_REGION_WORK:
            self.plan = (threads, False)
        else:
            self.plan = (1, False)

    def __enter__(self):
        super().__enter__()
        return self.plan


_grad_mode = threading.local()


class no_grad:
    """Context manager, as ``torch.no_grad``: forwards run inside keep nothing for a backward.

    Inference then saves no gates or states per step (less memory, less time);
    a ``backward`` after such a forward raises. Per thread, and nestable.

        >>> import numpy as np, numgru
        >>> gru = numgru.GRU(3, 8, seed=0)
        >>> with numgru.no_grad():
        ...     out, hn = gru(np.zeros((5, 2, 3), np.float32))
    """

    __slots__ = ("_previous",)

    def __enter__(self):
        self._previous = grad_enabled()
        _grad_mode.enabled = False
        return self

    def __exit__(self, *exc_info):
        _grad_mode.enabled = self._previous


def grad_enabled():
    """False inside ``numgru.no_grad()``: forwards keep no backward cache."""
    return getattr(_grad_mode, "enabled", True)


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


# ------------------------------------------------ inputs on the compute device
#
# Each takes one user argument, validates it (validation.py's rules; CUDA
# arrays by their metadata only) and returns it on ``device``, in the layout
# the kernels use.

def _host_only(name, value, device):
    if device == "cpu" and is_cuda_array(value):
        raise TypeError(f"{name} is a CUDA array but this runs on the CPU: move the model to the GPU "
                        "(.to('cuda') / device='cuda') or pass a NumPy array")


def _device_copy(name, value, dtype, check_finite):
    """A CUDA array as a C-contiguous device array of ``dtype`` (no copy when it already is one)."""
    ck = cuda_kernels()
    arr = ck.asarray(value, dtype)
    if check_finite and not ck.all_finite(arr):
        validation.raise_not_finite(name)
    return arr


def _cuda_dtype(name, value):
    shape, dtype = validation.cuda_array_info(value)
    validation.check_float_dtype(name, dtype)
    return shape


def sequence_input(x, input_size, batch_first, dtype, check_finite, device, name="x"):
    """-> (x as (T, B, I) on ``device``, batched)."""
    _host_only(name, x, device)
    if device == "cpu" or not is_cuda_array(x):
        arr, batched = validation.check_sequence(x, input_size, batch_first, dtype, check_finite, name)
        return (arr if device == "cpu" else cuda_kernels().asarray(arr, dtype)), batched
    shape = _cuda_dtype(name, x)
    batched = validation.sequence_layout(name, shape, input_size, batch_first)
    arr = _device_copy(name, x, dtype, check_finite)
    if not batched:
        arr = arr.reshape(shape[0], 1, shape[1])
    elif batch_first:
        arr = cuda_kernels().swap01(arr)
    return arr, batched


def step_input(x, input_size, dtype, check_finite, device, name="x"):
    """A cell's input -> (x as a length-1 sequence (1, B, I) on ``device``, batched)."""
    _host_only(name, x, device)
    if device == "cpu" or not is_cuda_array(x):
        arr, batched = validation.check_step(x, input_size, dtype, check_finite, name)
        return (arr if device == "cpu" else cuda_kernels().asarray(arr, dtype)), batched
    shape = _cuda_dtype(name, x)
    batched = validation.step_layout(name, shape, input_size)
    arr = _device_copy(name, x, dtype, check_finite)
    return arr.reshape(1, shape[0] if batched else 1, input_size), batched


def state_input(name, h, expected_shape, dtype, check_finite, device):
    """An initial state of exactly ``expected_shape`` on ``device``; None stays None."""
    if h is None:
        return None
    _host_only(name, h, device)
    if device == "cpu" or not is_cuda_array(h):
        arr = validation.check_state(name, h, expected_shape, dtype, check_finite)
        return arr if device == "cpu" else cuda_kernels().asarray(arr, dtype)
    validation.check_state_shape(name, _cuda_dtype(name, h), expected_shape)
    return _device_copy(name, h, dtype, check_finite)


def grad_input(name, dout, expected_shape, dtype, device):
    """A gradient of a forward's output, of exactly ``expected_shape``, on ``device``."""
    _host_only(name, dout, device)
    if device == "cpu" or not is_cuda_array(dout):
        arr = validation.check_grad_output(name, dout, expected_shape, dtype)
        return arr if device == "cpu" else cuda_kernels().asarray(arr, dtype)
    validation.check_grad_shape(name, _cuda_dtype(name, dout), expected_shape)
    return _device_copy(name, dout, dtype, False)


def to_user(value, host):
    """A result in the caller's family: NumPy when ``host`` (device arrays are copied back)."""
    if host and value is not None and not isinstance(value, np.ndarray):
        return cuda_kernels().to_host(value)
    return value


class _HostArrays:
    """The array operations the layers use, on NumPy arrays (``kernels.cuda`` has the same on the GPU)."""

    empty = staticmethod(np.empty)
    zeros = staticmethod(np.zeros)

    @staticmethod
    def asarray(value, dtype):
        return np.asarray(value, dtype=dtype)

    @staticmethod
    def to_host(value):
        return value

    @staticmethod
    def fill(a, value):
        a.fill(value)
        return a

    @staticmethod
    def add(a, b):
        return a + b

    @staticmethod
    def add_(dst, src):
        dst += src
        return dst

    @staticmethod
    def multiply(a, b):
        return a * b

    @staticmethod
    def swap01(a):
        return np.ascontiguousarray(a.transpose(1, 0, 2))

    @staticmethod
    def concatenate_last(arrays):
        return np.concatenate(arrays, axis=2)

    @staticmethod
    def stack(arrays):
        return np.stack(arrays)


def array_ops(device):
    """The array operations of ``device``: NumPy's on the CPU, ``kernels.cuda``'s on the GPU."""
    return _HostArrays if device == "cpu" else cuda_kernels()


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
    _host_only("x", x, device)
    if host_io:
        x = validation.as_float_array("x", x, dtype, check_finite)
        shape = x.shape
    else:
        shape = _cuda_dtype("x", x)
    if len(shape) != 3 or shape[2] != w_ih.shape[1]:
        raise ValueError(f"x must have shape (T, B, {w_ih.shape[1]}) to match w_ih {tuple(w_ih.shape)}, "
                         f"got {tuple(shape)}")
    T, B, _ = shape
    if T == 0 or B == 0:
        raise ValueError(f"x must have at least one time step and one sequence, got shape {tuple(shape)}")
    if device == "cuda":
        x = _device_copy("x", x, dtype, check_finite and not host_io)
    h0 = state_input("h0", h0, (B, H), dtype, check_finite, device)
    lengths = validation.check_lengths(_lengths_to_host(lengths), B, T)
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


def _lengths_to_host(lengths):
    """Lengths are validated and kept on the host (the kernels get a copy): a CUDA array is brought back."""
    if lengths is not None and is_cuda_array(lengths):
        return validation._to_numpy("lengths", lengths)
    return lengths


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
