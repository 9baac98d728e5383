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
    """NumPy view of an array-like; torch tensors are detached and CUDA arrays brought to the host."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):   # torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()
    elif getattr(value, "__cuda_ndarray__", False):          # a Numba device array
        value = value.copy_to_host()
    elif hasattr(value, "get") and cuda_array_info(value) is not None:   # CuPy
        value = value.get()
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
    check_float_dtype(name, arr.dtype)
    arr = arr.astype(dtype, copy=False)
    if check_finite and not np.isfinite(arr).all():
        raise_not_finite(name)
    return arr


def check_float_dtype(name, dtype):
    """The dtype rule of every float input: float32 or float64, never silently cast from anything else."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"{name} must be an array of float32 or float64, got dtype {dtype.name}"
                        " (cast it explicitly; numgru never casts integers, bools or complex silently)")
    if dtype == np.float16 or dtype.itemsize > 8:
        raise TypeError(f"{name} has dtype {dtype.name}: numgru computes in float32 or float64;"
                        " convert it with .astype(np.float32)")
    return dtype


def raise_not_finite(name):
    raise ValueError(f"{name} contains NaN or inf (check_finite=True)")


def cuda_array_info(value):
    """(shape, dtype) of a CUDA array, read from its metadata without touching its data; None otherwise.

    A CUDA array is a Numba device array or any object with
    ``__cuda_array_interface__`` (CuPy arrays, PyTorch CUDA tensors).
    """
    if getattr(value, "__cuda_ndarray__", False):
        return tuple(value.shape), np.dtype(value.dtype)
    try:
        interface = value.__cuda_array_interface__
    except AttributeError:
        return None
    except Exception:          # PyTorch refuses the interface on tensors that require grad
        if not hasattr(value, "detach"):
            return None
        interface = value.detach().__cuda_array_interface__
    return tuple(interface["shape"]), np.dtype(interface["typestr"])


def check_sequence(x, input_size, batch_first, dtype, check_finite=False, name="x"):
    """Input of a sequence layer -> (x as (T, B, I), batched).

    ``x`` is (T, B, I), (B, T, I) with ``batch_first``, or unbatched (T, I).
    """
    arr = as_float_array(name, x, dtype, check_finite)
    batched = sequence_layout(name, arr.shape, input_size, batch_first)
    if not batched:
        arr = arr[:, None, :]
    elif batch_first:
        arr = arr.transpose(1, 0, 2)
    return arr, batched


def sequence_layout(name, shape, input_size, batch_first):
    """The shape rule of ``check_sequence`` -> whether ``shape`` is batched."""
    shape = tuple(shape)
    if len(shape) not in (2, 3):
        layout = "(B, T, input_size)" if batch_first else "(T, B, input_size)"
        raise ValueError(f"{name} must be 3-D {layout} or unbatched 2-D (T, input_size), "
                         f"got shape {shape}")
    if shape[-1] != input_size:
        raise ValueError(f"{name} must have input_size={input_size} features in its last dimension, "
                         f"got shape {shape}")
    if 0 in shape[:-1]:
        raise ValueError(f"{name} must have at least one time step and one sequence, got shape {shape}")
    return len(shape) == 3


def check_step(x, input_size, dtype, check_finite=False, name="x"):
    """Input of a cell step -> (x as a length-1 sequence (1, B, I), batched); x is (B, I) or (I,)."""
    arr = as_float_array(name, x, dtype, check_finite)
    batched = step_layout(name, arr.shape, input_size)
    return arr.reshape(1, -1, input_size), batched


def step_layout(name, shape, input_size):
    """The shape rule of ``check_step`` -> whether ``shape`` is batched."""
    shape = tuple(shape)
    if len(shape) not in (1, 2):
        raise ValueError(f"{name} must be 2-D (B, input_size) or unbatched 1-D (input_size,), got shape {shape}")
    if shape[-1] != input_size:
        raise ValueError(f"{name} must have input_size={input_size} features in its last dimension, "
                         f"got shape {shape}")
    if len(shape) == 2 and shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sequence, got shape {shape}")
    return len(shape) == 2


