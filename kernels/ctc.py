"""CTC loss kernel: the forward-backward recursion of Graves et al. (2006) in log space, with its exact gradient.

One compiled call computes, for every sequence of a batch, alpha (stored),
beta (two rows, walked backwards), the loss -log p(l|x) and the gradient of
the loss with respect to the log-probabilities taken as free inputs:
dL/dlp[t, c] = -sum over the extended-label states s with l'_s = c of
exp(alpha_t(s) + beta_t(s) - log p(l|x)), the posterior occupancy of class c
at frame t. Sequences are independent: blocks of them are shared between
threads (``prange`` over blocks, as in kernels/cpu.py), each sequence's
numbers are computed by one thread in a fixed order, so the results are the
same bits at every thread count.

Extended labels: l' = (blank, l_1, blank, l_2, ..., l_S, blank), L = 2S + 1
states; state s may be entered from s, s - 1, and from s - 2 when l'_s is not
blank and differs from l'_{s-2}. Only the states from which the sequence's
first frame is reachable and its end still reachable are computed (a window
[max(0, L - 2 (T - t)), min(L, 2 (t + 1))) at frame t); the others hold -inf.

Everything is accumulated in float64, float32 log-probabilities included:
the log-sum-exp of three terms costs two exponentials (``cell.exp64``,
vectorisable plain arithmetic) and one logarithm whatever the precision.
"""
import math

import numpy as np
from numba import njit, prange

from ..config import NJIT_OPTIONS
from .cpu import _block, _build, cell

_NEG_INF = -np.inf


def _log_sum3(a, b, c):
    """log(e^a + e^b + e^c) in float64: -inf when all are -inf; NaN when any is NaN."""
    hi = a if a > b else b
    lo = b if a > b else a
    m = hi if hi > c else c
    mid = c if hi > c else hi
    shift = m if m > _NEG_INF else 0.0                     # all -inf: the sum below is 0, its log -inf
    total = cell.exp64(m - shift) + cell.exp64(mid - shift) + cell.exp64(lo - shift)
    out = shift + math.log(total)
    check = a + b + c                                      # NaN iff one of them is NaN (or +inf meets -inf)
    return out if check == check else check


