"""CPU kernels: one GRU layer, one direction, over a whole sequence.

The cell's formulas (gate order and weight layout are PyTorch's) are
kernels/cell.py's, compiled here with ``njit``; this module holds the loops,
the blocked products and the threads around them.

Who owns the cores: Numba's threads, in every phase. Each product is split
into ``nchunks`` blocks, one per thread of a ``prange``, and each block calls
BLAS through ``np.dot``; the caller keeps BLAS single-threaded meanwhile
(``numgru.threads``), so the two thread pools never fight (BASELINES.md).
In the recurrence the blocks are either blocks of hidden units (thread k
multiplies h by the W_hh rows of its units and finishes their gates: one
parallel region a step, two for reset_after=False, whose n needs r ⊙ h of all
units first) or blocks of sequences (thread k runs its own sequences through
every step: one parallel region in all); see "forward" below.

Step space: the recurrence runs over steps s = 0..T-1. Sequence b is at time
t = s going forward and t = lengths[b]-1-s in reverse, and is finished once
s >= lengths[b]; from then on its state is carried unchanged, so the final
state is always hs[T]. Saved gates are indexed by step, inputs and outputs by
time. Every reduction is a per-thread partial followed by a serial sum, so the
same inputs give the same bits for a fixed thread count and split.
"""
import glob
import hashlib
import os
from types import FunctionType

import numpy as np
from numba import njit, prange

from ..config import NJIT_OPTIONS
from . import cell as _cell_source

# The scalar maths of the cell (kernels/cell.py), compiled for the CPU: a
# module whose functions the loops below call as ``cell.gate(...)`` etc.
cell = _cell_source.build(njit(**NJIT_OPTIONS), "cpu", NJIT_OPTIONS)


# ---------------------------------------------------------- blocked products
#
# Every kernel is written once and built twice (``_build``): with
# parallel=True, where each ``prange`` iteration is one thread's block, and
# serially, where the same loop runs the blocks in turn. The wrappers take
# the serial build when given one block, which saves the cost of waking
# threads on work too small to share (a streaming step, a tiny batch).

def _block(k, nchunks, size):
    """[lo, hi) of block k when ``size`` items are split into ``nchunks`` near-equal blocks."""
    return k * size // nchunks, (k + 1) * size // nchunks


def _matmul_rows(a, b, bias, out, nchunks):
    """out = a @ b (+ bias), rows split across threads."""
    for k in prange(nchunks):
        lo, hi = _block(k, nchunks, a.shape[0])
        if lo < hi:
            np.dot(a[lo:hi], b, out[lo:hi])
            if bias.shape[0] > 0:
                for i in range(lo, hi):
                    out[i] += bias
    return out


def _matmul_tn(a, b, out, nchunks):
    """out = a.T @ b summed over rows: per-thread partial products, then a serial sum.

    Thread 0 writes straight into ``out`` and the others into partials, so
    the backward's peak memory holds one weight-sized array fewer.
    """
    partial = np.zeros((nchunks - 1, a.shape[1], b.shape[1]), a.dtype)
    for k in prange(nchunks):
        lo, hi = _block(k, nchunks, a.shape[0])
        dest = out if k == 0 else partial[k - 1]
        if lo < hi:
            np.dot(a[lo:hi].T, b[lo:hi], dest)
        else:
            dest[:] = 0
    for k in range(nchunks - 1):
        out += partial[k]
    return out


def _add_matmul_tn(a, b, out):
    """out += a.T @ b on one thread, a block of out's rows at a time: no temporary of out's size."""
    rows = 256
    part = np.empty((min(rows, out.shape[0]), out.shape[1]), out.dtype)
    for r0 in range(0, out.shape[0], rows):
        r1 = min(r0 + rows, out.shape[0])
        block = np.ascontiguousarray(a[:, r0:r1])
        np.dot(block.T, b, part[:r1 - r0])
        out[r0:r1] += part[:r1 - r0]


