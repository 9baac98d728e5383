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
blank and differs from l'_{s-2}. At frame t only the states s < 2 (t + 1),
those the first frame reaches, are computed (the others hold -inf), and the
occupancies are gathered over the states that can still reach the end too,
s >= L - 2 (T - t) (below, beta is -inf).

Everything is accumulated in float64, float32 log-probabilities included:
the log-sum-exp of three terms costs two exponentials (``cell.exp64``) and
one logarithm (``_log_sum_of_exps``), both plain arithmetic that LLVM
vectorises along the states of a frame (libm's log would not vectorise), so
float64 costs float32 nothing here.
"""
import numpy as np
from numba import njit, prange

from ..config import NJIT_OPTIONS
from .cell import _bitcasts
from .cpu import _block, _build, cell

float64_bits, float64_from_bits = _bitcasts()

_NEG_INF = -np.inf
_SQRT2 = 1.4142135623730951
_LN2 = 0.6931471805599453
# log(m) = 2 atanh(u) = 2 u (1 + u^2/3 + u^4/5 + ...), u = (m - 1) / (m + 1), |u| <= 0.1716 for m in
# [sqrt(1/2), sqrt(2)]: the terms from u^24 on are below 2e-19 of the sum.
_ATANH_SERIES = tuple(1.0 / (2 * j + 1) for j in range(11, -1, -1))
_MANTISSA = 0x000FFFFFFFFFFFFF
_EXPONENT_ONE = 0x3FF0000000000000


def _log_sum_of_exps(x):
    """log(x) for x = 0 (-inf), NaN (NaN) or x in [1, 3], the sums ``_log_sum3`` takes it of: within 3 ulp.

    x = 2^k m with m in [sqrt(1/2), sqrt(2)), log x = k ln 2 + log m by the
    atanh series; bit casts and selects only, so that loops calling it vectorise.
    """
    bits = float64_bits(x)
    k = (bits >> 52) - 1023
    m = float64_from_bits((bits & _MANTISSA) | _EXPONENT_ONE)      # in [1, 2)
    k = k + 1 if m > _SQRT2 else k
    m = m * 0.5 if m > _SQRT2 else m
    u = (m - 1.0) / (m + 1.0)
    uu = u * u
    series = 0.0
    for c in _ATANH_SERIES:
        series = series * uu + c
    out = k * _LN2 + 2.0 * u * series
    out = _NEG_INF if x == 0.0 else out
    return x if x != x else out


def _log_sum3(a, b, c):
    """log(e^a + e^b + e^c) in float64: -inf when all are -inf; NaN when any is NaN.

    m + log(1 + e^(mid - m) + e^(lo - m)), m the largest: selects only, no
    branch, so that the loops over a frame's states vectorise.
    """
    hi = a if a > b else b
    lo = b if a > b else a
    m = hi if hi > c else c
    mid = c if hi > c else hi                 # a NaN never ends up in m unless c is NaN: it reaches total
    shift = 0.0 if m == _NEG_INF else m
    total = 1.0 + cell.exp64(mid - shift) + cell.exp64(lo - shift)
    out = shift + _log_sum_of_exps(total)
    return _NEG_INF if m == _NEG_INF and total == total else out


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


def _emissions(log_probs, b, T, L, labels, emission):
    """emission[t, s] = log_probs[t, b, l'_s] in float64: gathered once, read by both recursions."""
    for t in range(T):
        for s in range(L):
            emission[t, s] = log_probs[t, b, labels[s]]


def _alpha(emission, T, L, skip, alpha):
    """alpha[t, s + 2] = log of the probability of the prefixes ending in state s at frame t (columns 0, 1: -inf)."""
    for t in range(T):
        for s in range(L + 2):
            alpha[t, s] = _NEG_INF
    alpha[0, 2] = emission[0, 0]
    if L > 1:
        alpha[0, 3] = emission[0, 1]
    for t in range(1, T):
        _alpha_row(alpha[t - 1], alpha[t], emission[t], skip, min(L, 2 * (t + 1)))


# The loops over one frame's states, each a function of its own (written inline in the loop over
# frames, LLVM left them scalar: 20 ns a state against 5), all starting at state 0: started at the
# lower end of the states that can reach the end, a run-time bound, they took 21-35 ns a state
# again, so the states below it are computed too (alpha: their true values, which reach no end;
# beta: -inf).

def _alpha_row(prev, row, e, skip, hi):
    """row[s + 2] = alpha_t(s) for s < hi, from prev (alpha_{t-1}, same layout) and e = emission[t]."""
    for s in range(hi):
        two_back = prev[s] if skip[s] else _NEG_INF
        row[s + 2] = _log_sum3(prev[s + 2], prev[s + 1], two_back) + e[s]


def _beta_row(emitted, beta, skip, hi):
    """beta[s] = beta_{t-1}(s) for s < hi, from emitted[s] = emission[t, s] + beta_t(s)."""
    for s in range(hi):
        two_ahead = emitted[s + 2] if skip[s + 2] else _NEG_INF
        beta[s] = _log_sum3(emitted[s], emitted[s + 1], two_ahead)


def _emitted(e, beta, emitted, hi):
    """emitted[s] = e[s] + beta_t(s) for s < hi, -inf from there on (beta_t is -inf beyond the window)."""
    for s in range(hi):
        emitted[s] = e[s] + beta[s]
    for s in range(hi, emitted.size):
        emitted[s] = _NEG_INF


def _shares(a, beta, log_p, share, hi):
    """share[s] = exp(alpha_t(s) + beta_t(s) - log p) for s < hi; a = alpha[t] (offset 2)."""
    for s in range(hi):
        share[s] = cell.exp64(a[s + 2] + beta[s] - log_p)


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
        emission = np.empty((T, L_max), np.float64)
        share = np.empty(L_max, np.float64)              # exp(alpha_t(s) + beta_t(s) - log p)
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
            _emissions(log_probs, b, Tb, L, labels, emission)
            _alpha(emission, Tb, L, skip, alpha)
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
                _shares(alpha[t], beta, log_p, share, s_hi)
                for s in range(s_lo, s_hi):
                    occupancy[labels[s]] += share[s]
                for s in range(s_lo, s_hi):
                    c = labels[s]
                    grad[t, b, c] = -(scale * occupancy[c])
                for s in range(s_lo, s_hi):
                    occupancy[labels[s]] = 0.0
                if t == 0:
                    break
                _emitted(emission[t], beta, emitted, s_hi)
                _beta_row(emitted, beta, skip, min(L, 2 * t))


# The helpers compiled; the kernel built parallel and serial (kernels/cpu.py's ``_build``). The
# log-sum-exp with inline="always" (inlined by Numba, not left to LLVM): called as a plain compiled
# function, the loops over states calling it stayed scalar, 28 ns a call against 3.5 ns.
_log_sum_of_exps = njit(inline="always", **NJIT_OPTIONS)(_log_sum_of_exps)
_log_sum3 = njit(inline="always", **NJIT_OPTIONS)(_log_sum3)
_extended_labels = njit(**NJIT_OPTIONS)(_extended_labels)
_emissions = njit(**NJIT_OPTIONS)(_emissions)
_alpha_row = njit(**NJIT_OPTIONS)(_alpha_row)
_beta_row = njit(**NJIT_OPTIONS)(_beta_row)
_emitted = njit(**NJIT_OPTIONS)(_emitted)
_shares = njit(**NJIT_OPTIONS)(_shares)
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