def _extended_labels(targets, b, S, blank, labels, skip):
    """labels[s] = l'_s of sequence b (L = 2S + 1 states); skip[s]: state s may be entered from s - 2."""
    L = 2 * S + 1
    for s in range(L):
        if s % 2 == 0:
            labels[s] = blank
            skip[s] = False
        else:
            labels[s] = targets[b, s // 2]
            skip[s] = s >= 3 and targets[b, s // 2] != targets[b, s // 2 - 1]


def _alpha(log_probs, b, T, L, labels, skip, alpha):
    """alpha[t, s + 2] = log of the probability of the prefixes ending in state s at frame t (columns 0, 1: -inf)."""
    for t in range(T):
        for s in range(L + 2):
            alpha[t, s] = _NEG_INF
    alpha[0, 2] = log_probs[0, b, labels[0]]
    if L > 1:
        alpha[0, 3] = log_probs[0, b, labels[1]]
    for t in range(1, T):
        lo = max(0, L - 2 * (T - t))
        hi = min(L, 2 * (t + 1))
        for s in range(lo, hi):
            two_back = alpha[t - 1, s] if skip[s] else _NEG_INF
            alpha[t, s + 2] = _log_sum3(alpha[t - 1, s + 2], alpha[t - 1, s + 1], two_back) \
                + log_probs[t, b, labels[s]]


def _ctc_loss(log_probs, targets, input_lengths, target_lengths, blank, scales, zero_infinity, losses, grad,
              nchunks):
    """losses[b] = -log p(targets[b] | x_b); grad[t, b] = scales[b] * dlosses[b]/dlog_probs[t, b] for t < T_b.

    log_probs (T, B, C) float; targets (B, S) int64 (row b's first
    target_lengths[b] entries count); input_lengths, target_lengths int64
    (B,); scales float64 (B,); grad (T, B, C) of log_probs' dtype, zeros on
    entry (frames t >= T_b and classes absent from a target stay 0). An
    impossible alignment (p = 0) gives losses[b] = inf and NaN gradient over
    frames t < T_b, or 0 there with ``zero_infinity``.
    """
    T, B, C = log_probs.shape
    S_max = targets.shape[1]
    L_max = 2 * S_max + 1
    for k in prange(nchunks):
        lo, hi = _block(k, nchunks, B)
        alpha = np.empty((T, L_max + 2), np.float64)
        beta = np.empty(L_max + 2, np.float64)           # beta_t(s) at s; columns L, L + 1: -inf
        emitted = np.empty(L_max + 2, np.float64)        # lp[t, l'_s] + beta_t(s)
        occupancy = np.zeros(C, np.float64)
        labels = np.empty(L_max, np.int64)
        skip = np.empty(L_max + 2, np.bool_)
        for b in range(lo, hi):
            Tb = input_lengths[b]
            S = target_lengths[b]
            L = 2 * S + 1
            if Tb == 0:                                  # nothing to emit: p = 1 for the empty target only
                losses[b] = 0.0 if S == 0 else np.inf
                continue
            _extended_labels(targets, b, S, blank, labels, skip)
            skip[L] = False
            skip[L + 1] = False
            _alpha(log_probs, b, Tb, L, labels, skip, alpha)
            last = alpha[Tb - 1, L - 1 + 2]
            log_p = _log_sum3(last, alpha[Tb - 1, L - 2 + 2], _NEG_INF) if L > 1 else last
            losses[b] = -log_p
            if log_p == _NEG_INF:
                if not zero_infinity:
                    for t in range(Tb):
                        for c in range(C):
                            grad[t, b, c] = np.nan
                continue
            scale = scales[b]
            for s in range(L + 2):
                beta[s] = _NEG_INF
            beta[L - 1] = 0.0
            if L > 1:
                beta[L - 2] = 0.0
            for t in range(Tb - 1, -1, -1):
                s_lo = max(0, L - 2 * (Tb - t))
                s_hi = min(L, 2 * (t + 1))
                for s in range(s_lo, s_hi):
                    occupancy[labels[s]] += cell.exp64(alpha[t, s + 2] + beta[s] - log_p)
                for s in range(s_lo, s_hi):
                    c = labels[s]
                    grad[t, b, c] = -(scale * occupancy[c])
                for s in range(s_lo, s_hi):
                    occupancy[labels[s]] = 0.0
                if t == 0:
                    break
                for s in range(L + 2):
                    emitted[s] = _NEG_INF
                for s in range(s_lo, s_hi):
                    emitted[s] = log_probs[t, b, labels[s]] + beta[s]
                # beta_{t-1}(s) over the window of frame t - 1 (beyond it beta is -inf or never read).
                p_lo = max(0, L - 2 * (Tb - t + 1))
                p_hi = min(L, 2 * t)
                for s in range(L):
                    beta[s] = _NEG_INF
                for s in range(p_lo, p_hi):
                    two_ahead = emitted[s + 2] if skip[s + 2] else _NEG_INF
                    beta[s] = _log_sum3(emitted[s], emitted[s + 1], two_ahead)


# Helpers inlined into the kernel; the kernel built parallel and serial (kernels/cpu.py's ``_build``).
_log_sum3 = njit(**NJIT_OPTIONS)(_log_sum3)
_extended_labels = njit(**NJIT_OPTIONS)(_extended_labels)
_alpha = njit(**NJIT_OPTIONS)(_alpha)
_CTC_LOSS = _build(_ctc_loss)


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank, scales, zero_infinity, nchunks=1):
    """(losses float64 (B,), grad (T, B, C) of log_probs' dtype): see ``_ctc_loss``; arrays as it takes them.

    nchunks: blocks of sequences, one per thread (1: the serial build).
    """
    _, B, _ = log_probs.shape
    losses = np.empty(B, np.float64)
    grad = np.zeros(log_probs.shape, log_probs.dtype)
    nchunks = max(1, min(nchunks, B))
    _CTC_LOSS[nchunks > 1](log_probs, targets, input_lengths, target_lengths, blank, scales, zero_infinity,
                           losses, grad, nchunks)
    return losses, grad