# ------------------------------------------------------------------- forward
#
# A step of the recurrence is done in blocks: sequences [b0, b1) x hidden
# units [j0, j1). Threads share it in one of two ways (``by_batch``):
# blocks of units (every step, each thread multiplies h by its units' W_hh
# rows and finishes their gates, then all threads meet, since the next step
# needs every unit) or blocks of sequences (sequences never interact, so each
# thread runs its own from the first step to the last, meeting nobody, but
# multiplies by all of W_hh every step, which pays only while a block holds
# enough sequences; numgru.threads decides). Either way a block's step is
# the same code:
#
# 1. the recurrent products W_h[gate rows of the units] @ h[sequences].T, as
#    (gates, units, sequences): weights on the left is the faster GEMM shape
#    (at 16-32 sequences 1.5-2.8x faster than h @ W.T here);
# 2. the gates, one sequence at a time: its products are gathered into a
#    row, then each gate is a loop over the units with a few arrays only, which
#    LLVM vectorises (one loop over all of them is too many possibly aliased
#    arrays for its run-time checks, and stays scalar: 13.6 against 2 ns per
#    unit at B=32, H=256).

def _gate_products(w, v_t, j0, c, gates, out):
    """out[g] = w[g*H + j0 : g*H + j0 + c] @ v_t, (c, columns of v_t), for the first ``gates`` gates.

    When the block holds every unit those rows are contiguous and one product
    does all the gates: at B=1 a call costs about as much as the product itself.
    """
    H = w.shape[0] // 3
    if c == H:
        np.dot(w[:gates * H], v_t, out[:gates].reshape(gates * H, out.shape[2]))
    else:
        for g in range(gates):
            np.dot(w[g * H + j0:g * H + j0 + c], v_t, out[g])


def _products(buffer, gates, c, rows):
    """A block's (gates, c, rows) view of its flat scratch buffer."""
    return buffer[:gates * c * rows].reshape(gates, c, rows)


def _gather_row(products, col, row):
    """row[g, i] = products[g, i, col]: one sequence's products, contiguous for the gate loops."""
    for g in range(products.shape[0]):
        for i in range(products.shape[1]):
            row[g, i] = products[g, i, col]


def _sigmoid_of_sum(a, b, c, dst):
    """r or z of a row of units: dst = σ(a + b + c)."""
    for i in range(dst.shape[0]):
        dst[i] = cell.gate(a[i], b[i], c[i])


def _tanh_of_sum(a, b, c, dst):
    """reset_after=False: n = tanh(a + b + c), b = W_hn (r ⊙ h)."""
    for i in range(dst.shape[0]):
        dst[i] = cell.new_gate_before(a[i], b[i], c[i])


def _reset_new_gate(x_n, rec_n, b_n, r, aux, n):
    """reset_after: aux = W_hn h + b_hn, n = tanh(W_in x + b_in + r ⊙ aux)."""
    for i in range(n.shape[0]):
        aux[i], n[i] = cell.new_gate_after(x_n[i], rec_n[i], b_n[i], r[i])


def _blend(n, z, h_prev, h_next):
    """h' = n + z ⊙ (h − n)."""
    for i in range(h_next.shape[0]):
        h_next[i] = cell.blend(n[i], z[i], h_prev[i])


def _multiply(a, b, dst):
    """reset_after=False: dst = r ⊙ h."""
    for i in range(dst.shape[0]):
        dst[i] = cell.reset_state(a[i], b[i])


def _sum(a, b, dst):
    for i in range(dst.shape[0]):
        dst[i] = a[i] + b[i]


def _project_step(s, b0, b1, j0, j1, x, w_ih, b_ih, xp, buffer, row):
    """Streams: xp[s] for sequences [b0, b1), units [j0, j1) of every gate, from x[s] (B, I)."""
    H = xp.shape[2] // 3
    c = j1 - j0
    products = _products(buffer, 3, c, b1 - b0)
    _gate_products(w_ih, x[s, b0:b1].T, j0, c, 3, products)
    for b in range(b0, b1):
        _gather_row(products, b - b0, row)
        for g in range(3):
            lo = g * H + j0
            _sum(row[g, :c], b_ih[lo:lo + c], xp[s, b, lo:lo + c])