def check_state(name, h, expected_shape, dtype, check_finite=False):
    """An initial state: an array of exactly ``expected_shape``; None stays None."""
    if h is None:
        return None
    arr = as_float_array(name, h, dtype, check_finite)
    check_state_shape(name, arr.shape, expected_shape)
    return arr


def check_state_shape(name, shape, expected_shape):
    if tuple(shape) != tuple(expected_shape):
        raise ValueError(f"{name} must have shape {tuple(expected_shape)}, got {tuple(shape)}")


def check_lengths(lengths, batch, steps, minimum=1):
    """Sequence lengths -> int64 (B,) with minimum <= lengths[b] <= T; None means all T.

    ``minimum=0`` is for streams, where a sequence may have no new step in a chunk.
    """
    if lengths is None:
        return np.full(batch, steps, np.int64)
    arr = _to_numpy("lengths", lengths)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths must be an array of integers, got dtype {arr.dtype.name}")
    if arr.ndim != 1 or arr.shape[0] != batch:
        raise ValueError(f"lengths must have one entry per sequence, shape ({batch},), got shape {arr.shape}")
    if arr.min() < minimum or arr.max() > steps:
        raise ValueError(f"lengths must lie in [{minimum}, {steps}] (the number of time steps), "
                         f"got min {arr.min()} and max {arr.max()}")
    return arr.astype(np.int64)


def check_grad_output(name, dout, expected_shape, dtype):
    """dout/dhn of a backward: the exact shape of the forward's output."""
    arr = as_float_array(name, dout, dtype)
    check_grad_shape(name, arr.shape, expected_shape)
    return arr


def check_grad_shape(name, shape, expected_shape):
    if tuple(shape) != tuple(expected_shape):
        raise ValueError(f"{name} must have the shape of the forward's output {tuple(expected_shape)}, "
                         f"got {tuple(shape)}")



# ------------------------------------------------ training toolkit (Linear, losses, optim, fit, tasks, I/O)

def check_real(name, value, *, low=None, high=None, low_open=False, high_open=False):
    """A real number (not bool) within [low, high] (open ends as asked) -> float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if value != value:
        raise ValueError(f"{name} must be a number, got nan")
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{name} must lie in {interval}, got {value}")
    return value


def check_nonnegative_int(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value}")
    return int(value)


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_features(name, x, features, dtype, check_finite=False):
    """Input of a layer acting on the last axis: (..., features), at least 1-D."""
    arr = as_float_array(name, x, dtype, check_finite)
    if arr.ndim == 0 or arr.shape[-1] != features:
        raise ValueError(f"{name} must have shape (..., {features}) (in_features={features} in its last "
                         f"dimension), got shape {arr.shape}")
    return arr


def check_target(name, target, expected_shape, dtype):
    """A regression target: a float array of exactly ``expected_shape`` (the prediction's)."""
    arr = as_float_array(name, target, dtype)
    if arr.shape != tuple(expected_shape):
        raise ValueError(f"{name} must have the prediction's shape {tuple(expected_shape)}, got {arr.shape}")
    return arr


def check_labels(name, labels, expected_shape, num_classes, ignore_index=None):
    """Class labels: integers in [0, num_classes) of exactly ``expected_shape`` -> int64 array.

    Labels equal to ``ignore_index`` (an int, or None) may lie anywhere, as in torch.
    """
    arr = _integer_array(name, labels, "class indices")
    if arr.shape != tuple(expected_shape):
        raise ValueError(f"{name} must have shape {tuple(expected_shape)} (the logits' shape without the class "
                         f"dimension), got {arr.shape}")
    counted = arr if ignore_index is None else arr[arr != ignore_index]
    besides = "" if ignore_index is None else f" (besides ignore_index={ignore_index})"
    _check_index_range(name, counted, num_classes, f"{num_classes} classes{besides}")
    return arr.astype(np.int64, copy=False)


def check_ids(name, ids, num_embeddings):
    """Token ids: integers in [0, num_embeddings), any shape -> int64 array (may share the caller's memory)."""
    arr = _integer_array(name, ids, "token ids")
    _check_index_range(name, arr, num_embeddings, f"num_embeddings={num_embeddings}")
    return arr.astype(np.int64, copy=False)


def check_padding_idx(padding_idx, num_embeddings):
    """torch.nn.Embedding's padding_idx: None, or an int in [-N, N) -> None or its index in [0, N)."""
    if padding_idx is None:
        return None
    padding_idx = check_integer("padding_idx", padding_idx)
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"padding_idx must lie in [-{num_embeddings}, {num_embeddings}) for "
                         f"num_embeddings={num_embeddings}, got {padding_idx}")
    return padding_idx % num_embeddings


