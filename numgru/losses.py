"""Loss functions: pure functions ``(pred, target) -> (loss, dloss/dpred)``, mean reduction by default.

Each returns the loss as a Python float and its gradient with respect to the
prediction as an array of the prediction's shape and dtype, ready for
``model.backward``. Without a mask, the numbers are those of
``torch.nn.functional.mse_loss``, ``cross_entropy`` and
``binary_cross_entropy_with_logits`` (``reduction="mean"``).

``mask`` (optional) covers the leading dimensions of the prediction, for
example (B, T) for a (B, T, C) many-to-many output with padded steps: only
the True positions count, and the mean is taken over them.
"""
import numpy as np

from . import threads, validation
from .kernels import ctc as ctc_kernels

__all__ = ["mse", "cross_entropy", "binary_cross_entropy_with_logits", "ctc", "LOSSES", "get"]


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


def cross_entropy(logits, labels, mask=None, *, lengths=None, ignore_index=None, batch_first=False,
                  reduction="mean"):
    """Softmax cross-entropy between logits (..., C) and integer labels (...), over the counted positions.

    The class dimension is the LAST one (NumPy's natural layout; torch puts it
    second for N-D inputs). A position counts unless ``mask`` is False there,
    it lies past its sequence's length, or its label is ``ignore_index``:
    mask: bools of shape ``labels.shape``, or None;
    lengths: ints (B,), for 3-D logits (T, B, C), or (B, T, C) with
        ``batch_first=True``: steps t >= lengths[b] do not count (0 allowed);
    ignore_index: a label value that does not count (it may lie outside
        [0, C)), as torch's.
    reduction: "mean" (the sum over counted positions / their number, torch's)
        or "sum". No counted position at all raises ValueError.
    Returns (loss, dlogits) with dlogits = (softmax(logits) - onehot(labels)) / count
    at counted positions ("sum": not divided) and exactly 0 elsewhere. The
    log-sum-exp subtracts each row's max, so logits of any size stay finite;
    float32 logits give float32 gradients, the loss is summed in float64.
    """
    logits = _as_prediction("logits", logits)
    if logits.ndim < 1 or logits.shape[-1] < 1:
        raise ValueError(f"logits must have shape (..., num_classes), got {logits.shape}")
    C = logits.shape[-1]
    validation.check_choice("reduction", reduction, REDUCTIONS)
    if ignore_index is not None:
        ignore_index = validation.check_integer("ignore_index", ignore_index)
    labels = validation.check_labels("labels", labels, logits.shape[:-1], C, ignore_index)
    if labels.size == 0:
        raise ValueError(f"logits must hold at least one sample, got shape {logits.shape}")
    counted = _counted_positions(logits.shape, labels, mask, lengths, ignore_index, batch_first)
    flat = logits.reshape(-1, C)
    flat_labels = labels.reshape(-1)
    if counted is not None:
        counted = counted.reshape(-1)
        flat_labels = np.where(counted, flat_labels, 0)   # an ignored label may lie outside [0, C)
    shifted = flat - flat.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sums = exp.sum(axis=1, keepdims=True)
    rows = np.arange(flat.shape[0])
    nll = np.log(sums[:, 0]) - shifted[rows, flat_labels]
    grad = exp / sums
    grad[rows, flat_labels] -= 1
    if counted is None:
        count = flat.shape[0]
    else:
        count = int(counted.sum())
        nll = nll[counted]
        grad[~counted] = 0        # assigned, not multiplied: a NaN at an uncounted position reaches nothing
    loss = float(nll.sum(dtype=np.float64))
    if reduction == "mean":
        loss /= count
        grad *= grad.dtype.type(1.0 / count)
    return loss, grad.reshape(logits.shape)


def binary_cross_entropy_with_logits(logits, targets, mask=None, reduction="mean"):
    """Sigmoid cross-entropy between logits and float targets of the same shape, as torch's.

    Element-wise max(x, 0) - x y + log1p(exp(-|x|)): finite for logits of
    any size. mask: bools over the leading dimensions of logits, or None;
    reduction: "mean" over the (unmasked) elements, or "sum".
    Returns (loss, dlogits) with dlogits = (sigmoid(x) - y) / count ("sum":
    not divided), exactly 0 at masked positions.
    """
    x = _as_prediction("logits", logits)
    y = validation.check_target("targets", targets, x.shape, x.dtype)
    validation.check_choice("reduction", reduction, REDUCTIONS)
    if x.size == 0:
        raise ValueError(f"logits must hold at least one element, got shape {x.shape}")
    e = np.exp(-np.abs(x))
    elementwise = np.maximum(x, 0) - x * y + np.log1p(e)
    grad = np.where(x >= 0, 1, e) / (1 + e) - y          # sigmoid(x) - y without overflow
    if mask is None:
        count = x.size
        loss = float(elementwise.sum(dtype=np.float64))
    else:
        mask = _leading_mask(mask, x.shape)
        count = int(mask.sum()) * int(np.prod(x.shape[mask.ndim:], dtype=np.int64))
        loss = float(elementwise[mask].sum(dtype=np.float64))
        grad[~mask] = 0
    if reduction == "mean":
        loss /= count
        grad *= grad.dtype.type(1.0 / count)
    return loss, grad.astype(x.dtype, copy=False)