def _step_gates(s, b0, b1, j0, j1, w_hh, b_hh, xp, lengths, reverse, reset_after,
                h_prev, h_next, gate_r, gate_z, gate_n, n_aux, out, g, buffer, row):
    """Step s for sequences [b0, b1) and units [j0, j1): the recurrent products, then the gates.

    reset_after: all of h'. Otherwise r, z and n_aux = r ⊙ h, which W_hn
    multiplies before ``_step_new_gate`` can finish h'. A finished sequence
    carries its state. g: the slot of the saved gates.
    """
    H = h_prev.shape[1]
    c = j1 - j0
    gates = 3 if reset_after else 2
    products = _products(buffer, gates, c, b1 - b0)
    _gate_products(w_hh, h_prev[b0:b1].T, j0, c, gates, products)
    for b in range(b0, b1):
        if s >= lengths[b]:
            h_next[b, j0:j1] = h_prev[b, j0:j1]
            n_aux[g, b, j0:j1] = 0
            continue
        t = cell.time_of(s, lengths[b], reverse)
        _gather_row(products, b - b0, row)
        x_t = xp[t, b]
        r = gate_r[g, b, j0:j1]
        z = gate_z[g, b, j0:j1]
        _sigmoid_of_sum(x_t[j0:j1], row[0, :c], b_hh[j0:j1], r)
        _sigmoid_of_sum(x_t[H + j0:H + j1], row[1, :c], b_hh[H + j0:H + j1], z)
        if reset_after:
            n = gate_n[g, b, j0:j1]
            _reset_new_gate(x_t[2 * H + j0:2 * H + j1], row[2, :c], b_hh[2 * H + j0:2 * H + j1],
                            r, n_aux[g, b, j0:j1], n)
            _blend(n, z, h_prev[b, j0:j1], h_next[b, j0:j1])
            out[t, b, j0:j1] = h_next[b, j0:j1]
        else:
            _multiply(r, h_prev[b, j0:j1], n_aux[g, b, j0:j1])


def _step_new_gate(s, b0, b1, j0, j1, w_hh, b_hh, xp, lengths, reverse,
                   h_prev, h_next, gate_z, gate_n, n_aux, out, g, buffer, row):
    """reset_after=False, step s: n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn) and h', once every unit's r ⊙ h is in n_aux."""
    H = h_prev.shape[1]
    c = j1 - j0
    products = _products(buffer, 1, c, b1 - b0)
    np.dot(w_hh[2 * H + j0:2 * H + j1], n_aux[g, b0:b1].T, products[0])
    for b in range(b0, b1):
        if s >= lengths[b]:
            continue
        t = cell.time_of(s, lengths[b], reverse)
        _gather_row(products, b - b0, row)
        n = gate_n[g, b, j0:j1]
        _tanh_of_sum(xp[t, b, 2 * H + j0:2 * H + j1], row[0, :c], b_hh[2 * H + j0:2 * H + j1], n)
        _blend(n, gate_z[g, b, j0:j1], h_prev[b, j0:j1], h_next[b, j0:j1])
        out[t, b, j0:j1] = h_next[b, j0:j1]


def _forward_recurrence(xp, x, w_ih, b_ih, w_hh, b_hh, lengths, reverse, reset_after,
                        hs, gate_r, gate_z, gate_n, n_aux, out, nchunks, by_batch):
    """Run the recurrence over the input projection ``xp`` (T, B, 3H) in ``nchunks`` blocks.

    hs holds T+1 states when training (else 2, used in turn); gate_*/n_aux
    hold T steps when training (else 1). n_aux is W_hn h + b_hn
    (reset_after) or r ⊙ h (not), the factor the backward needs for W_hn.

    With an empty ``x`` the caller has filled ``xp``. Otherwise (streaming,
    forward direction only) each step first projects its own input x[s]
    (B, I) into xp[s] with the same per-block products as the recurrence:
    every step then does the same arithmetic however a sequence is cut into calls.
    """
    T, B, _ = xp.shape
    H = hs.shape[2]
    keep = hs.shape[0] == T + 1
    project = x.shape[0] > 0
    rows = (B + nchunks - 1) // nchunks if by_batch else B
    c_max = H if by_batch else (H + nchunks - 1) // nchunks
    buffer = np.empty((nchunks, 3 * c_max * rows), xp.dtype)
    row = np.empty((nchunks, 3, c_max), xp.dtype)
    if by_batch:
        for k in prange(nchunks):
            b0, b1 = _block(k, nchunks, B)
            for s in range(T):
                g = s if keep else 0
                h_prev = hs[s if keep else s % 2]
                h_next = hs[s + 1 if keep else (s + 1) % 2]
                if project:
                    _project_step(s, b0, b1, 0, H, x, w_ih, b_ih, xp, buffer[k], row[k])
                _step_gates(s, b0, b1, 0, H, w_hh, b_hh, xp, lengths, reverse, reset_after,
                            h_prev, h_next, gate_r, gate_z, gate_n, n_aux, out, g, buffer[k], row[k])
                if not reset_after:
                    _step_new_gate(s, b0, b1, 0, H, w_hh, b_hh, xp, lengths, reverse,
                                   h_prev, h_next, gate_z, gate_n, n_aux, out, g, buffer[k], row[k])
    else:
        for s in range(T):
            g = s if keep else 0
            h_prev = hs[s if keep else s % 2]
            h_next = hs[s + 1 if keep else (s + 1) % 2]
            for k in prange(nchunks):
                j0, j1 = _block(k, nchunks, H)
                if project:
                    _project_step(s, 0, B, j0, j1, x, w_ih, b_ih, xp, buffer[k], row[k])
                _step_gates(s, 0, B, j0, j1, w_hh, b_hh, xp, lengths, reverse, reset_after,
                            h_prev, h_next, gate_r, gate_z, gate_n, n_aux, out, g, buffer[k], row[k])
            if not reset_after:
                # n needs W_hn (r ⊙ h) over all units: a second region.
                for k in prange(nchunks):
                    j0, j1 = _block(k, nchunks, H)
                    _step_new_gate(s, 0, B, j0, j1, w_hh, b_hh, xp, lengths, reverse,
                                   h_prev, h_next, gate_z, gate_n, n_aux, out, g, buffer[k], row[k])