def check_integer(name, value):
    """An integer of any sign (not a bool) -> int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return int(value)


def check_str_list(name, value, items="str", item="str", hint=""):
    """A list of str (any iterable that is not itself a str) -> list; errors name the argument or the entry.

    items, item: what the message calls the list's entries and one entry ("str tokens", "str token");
    hint: appended to the message for a single str given where a list is expected.
    """
    if isinstance(value, str):
        raise TypeError(f"{name} must be a list of {items}, got a str{hint}")
    try:
        value = list(value)
    except TypeError:
        raise TypeError(f"{name} must be a list of {items}, got {type(value).__name__}") from None
    for i, entry in enumerate(value):
        if not isinstance(entry, str):
            raise TypeError(f"{name}[{i}] must be a {item}, got {type(entry).__name__} {entry!r}")
    return value


def check_text(name, value):
    """A non-empty str (what a tokeniser reads) -> the str."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must be a non-empty str, got ''")
    return value


def _integer_array(name, value, what):
    """An integer array (bool, float, complex and object arrays refused: no silent casts)."""
    arr = _to_numpy(name, value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an array of integer {what}, got dtype {arr.dtype.name}")
    return arr


def _check_index_range(name, arr, size, what):
    if arr.size and (arr.min() < 0 or arr.max() >= size):
        raise ValueError(f"{name} must lie in [0, {size}) for {what}, got min {arr.min()} and max {arr.max()}")


def check_mask(name, mask, leading_shape):
    """A mask over the leading dimensions of a prediction: bools (or 0/1) of exactly ``leading_shape``."""
    if mask is None:
        return None
    arr = _to_numpy(name, mask)
    if arr.dtype.kind not in "biu":
        raise TypeError(f"{name} must be an array of bools, got dtype {arr.dtype.name}")
    if arr.shape != tuple(leading_shape):
        raise ValueError(f"{name} must have shape {tuple(leading_shape)}, got {arr.shape}")
    arr = arr.astype(bool)
    if not arr.any():
        raise ValueError(f"{name} selects no element: a loss over nothing is undefined")
    return arr


def check_modules(modules):
    """What optimisers and clipping act on: a list of objects with ``.parameters()`` and ``.grads`` dicts."""
    if hasattr(modules, "parameters") and hasattr(modules, "grads"):
        modules = [modules]
    try:
        modules = list(modules)
    except TypeError:
        raise TypeError("modules must be a list of numgru modules (objects with .parameters() and .grads), "
                        f"got {type(modules).__name__}") from None
    if not modules:
        raise ValueError("modules must hold at least one module, got an empty list")
    for i, module in enumerate(modules):
        if not (callable(getattr(module, "parameters", None)) and isinstance(getattr(module, "grads", None), dict)):
            raise TypeError(f"modules[{i}] must have .parameters() and a .grads dict (a numgru module), "
                            f"got {type(module).__name__}")
        params = module.parameters()
        if set(params) != set(module.grads):
            raise ValueError(f"modules[{i}] ({type(module).__name__}): .grads keys {sorted(module.grads)} "
                             f"do not match .parameters() keys {sorted(params)}")
        for name, value in params.items():
            if not isinstance(value, np.ndarray) or not isinstance(module.grads[name], np.ndarray):
                raise TypeError(f"modules[{i}] ({type(module).__name__}) parameter {name!r} is a "
                                f"{type(value).__name__} (device={getattr(module, 'device', '?')!r}); optimisers and "
                                "clipping update NumPy arrays: move the module with .to('cpu')")
    return modules


def check_samples(name, arr, n, what="samples"):
    """Arrays fed to fit/evaluate: at least 1-D with ``n`` rows."""
    arr = _to_numpy(name, arr)
    if arr.ndim == 0 or arr.shape[0] != n:
        raise ValueError(f"{name} must have {n} {what} along its first axis (as x has), got shape {arr.shape}")
    return arr


# ------------------------------------------------------------------------------------------- CTC

def check_ctc(log_probs, targets, input_lengths, target_lengths, blank):
    """The arguments of ``losses.ctc`` -> (log_probs (T, B, C), targets (B, S) int64, input_lengths int64 (B,),
    target_lengths int64 (B,), blank, batched).

    torch.nn.functional.ctc_loss's layouts: log_probs (T, B, C) or unbatched
    (T, C); targets padded (B, S) (row b's first target_lengths[b] entries
    count, the rest is never read) or concatenated 1-D (sum(target_lengths)),
    unbatched (S,); lengths (B,) integers, unbatched one integer. As torch:
    0 <= input_lengths <= T, 0 <= target_lengths <= S. Stricter than torch,
    which computes garbage or inf silently: counted targets must lie in
    [0, C) and differ from ``blank``, and a 1-D targets array must hold
    exactly sum(target_lengths) labels. log_probs is float32 or float64 in its
    own precision (NaN propagates); blank an integer in [0, C).
    """
    arr = _to_numpy("log_probs", log_probs)
    check_float_dtype("log_probs", arr.dtype)
    if arr.ndim not in (2, 3) or 0 in arr.shape:
        raise ValueError("log_probs must be 3-D (T, B, num_classes) or unbatched 2-D (T, num_classes) with no "
                         f"empty dimension, got shape {arr.shape}")
    batched = arr.ndim == 3
    lp = arr if batched else arr[:, None, :]
    T, B, C = lp.shape
    blank = check_integer("blank", blank)
    if not 0 <= blank < C:
        raise ValueError(f"blank must lie in [0, {C}) for log_probs with {C} classes, got {blank}")
    input_lengths = _ctc_lengths("input_lengths", input_lengths, B, batched)
    target_lengths = _ctc_lengths("target_lengths", target_lengths, B, batched)
    if input_lengths.max() > T:
        raise ValueError(f"input_lengths must be at most T={T} (the frames of log_probs), "
                         f"got max {input_lengths.max()}")
    tg = _integer_array("targets", targets, "class indices")
    total = int(target_lengths.sum())
    if not batched and tg.ndim != 1:
        raise ValueError(f"targets must be 1-D (S,) for unbatched 2-D log_probs, got shape {tg.shape}")
    if tg.ndim == 1 and batched:
        if tg.size != total:
            raise ValueError(f"targets, 1-D, must hold the concatenated targets: sum(target_lengths)={total} "
                             f"labels, got {tg.size}")
        padded = np.zeros((B, int(target_lengths.max())), np.int64)
        within = np.arange(padded.shape[1]) < target_lengths[:, None]
        padded[within] = tg
    elif tg.ndim in (1, 2):
        padded = tg.reshape(1, -1) if tg.ndim == 1 else tg
        if padded.shape[0] != B:
            raise ValueError(f"targets must be (B, S) = ({B}, S) padded or 1-D concatenated, got shape {tg.shape}")
        if target_lengths.max() > padded.shape[1]:
            raise ValueError(f"target_lengths must be at most S={padded.shape[1]} (the columns of targets), "
                             f"got max {target_lengths.max()}")
        padded = padded.astype(np.int64)
        within = np.arange(padded.shape[1]) < target_lengths[:, None]
    else:
        raise ValueError(f"targets must be 2-D (B, S) padded or 1-D concatenated, got shape {tg.shape}")
    counted = padded[within]
    _check_index_range("targets", counted, C, f"log_probs with {C} classes")
    if (counted == blank).any():
        b, i = np.argwhere(within & (padded == blank))[0]
        raise ValueError(f"targets must not contain the blank label {blank}: sequence {b} has it at position {i}")
    return lp, np.ascontiguousarray(padded), input_lengths, target_lengths, blank, batched


def _ctc_lengths(name, value, B, batched):
    """CTC lengths: B non-negative integers (a list, tuple or array; unbatched, one integer) -> int64 (B,)."""
    arr = _to_numpy(name, value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers, got dtype {arr.dtype.name}")
    expected = [(B,)] if batched else [(), (1,)]
    if arr.shape not in expected:
        what = f"({B},)" if batched else "one integer"
        raise ValueError(f"{name} must have shape {what}, got shape {arr.shape}")
    arr = arr.reshape(B).astype(np.int64)
    if arr.min() < 0:
        raise ValueError(f"{name} must be non-negative, got min {arr.min()}")
    return arr


def check_ctc_scores(log_probs, input_lengths, blank, batch_first):
    """What a CTC decoder reads -> (scores (T, B, C), input_lengths int64 (B,), blank, batched).

    log_probs: float32/float64 (T, B, C), (B, T, C) with ``batch_first``, or
    one unbatched sequence (T, C): log-probabilities or probabilities (the
    decoders say which they need). input_lengths: None (every sequence has T
    frames) or (B,) integers in [0, T], unbatched one integer.
    """
    arr = _to_numpy("log_probs", log_probs)
    check_float_dtype("log_probs", arr.dtype)
    if arr.ndim not in (2, 3) or 0 in arr.shape[-1:]:
        layout = "(B, T, num_classes)" if batch_first else "(T, B, num_classes)"
        raise ValueError(f"log_probs must be 3-D {layout} or unbatched 2-D (T, num_classes) with at least one "
                         f"class, got shape {arr.shape}")
    batched = arr.ndim == 3
    scores = (arr.transpose(1, 0, 2) if batch_first else arr) if batched else arr[:, None, :]
    T, B, C = scores.shape
    blank = check_integer("blank", blank)
    if not 0 <= blank < C:
        raise ValueError(f"blank must lie in [0, {C}) for log_probs with {C} classes, got {blank}")
    if input_lengths is None:
        return scores, np.full(B, T, np.int64), blank, batched
    lengths = _ctc_lengths("input_lengths", input_lengths, B, batched)
    if lengths.max() > T:
        raise ValueError(f"input_lengths must be at most T={T} (the frames of log_probs), got max {lengths.max()}")
    return scores, lengths, blank, batched


# ------------------------------------------------------------------------------- distributed (Dask)

def check_client(client):
    """A Dask client that is running (a closed one would hang or fail later, far from the call)."""
    status = getattr(client, "status", None)
    if status is None or not hasattr(client, "scatter"):
        raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
    if status != "running":
        raise ValueError(f"client is {status}, not running: pass a connected distributed.Client "
                         "(distributed.Client(cluster) or distributed.Client('tcp://scheduler:8786'))")
    return client


def check_batch_chunks(name, X, batch_axis):
    """A dask array cut into chunks along ``batch_axis`` only; returns the chunk sizes along it."""
    chunks = getattr(X, "chunks", None)
    if chunks is None or not hasattr(X, "to_delayed"):
        raise TypeError(f"{name} must be a dask.array.Array chunked along its batch axis (axis {batch_axis}), "
                        f"got {type(X).__name__}: wrap it with dask.array.from_array({name}, chunks=...)")
    if len(chunks) <= batch_axis:
        raise ValueError(f"{name} must have a batch axis {batch_axis}, got shape {X.shape}")
    split = [axis for axis, sizes in enumerate(chunks) if axis != batch_axis and len(sizes) > 1]
    if split:
        raise ValueError(f"{name} must be chunked along its batch axis (axis {batch_axis}) only, got chunks "
                         f"{tuple(len(c) for c in chunks)} per axis (sizes {chunks}): every chunk must hold whole "
                         f"sequences; rechunk with {name}.rechunk({{{', '.join(f'{a}: -1' for a in split)}}})")
    return chunks[batch_axis]


def check_chunked_lengths(lengths, batch_chunks, steps):
    """``lengths`` aligned with X's batch chunks: a dask array with the same chunks, or an array of ints
    (its values checked) that is then cut like X. Returns (the checked lengths, whether it is a dask array)."""
    chunks = getattr(lengths, "chunks", None)
    if chunks is not None and hasattr(lengths, "to_delayed"):
        if tuple(chunks) != (tuple(batch_chunks),):
            raise ValueError(f"lengths must be chunked as X's batch axis, chunks {(tuple(batch_chunks),)}, got "
                             f"chunks {tuple(chunks)}: use lengths.rechunk({tuple(batch_chunks)})")
        return lengths, True
    return check_lengths(lengths, sum(batch_chunks), steps), False
