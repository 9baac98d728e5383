"""Shape and type rules, in one place.

Every check raises ``TypeError`` (wrong kind of thing) or ``ValueError`` (right
kind, wrong value) with a message that names the argument, what it got and
what was expected. Nothing here writes to its inputs.
"""
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(dtype):
    """The compute dtype: float32 or float64 (float16 until a kernel exists)."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {resolved.name!r}")
    return resolved


def check_positive_int(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def check_dropout(dropout):
    if isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, numbers.Real):
        raise TypeError(f"dropout must be a number in [0, 1), got {dropout!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    return float(dropout)


def _to_numpy(name, value):
    """NumPy view of an array-like; torch tensors are detached and brought to the host."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):   # torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as err:  # ragged lists, objects NumPy cannot read
        raise TypeError(f"{name} must be an array of floats, got {type(value).__name__} ({err})") from None


def as_float_array(name, value, dtype, check_finite=False):
    """``value`` as an array of ``dtype``; integer, bool, complex, object and float16 arrays are refused.

    A float array of the other precision is converted (as scikit-learn's
    check_array does). The caller's array is never written to: the result may
    share its memory, so treat it as read-only.
    """
    arr = _to_numpy(name, value)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must be an array of float32 or float64, got dtype {arr.dtype.name}"
                        " (cast it explicitly; numgru never casts integers, bools or complex silently)")
    if arr.dtype == np.float16 or arr.dtype.itemsize > 8:
        raise TypeError(f"{name} has dtype {arr.dtype.name}: numgru computes in float32 or float64;"
                        " convert it with .astype(np.float32)")
    arr = arr.astype(dtype, copy=False)
    if check_finite and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf (check_finite=True)")
    return arr


def check_sequence(x, input_size, batch_first, dtype, check_finite=False, name="x"):
    """Input of a sequence layer -> (x as (T, B, I), batched).

    ``x`` is (T, B, I), (B, T, I) with ``batch_first``, or unbatched (T, I).
    """
    arr = as_float_array(name, x, dtype, check_finite)
    if arr.ndim == 2:
        batched = False
        arr = arr[:, None, :]
    elif arr.ndim == 3:
        batched = True
        if batch_first:
            arr = arr.transpose(1, 0, 2)
    else:
        layout = "(B, T, input_size)" if batch_first else "(T, B, input_size)"
        raise ValueError(f"{name} must be 3-D {layout} or unbatched 2-D (T, input_size), "
                         f"got shape {arr.shape}")
    T, B, I = arr.shape
    if I != input_size:
        raise ValueError(f"{name} must have input_size={input_size} features in its last dimension, "
                         f"got shape {np.shape(x)}")
    if T == 0 or B == 0:
        raise ValueError(f"{name} must have at least one time step and one sequence, got shape {np.shape(x)}")
    return arr, batched


def check_step(x, input_size, dtype, check_finite=False, name="x"):
    """Input of a cell step -> (x as a length-1 sequence (1, B, I), batched); x is (B, I) or (I,)."""
    arr = as_float_array(name, x, dtype, check_finite)
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must be 2-D (B, input_size) or unbatched 1-D (input_size,), got shape {arr.shape}")
    if arr.shape[-1] != input_size:
        raise ValueError(f"{name} must have input_size={input_size} features in its last dimension, "
                         f"got shape {arr.shape}")
    if arr.ndim == 2 and arr.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sequence, got shape {arr.shape}")
    return arr.reshape(1, -1, input_size), arr.ndim == 2


def check_state(name, h, expected_shape, dtype, check_finite=False):
    """An initial state: an array of exactly ``expected_shape``; None stays None."""
    if h is None:
        return None
    arr = as_float_array(name, h, dtype, check_finite)
    if arr.shape != tuple(expected_shape):
        raise ValueError(f"{name} must have shape {tuple(expected_shape)}, got {arr.shape}")
    return arr


def check_lengths(lengths, batch, steps):
    """Sequence lengths -> int64 (B,) with 1 <= lengths[b] <= T; None means all T."""
    if lengths is None:
        return np.full(batch, steps, np.int64)
    arr = _to_numpy("lengths", lengths)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths must be an array of integers, got dtype {arr.dtype.name}")
    if arr.ndim != 1 or arr.shape[0] != batch:
        raise ValueError(f"lengths must have one entry per sequence, shape ({batch},), got shape {arr.shape}")
    if arr.min() < 1 or arr.max() > steps:
        raise ValueError(f"lengths must lie in [1, {steps}] (the number of time steps), "
                         f"got min {arr.min()} and max {arr.max()}")
    return arr.astype(np.int64)


def check_grad_output(name, dout, expected_shape, dtype):
    """dout/dhn of a backward: the exact shape of the forward's output."""
    arr = as_float_array(name, dout, dtype)
    if arr.shape != tuple(expected_shape):
        raise ValueError(f"{name} must have the shape of the forward's output {tuple(expected_shape)}, "
                         f"got {arr.shape}")
    return arr