# ------------------------------------------------------------------ backward
#
# The same blocks and splits as the forward, backwards in steps. A block's
# step: dh for its units from the next step's gate gradients (weights on the
# left again), then its gate gradients one sequence at a time, each a loop
# over the units that writes one scratch array (vectorised; see the forward).

def _row_gate_grads(dh, dout, h, r, z, n, aux, reset_after, grads):
    """grads[:, i] = ``cell.gate_grads`` of unit i of one sequence, with grad_h = dh + dout; grads (5, units)."""
    one = grads.dtype.type(1)
    for i in range(grads.shape[1]):
        dr_pre, dz_pre, dn_pre, d_n, dh_direct = cell.gate_grads(dh[i] + dout[i], h[i], r[i], z[i], n[i], aux[i],
                                                                 reset_after, one)
        grads[0, i] = dr_pre
        grads[1, i] = dz_pre
        grads[2, i] = dn_pre
        grads[3, i] = d_n
        grads[4, i] = dh_direct


def _reset_grad(d_rh, h, r, dr_pre):
    """reset_after=False: dr_pre = dL/d(r ⊙ h) ⊙ h ⊙ r ⊙ (1 − r)."""
    one = dr_pre.dtype.type(1)
    for i in range(dr_pre.shape[0]):
        dr_pre[i] = cell.reset_grad(d_rh[i], h[i], r[i], one)


def _add_product(a, b, dst):
    for i in range(dst.shape[0]):
        dst[i] += a[i] * b[i]


def _sum3(a, b, c, dst):
    for i in range(dst.shape[0]):
        dst[i] = a[i] + b[i] + c[i]


def _dh_step(s, b0, b1, j0, j1, reset_after, d_rz, d_n, wt_rz, wt_n, dh_direct, dh, buffer, row):
    """dh = dh_direct + d_rz[s] @ W_h(rz) (+ d_n[s] @ W_hn) for sequences [b0, b1), units [j0, j1)."""
    c = j1 - j0
    parts = 2 if reset_after else 1
    products = _products(buffer, parts, c, b1 - b0)
    np.dot(wt_rz[j0:j1], d_rz[s, b0:b1].T, products[0])
    if reset_after:
        np.dot(wt_n[j0:j1], d_n[s, b0:b1].T, products[1])
    for b in range(b0, b1):
        _gather_row(products, b - b0, row)
        if reset_after:
            _sum3(dh_direct[b, j0:j1], row[0, :c], row[1, :c], dh[b, j0:j1])
        else:
            _sum(dh_direct[b, j0:j1], row[0, :c], dh[b, j0:j1])


