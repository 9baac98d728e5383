"""Loss functions: pure functions ``(pred, target) -> (loss, dloss/dpred)`` with mean reduction.

Each returns the loss as a Python float and its gradient with respect to the
prediction as an array of the prediction's shape and dtype, ready for
``model.backward``. Without a mask, the numbers are those of
``torch.nn.functional.mse_loss`` and ``cross_entropy`` (``reduction="mean"``).

``mask`` (optional) covers the leading dimensions of the prediction, for
example (B, T) for a (B, T, C) many-to-many output with padded steps: only
the True positions count, and the mean is taken over them.
"""
import numpy as np

from . import validation

__all__ = ["mse", "cross_entropy", "LOSSES", "get"]


def mse(pred, target, mask=None):
    """Mean squared error, averaged over every element (of the unmasked positions).

    pred, target: float arrays of the same shape. mask: bools of shape
    ``pred.shape[:k]`` for some k, or None.
    Returns (loss, dpred) with dpred = 2 (pred - target) / count.
    """
    pred = _as_prediction("pred", pred)
    target = validation.check_target("target", target, pred.shape, pred.dtype)
    diff = pred - target
    if mask is None:
        count = diff.size
        if count == 0:
            raise ValueError(f"pred must hold at least one element, got shape {pred.shape}")
    else:
        mask = _leading_mask(mask, pred.shape)
        count = int(mask.sum()) * int(np.prod(pred.shape[mask.ndim:], dtype=np.int64))
        diff = diff * mask.reshape(mask.shape + (1,) * (pred.ndim - mask.ndim))
    loss = float(np.dot(diff.ravel(), diff.ravel())) / count
    grad = diff * pred.dtype.type(2.0 / count)
    return loss, grad


def cross_entropy(logits, labels, mask=None):
    """Softmax cross-entropy between logits (..., C) and integer labels (...), averaged over samples.

    The class dimension is the LAST one (NumPy's natural layout; torch puts it
    second for N-D inputs). Returns (loss, dlogits) with
    dlogits = (softmax(logits) - onehot(labels)) / count.
    """
    logits = _as_prediction("logits", logits)
    if logits.ndim < 1 or logits.shape[-1] < 1:
        raise ValueError(f"logits must have shape (..., num_classes), got {logits.shape}")
    C = logits.shape[-1]
    labels = validation.check_labels("labels", labels, logits.shape[:-1], C)
    flat = logits.reshape(-1, C)
    flat_labels = labels.reshape(-1)
    if flat.shape[0] == 0:
        raise ValueError(f"logits must hold at least one sample, got shape {logits.shape}")
    shifted = flat - flat.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sums = exp.sum(axis=1, keepdims=True)
    rows = np.arange(flat.shape[0])
    nll = np.log(sums[:, 0]) - shifted[rows, flat_labels]
    grad = exp / sums
    grad[rows, flat_labels] -= 1
    if mask is None:
        count = flat.shape[0]
    else:
        mask = validation.check_mask("mask", mask, labels.shape).reshape(-1)
        count = int(mask.sum())
        nll = nll[mask]
        grad *= mask[:, None]
    loss = float(nll.sum(dtype=np.float64)) / count
    grad *= grad.dtype.type(1.0 / count)
    return loss, grad.reshape(logits.shape)


LOSSES = {"mse": mse, "cross_entropy": cross_entropy}


def get(loss):
    """A loss by name ('mse', 'cross_entropy') or a callable returning (loss, grad), unchanged."""
    if callable(loss):
        return loss
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]
    raise ValueError(f"loss must be one of {tuple(LOSSES)} or a callable (pred, target) -> (loss, grad), "
                     f"got {loss!r}")


def _as_prediction(name, value):
    """A prediction in its own precision (float32 stays float32); validation rejects non-floats."""
    arr = validation._to_numpy(name, value)
    dtype = arr.dtype if arr.dtype in validation.FLOAT_DTYPES else np.dtype(np.float64)
    return validation.as_float_array(name, arr, dtype)


def _leading_mask(mask, shape):
    ndim = np.ndim(mask)
    if ndim == 0 or ndim > len(shape):
        raise ValueError(f"mask must cover the leading dimensions of pred {shape}, got shape {np.shape(mask)}")
    return validation.check_mask("mask", mask, shape[:ndim])
