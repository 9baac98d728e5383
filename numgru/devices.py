"""Where arrays live: the device choice, inputs moved to the compute device, array operations per device.

Devices: ``"cpu"`` runs ``kernels.cpu``; ``"cuda"`` runs ``kernels.cuda`` (the
one module that imports ``numba.cuda``, imported here only when a CUDA device
is asked for, so ``import numgru`` needs no CUDA package); ``"auto"`` picks a
real GPU when one works and the CPU otherwise (never the simulator, which is
for tests). On ``"cuda"``, NumPy inputs are copied over and NumPy comes back;
CUDA arrays (Numba device arrays, anything with ``__cuda_array_interface__``)
are used without a copy and device arrays come back. ``array_ops(device)``
gives one interface to the array operations the layers use, NumPy's on the
CPU and ``kernels.cuda``'s on the GPU, so no layer branches on the device.
"""
import os

import numpy as np

from . import validation

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
    def host_copy(value):
        return value.copy()

    @staticmethod
    def assign(dst, value):
        dst[...] = value

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
    def time_major(a):
        """(B, T, F) -> (T, B, F): a view (the kernels copy what they need contiguous)."""
        return a.transpose(1, 0, 2)

    @staticmethod
    def concatenate_last(arrays):
        return np.concatenate(arrays, axis=2)

    @staticmethod
    def stack(arrays):
        return np.stack(arrays)


def array_ops(device):
    """The array operations of ``device``: NumPy's on the CPU, ``kernels.cuda``'s on the GPU."""
    return _HostArrays if device == "cpu" else cuda_kernels()


def lengths_to_host(lengths):
    """Lengths are validated and kept on the host (the kernels get a copy): a CUDA array is brought back."""
    if lengths is not None and is_cuda_array(lengths):
        return validation._to_numpy("lengths", lengths)
    return lengths