def _step_grads(s, b0, b1, j0, j1, dout, dh, hs, gate_r, gate_z, gate_n, n_aux, lengths, reverse,
                reset_after, dh_direct, dxp, d_rz, d_n, grads):
    """Gate gradients of sequences [b0, b1), units [j0, j1) at step s; a finished sequence passes dh through."""
    H = dh.shape[1]
    c = j1 - j0
    grads = grads[:5 * c].reshape(5, c)
    for b in range(b0, b1):
        if s >= lengths[b]:
            dh_direct[b, j0:j1] = dh[b, j0:j1]
            d_rz[s, b, j0:j1] = 0
            d_rz[s, b, H + j0:H + j1] = 0
            d_n[s, b, j0:j1] = 0
            continue
        t = cell.time_of(s, lengths[b], reverse)
        _row_gate_grads(dh[b, j0:j1], dout[t, b, j0:j1], hs[s, b, j0:j1], gate_r[s, b, j0:j1],
                        gate_z[s, b, j0:j1], gate_n[s, b, j0:j1], n_aux[s, b, j0:j1], reset_after, grads)
        if reset_after:
            d_rz[s, b, j0:j1] = grads[0]
            dxp[t, b, j0:j1] = grads[0]
        d_rz[s, b, H + j0:H + j1] = grads[1]
        dxp[t, b, H + j0:H + j1] = grads[1]
        dxp[t, b, 2 * H + j0:2 * H + j1] = grads[2]
        d_n[s, b, j0:j1] = grads[3]
        dh_direct[b, j0:j1] = grads[4]


def _step_reset_grads(s, b0, b1, j0, j1, wt_n, d_n, hs, gate_r, lengths, reverse, dh_direct, dxp, d_rz,
                      buffer, row):
    """reset_after=False, once d_n[s] is complete: d(r ⊙ h) = dn_pre @ W_hn, then r's gradient."""
    c = j1 - j0
    products = _products(buffer, 1, c, b1 - b0)
    np.dot(wt_n[j0:j1], d_n[s, b0:b1].T, products[0])
    for b in range(b0, b1):
        if s >= lengths[b]:
            continue
        t = cell.time_of(s, lengths[b], reverse)
        _gather_row(products, b - b0, row)
        _reset_grad(row[0, :c], hs[s, b, j0:j1], gate_r[s, b, j0:j1], d_rz[s, b, j0:j1])
        dxp[t, b, j0:j1] = d_rz[s, b, j0:j1]
        _add_product(row[0, :c], gate_r[s, b, j0:j1], dh_direct[b, j0:j1])


def _backward_recurrence(dout, hs, gate_r, gate_z, gate_n, n_aux, wt_rz, wt_n,
                         lengths, reverse, reset_after, dh, dxp, d_rz, d_n, nchunks, by_batch):
    """BPTT over the steps saved by ``_forward_recurrence``, in ``nchunks`` blocks split as it is.

    dh (B, H) enters as dL/dh_T and leaves as dL/dh_0. Writes
    dxp (T, B, 3H, time-indexed, zero where padded): gradient of the input
    projection; d_rz (T, B, 2H, step-indexed): of the r and z pre-activations;
    d_n (T, B, H): of the W_hn product's output (dn_pre ⊙ r when reset_after,
    dn_pre otherwise). wt_rz (H, 2H) / wt_n (H, H): W_h(rz) and W_hn
    transposed, so that a block's rows give its units' columns.
    """
    T, B, H = dout.shape
    dtype = dout.dtype
    rows = (B + nchunks - 1) // nchunks if by_batch else B
    c_max = H if by_batch else (H + nchunks - 1) // nchunks
    dh_direct = np.empty((B, H), dtype)
    buffer = np.empty((nchunks, 2 * c_max * rows), dtype)
    row = np.empty((nchunks, 3, c_max), dtype)
    grads = np.empty((nchunks, 5 * c_max), dtype)
    if by_batch:
        for k in prange(nchunks):
            b0, b1 = _block(k, nchunks, B)
            for s in range(T - 1, -1, -1):
                if s < T - 1:
                    _dh_step(s + 1, b0, b1, 0, H, reset_after, d_rz, d_n, wt_rz, wt_n, dh_direct, dh,
                             buffer[k], row[k])
                _step_grads(s, b0, b1, 0, H, dout, dh, hs, gate_r, gate_z, gate_n, n_aux, lengths, reverse,
                            reset_after, dh_direct, dxp, d_rz, d_n, grads[k])
                if not reset_after:
                    _step_reset_grads(s, b0, b1, 0, H, wt_n, d_n, hs, gate_r, lengths, reverse,
                                      dh_direct, dxp, d_rz, buffer[k], row[k])
            _dh_step(0, b0, b1, 0, H, reset_after, d_rz, d_n, wt_rz, wt_n, dh_direct, dh, buffer[k], row[k])
    else:
        for s in range(T - 1, -1, -1):
            for k in prange(nchunks):
                j0, j1 = _block(k, nchunks, H)
                if s < T - 1:
                    # dh for this block's units from step s+1's gate gradients, all complete
                    _dh_step(s + 1, 0, B, j0, j1, reset_after, d_rz, d_n, wt_rz, wt_n, dh_direct, dh,
                             buffer[k], row[k])
                _step_grads(s, 0, B, j0, j1, dout, dh, hs, gate_r, gate_z, gate_n, n_aux, lengths, reverse,
                            reset_after, dh_direct, dxp, d_rz, d_n, grads[k])
            if not reset_after:
                # d(r ⊙ h) = dn_pre @ W_hn needs dn_pre of all units: a second region.
                for k in prange(nchunks):
                    j0, j1 = _block(k, nchunks, H)
                    _step_reset_grads(s, 0, B, j0, j1, wt_n, d_n, hs, gate_r, lengths, reverse,
                                      dh_direct, dxp, d_rz, buffer[k], row[k])
        for k in prange(nchunks):
            j0, j1 = _block(k, nchunks, H)
            _dh_step(0, 0, B, j0, j1, reset_after, d_rz, d_n, wt_rz, wt_n, dh_direct, dh, buffer[k], row[k])