def ctc(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=False):
    """Connectionist temporal classification loss and its gradient: ``torch.nn.functional.ctc_loss``'s numbers.

    log_probs: (T, B, C) float32/float64 log-probabilities (normally a
        log_softmax over C, the blank included), or unbatched (T, C);
    targets: padded (B, S) (row b's first target_lengths[b] labels count,
        the rest is never read) or 1-D, the targets concatenated
        (sum(target_lengths) labels); unbatched, (S,); any integer dtype;
        labels in [0, C), never ``blank``;
    input_lengths, target_lengths: (B,) integers (lists, tuples, arrays),
        unbatched one integer; 0 <= input_lengths <= T, 0 <= target_lengths <= S.
        A target of length 0 is allowed (loss = -sum of log p(blank));
    reduction: "mean" (each sequence's loss divided by max(its target length,
        1), then the mean over the batch, torch's), "sum", or "none" (the loss
        is then a float64 array (B,), () unbatched, and the gradient is that
        of its sum);
    zero_infinity: an impossible alignment (input too short for the target:
        T_b < S_b + its repeated neighbours) gives loss inf and, as torch,
        NaN gradient over that sequence's frames t < T_b; with
        zero_infinity=True its loss and gradient are 0 instead.
    Returns (loss, dlog_probs): loss a Python float (summed in float64) for
    "mean" and "sum"; dlog_probs of log_probs' shape and dtype.

    The gradient is the EXACT derivative of the loss with respect to
    log_probs taken as free inputs (what finite differences give):
    dL/dlog_probs[t, b, c] = -w_b gamma_t(c), minus the posterior occupancy of
    class c at frame t (sum over the extended-label states s with l'_s = c of
    exp(alpha_t(s) + beta_t(s) - log p(l|x))), w_b the reduction's weight of
    sequence b; exactly 0 for frames t >= input_lengths[b]. torch's CPU
    kernel returns this plus exp(log_probs) at frames t < input_lengths[b]
    (it assumes log_probs = log_softmax(logits)): through log_softmax's
    backward, g - softmax * sum(g), both give the same gradient of the
    logits, as the occupancies of a frame sum to 1.

    The forward-backward recursion runs compiled in log space, accumulating
    in float64 (float32 inputs too), blocks of sequences shared between
    Numba's threads; each sequence is computed by one thread, so results are
    the same bits at every thread count. Inputs are never written to.
    """
    lp, targets, input_lengths, target_lengths, blank, batched = validation.check_ctc(
        log_probs, targets, input_lengths, target_lengths, blank)
    validation.check_choice("reduction", reduction, CTC_REDUCTIONS)
    if not isinstance(zero_infinity, (bool, np.bool_)):
        raise TypeError(f"zero_infinity must be a bool, got {zero_infinity!r}")
    B = lp.shape[1]
    if reduction == "mean":
        scales = 1.0 / (np.maximum(target_lengths, 1) * B)
    else:
        scales = np.ones(B)
    cells = int(np.dot(input_lengths, 2 * target_lengths + 1))
    nchunks = threads._numba_threads() if cells >= CTC_PARALLEL_MIN_CELLS else 1
    losses, grad = ctc_kernels.ctc_loss(np.ascontiguousarray(lp), targets, input_lengths, target_lengths, blank,
                                        scales, bool(zero_infinity), nchunks)
    if zero_infinity:
        losses[losses == np.inf] = 0.0
    if not batched:
        grad = grad[:, 0, :]
    if reduction == "none":
        return (losses if batched else losses.reshape(())), grad
    if reduction == "mean":
        return float((losses / np.maximum(target_lengths, 1)).sum() / B), grad
    return float(losses.sum()), grad


# The CTC kernel shares its sequences between Numba's threads from this many cells (states x frames,
# sum of T_b (2 S_b + 1)) on: a cell costs about 10 ns (alpha, beta, occupancy), so even small batches
# pay. Measured (float32, C=29, time on 2 threads / 1, the 2-core machine shared with other work):
# 440 cells 0.70, 2,100 0.56, 4,200 0.82, 16,400 0.64, 161,600 0.82.
CTC_PARALLEL_MIN_CELLS = 512
REDUCTIONS = ("mean", "sum")
CTC_REDUCTIONS = ("mean", "sum", "none")
LOSSES = {"mse": mse, "cross_entropy": cross_entropy,
          "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits}


def get(loss):
    """A loss by name (a key of ``LOSSES``) or a callable returning (loss, grad), unchanged."""
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


def _counted_positions(shape, labels, mask, lengths, ignore_index, batch_first):
    """Where every one of mask, lengths and ignore_index lets a position count (bools of labels' shape), or None."""
    counted = validation.check_mask("mask", mask, labels.shape)
    if lengths is not None:
        if labels.ndim != 2:
            layout = "(B, T, C) with batch_first=True" if batch_first else "(T, B, C)"
            raise ValueError(f"lengths needs 3-D logits {layout}, got logits of shape {shape}")
        T, B = labels.shape[::-1] if batch_first else labels.shape
        within = np.arange(T)[:, None] < validation.check_lengths(lengths, B, T, minimum=0)
        within = within.T if batch_first else within
        counted = within if counted is None else counted & within
    if ignore_index is not None:
        kept = labels != ignore_index
        counted = kept if counted is None else counted & kept
    if counted is not None and not counted.any():
        raise ValueError("no position counts: mask, lengths and ignore_index leave no token for the loss "
                         "(a loss over nothing is undefined)")
    return counted