# ------------------------------------------------------------------ streams

def _stream_chunk(x, w_ih, w_hh, b_ih, b_hh, h, lengths, reset_after, nchunks, by_batch):
    """A chunk of a stream, forward direction, no cache: x (T, B, I); h (B, H) is updated in place.

    Each step projects its own input inside the recurrence, so the numbers do
    not depend on where a stream is cut into calls (for a fixed split: the
    caller's choice must not depend on T). Compiled as a whole (its buffers
    allocated in compiled code) because a streaming step is so small that
    Python-side set-up would cost more than the step.
    """
    T, B, _ = x.shape
    H = h.shape[1]
    dtype = h.dtype
    xp = np.empty((T, B, 3 * H), dtype)
    hs = np.empty((2, B, H), dtype)
    hs[0] = h
    gate_r = np.empty((1, B, H), dtype)
    gate_z = np.empty((1, B, H), dtype)
    gate_n = np.empty((1, B, H), dtype)
    n_aux = np.empty((1, B, H), dtype)
    out = np.zeros((T, B, H), dtype)
    args = (xp, x, w_ih, b_ih, w_hh, b_hh, lengths, False, reset_after, hs, gate_r, gate_z, gate_n, n_aux, out,
            nchunks, by_batch)
    if nchunks > 1:
        _forward_parallel(*args)
    else:
        _forward_serial(*args)
    h[:] = hs[T % 2]
    return out


# ------------------------------------------------------------------ builds

# Kernels (the functions the wrappers call) are cached on disk by Numba: the
# first call in a fresh process then loads them instead of compiling (see
# ``_kernel``). The helpers they call are compiled into them, so not cached.

def _cache_tag():
    """numgru's version and a digest of the compiled sources, as a name suffix: see ``_kernel``."""
    from .. import __version__, config
    digest = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(os.path.dirname(__file__), "*.py"))) + [config.__file__]:
        with open(path, "rb") as source:
            digest.update(source.read())
    return f"numgru_{__version__}_{digest.hexdigest()[:12]}".replace(".", "_").replace("-", "_")


_CACHE_TAG = _cache_tag()


def _kernel(fn, parallel=False):
    """fn compiled as a kernel, cached on disk (a serial build unless ``parallel``).

    Numba names a cache entry after the function's qualified name and
    checks only the timestamp of the function's own file, so each build is
    compiled from a copy named after its build and ``_CACHE_TAG``: a
    parallel and a serial build never share or clobber an entry, and a new
    numgru version or an edit of any kernel source (a callee in cell.py, a
    flag in config.py) misses the cache instead of loading stale code.
    Entries go to ``__pycache__`` beside the source, or, where that is not
    writable (a read-only install), to Numba's user cache directory
    (``NUMBA_CACHE_DIR`` overrides both).
    """
    build = "parallel" if parallel else "serial"
    copy = FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = f"{fn.__qualname__}__{build}__{_CACHE_TAG}"
    copy.__doc__, copy.__module__ = fn.__doc__, fn.__module__
    return njit(parallel=parallel, cache=True, **NJIT_OPTIONS)(copy)


def _build(fn):
    """fn compiled twice from one source: {True: parallel build, False: serial build}, each cached."""
    return {True: _kernel(fn, parallel=True), False: _kernel(fn)}


# Helpers called from inside the kernels: plain compiled functions, inlined by LLVM.
_block = njit(**NJIT_OPTIONS)(_block)
_gate_products = njit(**NJIT_OPTIONS)(_gate_products)
_products = njit(**NJIT_OPTIONS)(_products)
_gather_row = njit(**NJIT_OPTIONS)(_gather_row)
_sigmoid_of_sum = njit(**NJIT_OPTIONS)(_sigmoid_of_sum)
_tanh_of_sum = njit(**NJIT_OPTIONS)(_tanh_of_sum)
_reset_new_gate = njit(**NJIT_OPTIONS)(_reset_new_gate)
_blend = njit(**NJIT_OPTIONS)(_blend)
_multiply = njit(**NJIT_OPTIONS)(_multiply)
_sum = njit(**NJIT_OPTIONS)(_sum)
_project_step = njit(**NJIT_OPTIONS)(_project_step)
_step_gates = njit(**NJIT_OPTIONS)(_step_gates)
_step_new_gate = njit(**NJIT_OPTIONS)(_step_new_gate)
_row_gate_grads = njit(**NJIT_OPTIONS)(_row_gate_grads)
_reset_grad = njit(**NJIT_OPTIONS)(_reset_grad)
_add_product = njit(**NJIT_OPTIONS)(_add_product)
_sum3 = njit(**NJIT_OPTIONS)(_sum3)
_dh_step = njit(**NJIT_OPTIONS)(_dh_step)
_step_grads = njit(**NJIT_OPTIONS)(_step_grads)
_step_reset_grads = njit(**NJIT_OPTIONS)(_step_reset_grads)
_MATMUL_ROWS = _build(_matmul_rows)
_MATMUL_TN = _build(_matmul_tn)
_ADD_MATMUL_TN = _kernel(_add_matmul_tn)
_FORWARD = _build(_forward_recurrence)
_forward_parallel, _forward_serial = _FORWARD[True], _FORWARD[False]     # called by _stream_chunk
_BACKWARD = _build(_backward_recurrence)
_STREAM = _kernel(_stream_chunk)


# ------------------------------------------------------------------ wrappers

def forward(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, reverse, reset_after, training, nchunks, by_batch):
    """One layer-direction over a whole sequence.

    x (T, B, I) C-contiguous; w_ih (3H, I); w_hh (3H, H) C-contiguous;
    b_ih, b_hh (3H,) (zeros for no bias); h0 (B, H); lengths int64 (B,),
    1 <= lengths <= T; all of one float dtype. nchunks: the number of
    threads to split over (1: the serial build, no threads woken); by_batch:
    into blocks of sequences, else of hidden units.
    Returns out (T, B, H) (zero past each length), hn (B, H), and the cache
    ``backward`` needs (None unless ``training``).
    """
    T, B, I = x.shape
    H = w_hh.shape[1]
    nchunks = max(1, min(nchunks, B if by_batch else H))
    parallel = nchunks > 1
    dtype = x.dtype
    xp = np.empty((T * B, 3 * H), dtype)
    _MATMUL_ROWS[parallel](x.reshape(T * B, I), w_ih.T, b_ih, xp, nchunks)
    xp = xp.reshape(T, B, 3 * H)

    saved = T if training else 1
    hs = np.empty((T + 1 if training else 2, B, H), dtype)
    hs[0] = h0
    gate_r = np.empty((saved, B, H), dtype)
    gate_z = np.empty((saved, B, H), dtype)
    gate_n = np.empty((saved, B, H), dtype)
    n_aux = np.empty((saved, B, H), dtype)
    padded = bool((lengths < T).any())
    out = np.zeros((T, B, H), dtype) if padded else np.empty((T, B, H), dtype)
    _FORWARD[parallel](xp, x[:0], w_ih, b_ih, w_hh, b_hh, lengths, reverse, reset_after,
                       hs, gate_r, gate_z, gate_n, n_aux, out, nchunks, by_batch)
    hn = hs[T if training else T % 2].copy()
    if not training:
        return out, hn, None
    cache = dict(x=x, w_ih=w_ih, w_hh=w_hh, lengths=lengths, reverse=reverse,
                 reset_after=reset_after, hs=hs, gate_r=gate_r, gate_z=gate_z,
                 gate_n=gate_n, n_aux=n_aux)
    return out, hn, cache


def stream(x, w_ih, w_hh, b_ih, b_hh, h, lengths, reset_after, nchunks, by_batch):
    """A chunk of a stream: x (T, B, I), w_ih (3H, I), w_hh (3H, H), C-contiguous; b_ih, b_hh (3H,);
    h (B, H), updated in place to the state after the chunk; lengths int64 (B,) in [0, T] (0: that
    sequence has no step in this chunk). nchunks, by_batch: as for ``forward``. Returns out (T, B, H),
    zero past each length.
    """
    nchunks = max(1, min(nchunks, h.shape[0] if by_batch else h.shape[1]))
    return _STREAM(x, w_ih, w_hh, b_ih, b_hh, h, lengths, reset_after, nchunks, by_batch)


def backward(cache, dout, dhn, nchunks, by_batch, into=None):
    """Gradients of one layer-direction from the cache of ``forward``.

    dout (T, B, H) C-contiguous, dhn (B, H). Returns
    dx (T, B, I), dh0 (B, H), dw_ih (3H, I), dw_hh (3H, H), db_ih, db_hh (3H,).
    into: None, or C-contiguous (3H, I), (3H, H) arrays that the weight
    gradients are added into; dw_ih and dw_hh are then returned as None.
    """
    x, w_ih, w_hh, hs = cache["x"], cache["w_ih"], cache["w_hh"], cache["hs"]
    T, B, I = x.shape
    H = w_hh.shape[1]
    nchunks = max(1, min(nchunks, B if by_batch else H))
    parallel = nchunks > 1
    dtype = x.dtype
    dh = np.array(dhn, dtype=dtype, order="C")
    dxp = np.zeros((T, B, 3 * H), dtype)
    d_rz = np.empty((T, B, 2 * H), dtype)
    d_n = np.empty((T, B, H), dtype)
    _BACKWARD[parallel](dout, hs, cache["gate_r"], cache["gate_z"], cache["gate_n"], cache["n_aux"],
                        np.ascontiguousarray(w_hh[:2 * H].T), np.ascontiguousarray(w_hh[2 * H:].T),
                        cache["lengths"], cache["reverse"], cache["reset_after"], dh, dxp, d_rz, d_n,
                        nchunks, by_batch)

    dxp2 = dxp.reshape(T * B, 3 * H)
    h_prev = hs[:T].reshape(T * B, H)
    n_input = h_prev if cache["reset_after"] else cache["n_aux"].reshape(T * B, H)
    lengths = cache["lengths"]
    if (lengths < T).any():
        # A step past a length has dxp = 0, but its input must not reach dW_ih
        # at all, as in a packed sequence: padding of NaN would give 0 * NaN.
        x = np.where((np.arange(T)[:, None] < lengths)[:, :, None], x, 0)
    dx = np.empty((T * B, I), dtype)
    _MATMUL_ROWS[parallel](dxp2, w_ih, np.empty(0, dtype), dx, nchunks)
    # The weight gradients sum over the T*B rows. Split over rows, each thread
    # but the first sums into a weight-sized partial; with fewer rows than
    # columns (B=1) that partial outweighs the rows themselves, and one thread
    # does the product instead, straight into ``into`` when given (no
    # weight-sized temporary at all: a training step's peak memory at B=1,
    # H=1024 is mostly these).
    products = ((dxp2, x.reshape(T * B, I), 0, 3 * H, 0),
                (d_rz.reshape(T * B, 2 * H), h_prev, 0, 2 * H, 1),
                (d_n.reshape(T * B, H), n_input, 2 * H, 3 * H, 1))
    fresh = (np.empty((3 * H, I), dtype), np.empty((3 * H, H), dtype)) if into is None else (None, None)
    for rows, cols, lo, hi, which in products:
        tn_chunks = nchunks if T * B >= cols.shape[1] else 1
        if into is not None and tn_chunks == 1:
            _ADD_MATMUL_TN(rows, cols, into[which][lo:hi])
        elif into is not None:
            into[which][lo:hi] += _MATMUL_TN[True](rows, cols, np.empty((hi - lo, cols.shape[1]), dtype), tn_chunks)
        else:
            _MATMUL_TN[tn_chunks > 1](rows, cols, fresh[which][lo:hi], tn_chunks)
    dw_ih, dw_hh = fresh
    db_ih = dxp2.sum(axis=0)
    db_hh = np.concatenate((d_rz.reshape(T * B, 2 * H).sum(axis=0), d_n.reshape(T * B, H).sum(axis=0)))
    return dx.reshape(T, B, I), dh, dw_ih, dw_hh, db_ih, db_hh
