"""CPU kernels: one GRU layer, one direction, over a whole sequence.

The cell's formulas (gate order and weight layout are PyTorch's) are
kernels/cell.py's, compiled here with ``njit``; this module holds the loops,
the blocked products and the threads around them.

Who owns the cores: Numba's threads, in every phase. Each product is split
into ``nchunks`` blocks, one per thread of a ``prange``, and each block runs
numgru's own packed product (a forward; see "packed weights") or calls BLAS
through ``np.dot`` (streams, short calls, the backward); the caller keeps
BLAS single-threaded meanwhile (``numgru.threads``), so the two thread pools
never fight (BASELINES.md).
In the recurrence the blocks are either blocks of hidden units (thread k
multiplies h by the W_hh rows of its units and finishes their gates: one
parallel region a step, two for reset_after=False, whose n needs r ⊙ h of all
units first) or blocks of sequences (thread k runs its own sequences through
every step: one parallel region in all); see "forward" below.

Step space: the recurrence runs over steps s = 0..T-1. Sequence b is at time
t = s going forward and t = lengths[b]-1-s in reverse, and is finished once
s >= lengths[b]. Only the steps that sequences run are computed: per-step
arrays hold packed rows, one per real step (see "Packed rows" below), and a
sequence leaves its state in hn at its own last step. Saved gates are indexed
by step, the input projection by time. Every reduction is a per-thread
partial followed by a serial sum, so the same inputs give the same bits for
a fixed thread count and split.
"""
import glob
import hashlib
import math
import os
import threading
from types import FunctionType

import numpy as np
from numba import carray, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .. import config
from ..config import NJIT_OPTIONS, PRODUCT_NJIT_OPTIONS
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


def _add_matmul_tn(a, b, out, nchunks):
    """out += a.T @ b, a block of 256 of out's rows at a time, the blocks dealt to threads in turn: no
    temporary of out's size, and each block computed alike whatever the thread count (the same bits)."""
    rows = 256
    nblocks = (out.shape[0] + rows - 1) // rows
    for k in prange(nchunks):
        part = np.empty((min(rows, out.shape[0]), out.shape[1]), out.dtype)
        for block in range(k, nblocks, nchunks):
            r0 = block * rows
            r1 = min(r0 + rows, out.shape[0])
            np.dot(np.ascontiguousarray(a[:, r0:r1]).T, b, part[:r1 - r0])
            out[r0:r1] += part[:r1 - r0]


# ----------------------------------------------------------- packed weights
#
# The recurrence multiplies the same W_hh by a new h at every step. BLAS
# packs its operands into its own panels inside every call, which at B <= 64
# moves as many bytes as the product itself; onnxruntime packs its weights
# once (MLAS's PrePack), and so does numgru's forward: ``_pack_gates`` lays
# out each block of units of each gate once per call as panels of PANEL
# columns of W.T, (panels, K, PANEL), and ``_packed_product`` multiplies
# TILE rows of h at a time by a panel, its TILE x PANEL sums held in
# registers (on the stack as far as Numba knows, which LLVM promotes) and
# updated by fused multiply-adds. Measured on one core (float32, the
# product of one step): 4 x 32 runs at 180-190 GFLOP/s for B=16 and 64,
# H=256 and 1024, 1.9-2.9x OpenBLAS's sgemm on the same shapes; 4 x 16 and
# 8 x 16 reach 110-180, 8 x 32 is no faster. Each output is one chain of
# fused multiply-adds over k in order, whatever the tile, the block of units
# or the thread count, so the split does not change its bits.

PANEL = 32      # columns of a panel: two 512-bit vectors of float32
TILE = 4        # rows of h a tile multiplies at once
ROW_BLOCK = 64  # rows of a long product (the input projection) that go through every panel together


@intrinsic
def _tile_sums(typingctx, like):
    """A TILE x PANEL scratch of ``like``'s dtype on the stack (in the function's entry block)."""
    dtype = like.dtype

    def codegen(context, builder, signature, args):
        size = context.get_constant(types.intp, TILE * PANEL)
        return cgutils.alloca_once(builder, context.get_value_type(dtype), size=size)
    return types.CPointer(dtype)(like), codegen


def _pack_rows(w, lo, hi, panels):
    """panels[p, i, j] = w[lo + p*PANEL + j, i] for rows [lo, hi) of w, 0 from hi on: panels (count, K, PANEL)."""
    for p in range(panels.shape[0]):
        for j in range(PANEL):
            row = lo + p * PANEL + j
            if row < hi:
                panels[p, :, j] = w[row]
            else:
                panels[p, :, j] = 0


def _pack_gates(w, nblocks, packed):
    """packed[k, g*P:(g+1)*P] = the panels of gate g's rows of w (3H, K) for block k's units; packed
    (nblocks, 3P, K, PANEL): P panels a gate, the gates' in turn, so that a step's products of all
    three gates are one run of panels. Each thread packs its own block of units, which it is also
    the one to read in a recurrence split by units.
    """
    H = w.shape[0] // 3
    per_gate = packed.shape[1] // 3
    for k in prange(nblocks):
        j0, j1 = _block(k, nblocks, H)
        for g in range(3):
            _pack_rows(w, g * H + j0, g * H + j1, packed[k, g * per_gate:(g + 1) * per_gate])


def _matmul_packed(a, w, bias, out, nchunks):
    """out = a @ w.T + bias, w (N, K) packed here first (every thread's share of its panels), then the
    rows of a split across threads, in blocks of ROW_BLOCK rows whose tiles reuse each panel from L2."""
    N, K = w.shape
    panels = np.empty(((N + PANEL - 1) // PANEL, K, PANEL), w.dtype)
    for k in prange(nchunks):
        lo, hi = _block(k, nchunks, panels.shape[0])
        _pack_rows(w, lo * PANEL, N, panels[lo:hi])
    for k in prange(nchunks):
        lo, hi = _block(k, nchunks, a.shape[0])
        for r0 in range(lo, hi, ROW_BLOCK):
            r1 = min(r0 + ROW_BLOCK, hi)
            _packed_product(a[r0:r1], panels, out[r0:r1])
            for i in range(r0, r1):
                _sum(out[i], bias, out[i])


def _packed_product(a, panels, out):
    """out[r, p*PANEL + j] = sum over k of a[r, k] * panels[p, k, j]: a (rows, K), panels (panels, K, PANEL),
    the columns that ``out`` holds.

    Whole tiles of TILE rows first; each row left over then goes through TILE
    panels at a time, so that it too keeps TILE x PANEL independent sums in
    flight (one panel's would wait on the latency of each multiply-add: at
    B=1 this is the difference between 2.5x and 1.1x onnxruntime's time).
    """
    rows, K = a.shape
    count = panels.shape[0]
    sums = carray(_tile_sums(a), (TILE, PANEL))
    whole = rows - rows % TILE
    for p in range(count):
        w = panels[p]
        for r0 in range(0, whole, TILE):
            sums[:] = 0
            for k in range(K):
                for j in range(PANEL):
                    w_kj = w[k, j]
                    for r in range(TILE):
                        sums[r, j] += a[r0 + r, k] * w_kj
            for r in range(TILE):
                for j in range(min(PANEL, out.shape[1] - p * PANEL)):       # out may end inside a panel
                    out[r0 + r, p * PANEL + j] = sums[r, j]
    for r0 in range(whole, rows):
        for p0 in range(0, count, TILE):
            # TILE panels (the last group repeats its last panel where fewer are left: no slower, since
            # the multiply-adds wait on each other's latency, not on the units)
            left = min(TILE, count - p0)
            w0, w1 = panels[p0], panels[p0 + min(1, left - 1)]
            w2, w3 = panels[p0 + min(2, left - 1)], panels[p0 + min(3, left - 1)]
            sums[:] = 0
            for k in range(K):
                a_rk = a[r0, k]
                for j in range(PANEL):
                    sums[0, j] += a_rk * w0[k, j]
                    sums[1, j] += a_rk * w1[k, j]
                    sums[2, j] += a_rk * w2[k, j]
                    sums[3, j] += a_rk * w3[k, j]
            for q in range(left):
                for j in range(min(PANEL, out.shape[1] - (p0 + q) * PANEL)):
                    out[r0, (p0 + q) * PANEL + j] = sums[q, j]


def _gate_rows(w, packed, blk, j0, c, g0, gates, v, products, scratch):
    """products[i, g, :c] = W[g*H + j0 : g*H + j0 + c] @ v[i] for the gates g in [g0, g0 + gates): v (rows, K).

    From the packed weights (block ``blk`` of ``packed``) where there are any,
    all the gates' panels in one run; else through BLAS into ``scratch`` (a
    stream, too short to pack for), whose (gates, c, rows) result is gathered
    a row per sequence.
    """
    rows = v.shape[0]
    if packed.shape[0] > 0:
        per_gate = packed.shape[1] // 3
        width = products.shape[2]
        flat = products[:rows].reshape(rows, 3 * width)
        _packed_product(v, packed[blk, g0 * per_gate:(g0 + gates) * per_gate], flat[:, g0 * width:])
        return
    H = w.shape[0] // 3
    by_gate = scratch[:gates * c * rows].reshape(gates, c, rows)
    if c == H:
        # every unit: the gates' rows are contiguous and one product does them all
        np.dot(w[g0 * H:(g0 + gates) * H], v.T, by_gate.reshape(gates * H, rows))
    else:
        for g in range(gates):
            np.dot(w[(g0 + g) * H + j0:(g0 + g) * H + j0 + c], v.T, by_gate[g])
    for i in range(rows):
        for g in range(gates):
            for u in range(c):
                products[i, g0 + g, u] = by_gate[g, u, i]


# ------------------------------------------------------------------- forward
#
# A step of the recurrence is done in blocks: the running sequences of a
# block of sequences x hidden units [j0, j1). Threads share it in one of two
# ways (``by_batch``): blocks of units (every step, each thread multiplies h
# by its units' W_hh rows and finishes their gates, then all threads meet,
# since the next step needs every unit) or blocks of sequences (sequences
# never interact, so each thread runs its own from the first step to the
# last, meeting nobody, but multiplies by all of W_hh every step, which pays
# only while a block holds enough sequences; numgru.threads decides).
# Either way a block's step is the same code:
#
# 1. the recurrent products of the units' gate rows of W_h and h, a row of
#    (gates, units) per sequence (``_gate_rows``: packed, or BLAS with the
#    weights on the left, at 16-32 sequences 1.5-2.8x faster than h @ W.T,
#    then gathered into rows);
# 2. the gates, one sequence at a time: each gate is a loop over the units of
#    its row of products with a few arrays only, which
#    LLVM vectorises (one loop over all of them is too many possibly aliased
#    arrays for its run-time checks, and stays scalar: 13.6 against 2 ns per
#    unit at B=32, H=256).
#
# Packed rows: every per-step array holds only the steps that sequences
# really run, in PyTorch's PackedSequence layout kept per block of sequences
# (see ``_packing``). ``rows[s, k]`` is block k's first row at step s and
# ``counts[s, k]`` how many of its sequences run step s: always its first
# ones, so a step's sequences are contiguous rows, and the block's sequence
# i is row rows[s, k] + i at each step s it runs. Saved gates and states
# are indexed by step, the input projection by time (row rows[t, k] + i).

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


def _project_step(s, blk, j0, j1, x, rows, counts, w_ih, not_packed, b_ih, xp, products, scratch):
    """Streams: the projection rows of step s for block ``blk``, units [j0, j1) of every gate, from x[s] (B, I).

    A stream keeps the batch order (position i of a block is sequence rows[0, blk] + i), and its
    weights unpacked (``not_packed``: an empty packing).
    """
    H = xp.shape[1] // 3
    c = j1 - j0
    first = rows[0, blk]
    count = counts[s, blk]
    _gate_rows(w_ih, not_packed, 0, j0, c, 0, 3, x[s, first:first + count], products, scratch)
    for i in range(count):
        row = products[i]
        for g in range(3):
            lo = g * H + j0
            _sum(row[g, :c], b_ih[lo:lo + c], xp[rows[s, blk] + i, lo:lo + c])


def _state_rows(s, blk, rows, batch, keep):
    """Rows of block ``blk``'s states before and after step s and of its saved gates.

    keep (training): each step's own packed rows. Otherwise two sets of
    ``batch`` state rows used in turn and one set of gate rows.
    """
    if keep:
        return rows[s, blk], rows[s + 1, blk], rows[s, blk]
    first = rows[0, blk]
    return s % 2 * batch + first, (s + 1) % 2 * batch + first, first


def _state_after(hs, next_at, i, running_next, hn, b):
    """Where sequence b, block position i, leaves its state: the row the next step reads, or hn after its last step."""
    return hs[next_at + i] if i < running_next else hn[b]


def _step_gates(s, blk, j0, j1, w_hh, packed, ublk, b_hh, xp, order, lengths, counts, rows, reverse, reset_after,
                hs, h_at, next_at, hn, gate_r, gate_z, gate_n, n_aux, g_at, out, products, scratch):
    """Step s for block ``blk``'s running sequences, units [j0, j1) (block ``ublk`` of ``packed``): the
    recurrent products, then the gates.

    h_at, next_at, g_at: from ``_state_rows``. reset_after: all of h'.
    Otherwise r, z and n_aux = r ⊙ h, which W_hn multiplies before
    ``_step_new_gate`` can finish h'. A stream's sequence past its length
    (streams run every sequence every step) carries its state.
    """
    H = hs.shape[1]
    c = j1 - j0
    count = counts[s, blk]
    gates = 3 if reset_after else 2
    _gate_rows(w_hh, packed, ublk, j0, c, 0, gates, hs[h_at:h_at + count], products, scratch)
    for i in range(count):
        b = order[rows[0, blk] + i]
        g = g_at + i
        h_prev = hs[h_at + i, j0:j1]
        h_next = _state_after(hs, next_at, i, counts[s + 1, blk], hn, b)[j0:j1]
        if s >= lengths[b]:
            h_next[:] = h_prev
            n_aux[g, j0:j1] = 0
            continue
        t = cell.time_of(s, lengths[b], reverse)
        row = products[i]
        x_t = xp[rows[t, blk] + i]
        r = gate_r[g, j0:j1]
        z = gate_z[g, j0:j1]
        _sigmoid_of_sum(x_t[j0:j1], row[0, :c], b_hh[j0:j1], r)
        _sigmoid_of_sum(x_t[H + j0:H + j1], row[1, :c], b_hh[H + j0:H + j1], z)
        if reset_after:
            n = gate_n[g, j0:j1]
            _reset_new_gate(x_t[2 * H + j0:2 * H + j1], row[2, :c], b_hh[2 * H + j0:2 * H + j1],
                            r, n_aux[g, j0:j1], n)
            _blend(n, z, h_prev, h_next)
            out[t, b, j0:j1] = h_next
        else:
            _multiply(r, h_prev, n_aux[g, j0:j1])


def _step_new_gate(s, blk, j0, j1, w_hh, packed, ublk, b_hh, xp, order, lengths, counts, rows, reverse,
                   hs, h_at, next_at, hn, gate_z, gate_n, n_aux, g_at, out, products, scratch):
    """reset_after=False, step s: n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn) and h', once every unit's r ⊙ h is in n_aux."""
    H = hs.shape[1]
    c = j1 - j0
    count = counts[s, blk]
    _gate_rows(w_hh, packed, ublk, j0, c, 2, 1, n_aux[g_at:g_at + count], products, scratch)
    for i in range(count):
        b = order[rows[0, blk] + i]
        if s >= lengths[b]:
            continue
        t = cell.time_of(s, lengths[b], reverse)
        g = g_at + i
        n = gate_n[g, j0:j1]
        h_next = _state_after(hs, next_at, i, counts[s + 1, blk], hn, b)[j0:j1]
        _tanh_of_sum(xp[rows[t, blk] + i, 2 * H + j0:2 * H + j1], products[i, 2, :c], b_hh[2 * H + j0:2 * H + j1], n)
        _blend(n, gate_z[g, j0:j1], hs[h_at + i, j0:j1], h_next)
        out[t, b, j0:j1] = h_next


def _forward_recurrence(xp, x, w_ih, b_ih, w_hh, packed, b_hh, order, lengths, counts, rows, reverse, reset_after,
                        keep, hs, hn, gate_r, gate_z, gate_n, n_aux, out, nchunks, by_batch):
    """Run the recurrence over the packed input projection ``xp`` in ``nchunks`` blocks.

    packed: W_hh as ``_pack_gates`` lays it out for the blocks of units (one
    block when split by sequences), or an empty packing: products through BLAS.

    order (B,): the sequence at each block position; counts, rows (T+1,
    blocks): the packed layout (``_packing``; one block of sequences when
    split by units). keep (training): hs and the gates hold every step's
    packed rows, the first B of hs holding h0 (in block order); else hs holds
    2 x B rows used in turn, the first B holding h0, and the gates B rows.
    n_aux is W_hn h + b_hn (reset_after) or r ⊙ h (not), the factor the
    backward needs for W_hn. Each sequence leaves its last state in hn (B, H).

    With an empty ``x`` the caller has filled ``xp``. Otherwise (streaming,
    forward direction only) each step first projects its own input x[s]
    (B, I) into xp with the same per-block products as the recurrence:
    every step then does the same arithmetic however a sequence is cut into calls.
    """
    T = counts.shape[0] - 1
    B = order.shape[0]
    H = hs.shape[1]
    project = x.shape[0] > 0
    widest = counts[0].max()
    c_max = H if by_batch else (H + nchunks - 1) // nchunks
    width = packed.shape[1] // 3 * PANEL if packed.shape[0] > 0 else c_max
    products = np.empty((nchunks, widest, 3, width), xp.dtype)     # a thread's products, a row per sequence
    scratch = np.empty((nchunks, 0 if packed.shape[0] > 0 else 3 * c_max * widest), xp.dtype)
    if by_batch:
        for k in prange(nchunks):
            for s in range(T):
                if counts[s, k] == 0:
                    break
                h_at, next_at, g_at = _state_rows(s, k, rows, B, keep)
                if project:
                    _project_step(s, k, 0, H, x, rows, counts, w_ih, packed[:0], b_ih, xp, products[k], scratch[k])
                _step_gates(s, k, 0, H, w_hh, packed, 0, b_hh, xp, order, lengths, counts, rows, reverse,
                            reset_after, hs, h_at, next_at, hn, gate_r, gate_z, gate_n, n_aux, g_at, out,
                            products[k], scratch[k])
                if not reset_after:
                    _step_new_gate(s, k, 0, H, w_hh, packed, 0, b_hh, xp, order, lengths, counts, rows, reverse,
                                   hs, h_at, next_at, hn, gate_z, gate_n, n_aux, g_at, out, products[k], scratch[k])
    else:
        for s in range(T):
            if counts[s, 0] == 0:
                break
            h_at, next_at, g_at = _state_rows(s, 0, rows, B, keep)
            for k in prange(nchunks):
                j0, j1 = _block(k, nchunks, H)
                if project:
                    _project_step(s, 0, j0, j1, x, rows, counts, w_ih, packed[:0], b_ih, xp, products[k], scratch[k])
                _step_gates(s, 0, j0, j1, w_hh, packed, k, b_hh, xp, order, lengths, counts, rows, reverse,
                            reset_after, hs, h_at, next_at, hn, gate_r, gate_z, gate_n, n_aux, g_at, out,
                            products[k], scratch[k])
            if not reset_after:
                # n needs W_hn (r ⊙ h) over all units: a second region.
                for k in prange(nchunks):
                    j0, j1 = _block(k, nchunks, H)
                    _step_new_gate(s, 0, j0, j1, w_hh, packed, k, b_hh, xp, order, lengths, counts, rows, reverse,
                                   hs, h_at, next_at, hn, gate_z, gate_n, n_aux, g_at, out, products[k], scratch[k])


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


def _dh_step(s, blk, j0, j1, count, reset_after, rows, d_rz, d_n, wt_rz, wt_n, dh_direct, dh, buffer, row):
    """dh = dh_direct + d_rz @ W_h(rz) (+ d_n @ W_hn) from step s's rows, for the first ``count`` sequences of block ``blk``, units [j0, j1)."""
    c = j1 - j0
    parts = 2 if reset_after else 1
    products = _products(buffer, parts, c, count)
    at = rows[s, blk]
    np.dot(wt_rz[j0:j1], d_rz[at:at + count].T, products[0])
    if reset_after:
        np.dot(wt_n[j0:j1], d_n[at:at + count].T, products[1])
    first = rows[0, blk]
    for i in range(count):
        p = first + i
        _gather_row(products, i, row)
        if reset_after:
            _sum3(dh_direct[p, j0:j1], row[0, :c], row[1, :c], dh[p, j0:j1])
        else:
            _sum(dh_direct[p, j0:j1], row[0, :c], dh[p, j0:j1])


def _step_grads(s, blk, j0, j1, dout, dh, hs, gate_r, gate_z, gate_n, n_aux, order, lengths, counts, rows, reverse,
                reset_after, dh_direct, dxp, d_rz, d_n, grads):
    """Gate gradients of block ``blk``'s sequences that run step s, units [j0, j1)."""
    H = dh.shape[1]
    c = j1 - j0
    grads = grads[:5 * c].reshape(5, c)
    for i in range(counts[s, blk]):
        p = rows[0, blk] + i
        b = order[p]
        t = cell.time_of(s, lengths[b], reverse)
        g = rows[s, blk] + i
        x_at = rows[t, blk] + i
        _row_gate_grads(dh[p, j0:j1], dout[t, b, j0:j1], hs[g, j0:j1], gate_r[g, j0:j1],
                        gate_z[g, j0:j1], gate_n[g, j0:j1], n_aux[g, j0:j1], reset_after, grads)
        if reset_after:
            d_rz[g, j0:j1] = grads[0]
            dxp[x_at, j0:j1] = grads[0]
        d_rz[g, H + j0:H + j1] = grads[1]
        dxp[x_at, H + j0:H + j1] = grads[1]
        dxp[x_at, 2 * H + j0:2 * H + j1] = grads[2]
        d_n[g, j0:j1] = grads[3]
        dh_direct[p, j0:j1] = grads[4]


def _step_reset_grads(s, blk, j0, j1, wt_n, d_n, hs, gate_r, order, lengths, counts, rows, reverse, dh_direct, dxp,
                      d_rz, buffer, row):
    """reset_after=False, once d_n of step s is complete: d(r ⊙ h) = dn_pre @ W_hn, then r's gradient."""
    c = j1 - j0
    count = counts[s, blk]
    at = rows[s, blk]
    products = _products(buffer, 1, c, count)
    np.dot(wt_n[j0:j1], d_n[at:at + count].T, products[0])
    for i in range(count):
        p = rows[0, blk] + i
        b = order[p]
        t = cell.time_of(s, lengths[b], reverse)
        g = at + i
        _gather_row(products, i, row)
        _reset_grad(row[0, :c], hs[g, j0:j1], gate_r[g, j0:j1], d_rz[g, j0:j1])
        dxp[rows[t, blk] + i, j0:j1] = d_rz[g, j0:j1]
        _add_product(row[0, :c], gate_r[g, j0:j1], dh_direct[p, j0:j1])


def _backward_recurrence(dout, hs, gate_r, gate_z, gate_n, n_aux, wt_rz, wt_n, order, lengths, counts, rows,
                         reverse, reset_after, dh, dxp, d_rz, d_n, nchunks, by_batch):
    """BPTT over the packed steps saved by ``_forward_recurrence``, in ``nchunks`` blocks split as it was.

    dh (B, H, block order) enters as dL/dhn and leaves as dL/dh0. A
    sequence's dh meets the gradients of the steps after its own last one
    nowhere: only running sequences (a prefix of each block) are updated.
    Writes dxp (packed by time, as the input projection): gradient of the
    input projection; d_rz (packed by step, 2H): of the r and z
    pre-activations; d_n (H): of the W_hn product's output (dn_pre ⊙ r when
    reset_after, dn_pre otherwise). wt_rz (H, 2H) / wt_n (H, H): W_h(rz) and
    W_hn transposed, so that a block's rows give its units' columns.
    """
    T = counts.shape[0] - 1
    B, H = dh.shape
    dtype = dh.dtype
    widest = counts[0].max()
    c_max = H if by_batch else (H + nchunks - 1) // nchunks
    dh_direct = np.empty((B, H), dtype)
    buffer = np.empty((nchunks, 2 * c_max * widest), dtype)
    row = np.empty((nchunks, 3, c_max), dtype)
    grads = np.empty((nchunks, 5 * c_max), dtype)
    if by_batch:
        for k in prange(nchunks):
            for s in range(T - 1, -1, -1):
                if counts[s, k] == 0:
                    continue
                if counts[s + 1, k] > 0:
                    _dh_step(s + 1, k, 0, H, counts[s + 1, k], reset_after, rows, d_rz, d_n, wt_rz, wt_n,
                             dh_direct, dh, buffer[k], row[k])
                _step_grads(s, k, 0, H, dout, dh, hs, gate_r, gate_z, gate_n, n_aux, order, lengths, counts, rows,
                            reverse, reset_after, dh_direct, dxp, d_rz, d_n, grads[k])
                if not reset_after:
                    _step_reset_grads(s, k, 0, H, wt_n, d_n, hs, gate_r, order, lengths, counts, rows, reverse,
                                      dh_direct, dxp, d_rz, buffer[k], row[k])
            _dh_step(0, k, 0, H, counts[0, k], reset_after, rows, d_rz, d_n, wt_rz, wt_n, dh_direct, dh,
                     buffer[k], row[k])
    else:
        for s in range(T - 1, -1, -1):
            if counts[s, 0] == 0:
                continue
            running_next = counts[s + 1, 0]
            for k in prange(nchunks):
                j0, j1 = _block(k, nchunks, H)
                if running_next > 0:
                    # dh for this block's units from step s+1's gate gradients, all complete
                    _dh_step(s + 1, 0, j0, j1, running_next, reset_after, rows, d_rz, d_n, wt_rz, wt_n,
                             dh_direct, dh, buffer[k], row[k])
                _step_grads(s, 0, j0, j1, dout, dh, hs, gate_r, gate_z, gate_n, n_aux, order, lengths, counts, rows,
                            reverse, reset_after, dh_direct, dxp, d_rz, d_n, grads[k])
            if not reset_after:
                # d(r ⊙ h) = dn_pre @ W_hn needs dn_pre of all units: a second region.
                for k in prange(nchunks):
                    j0, j1 = _block(k, nchunks, H)
                    _step_reset_grads(s, 0, j0, j1, wt_n, d_n, hs, gate_r, order, lengths, counts, rows, reverse,
                                      dh_direct, dxp, d_rz, buffer[k], row[k])
        for k in prange(nchunks):
            j0, j1 = _block(k, nchunks, H)
            _dh_step(0, 0, j0, j1, counts[0, 0], reset_after, rows, d_rz, d_n, wt_rz, wt_n, dh_direct, dh,
                     buffer[k], row[k])


# ---------------------------------------------------------------- generation
#
# A language model's continuation in one call, token after token, its state
# never leaving compiled code. A step feeds the current token through every
# layer (one sequence: the threads share each layer's step by blocks of
# hidden units, as the recurrence does, and meet after it), then the head,
# then samples the next token. The first layer's input projection of every
# token, embedding @ W_ih0.T + b_ih0, is one (V, 3H) table computed by the
# caller, so a token's projection is a row of it.

def _sample(logits, allowed, temperature, top_k, u, weights):
    """The token drawn by inverse CDF with the uniform u in [0, 1) from softmax(logits / temperature),
    restricted to the ``allowed`` tokens and among them to the top_k largest (ties with the k-th all kept).

    In float64 whatever the logits' dtype; the weights are exp(scaled - max), so nothing overflows.
    weights (V,) float64 is scratch.
    """
    V = logits.shape[0]
    for v in range(V):
        weights[v] = np.float64(logits[v]) / temperature if allowed[v] else -np.inf
    threshold = np.partition(weights, V - top_k)[V - top_k]
    top = weights.max()
    total = 0.0
    for v in range(V):
        weights[v] = np.exp(weights[v] - top) if weights[v] >= threshold else 0.0
        total += weights[v]
    target = u * total
    cumulative = 0.0
    last = 0
    for v in range(V):
        if weights[v] > 0:
            cumulative += weights[v]
            last = v
            if cumulative > target:
                return v
    return last         # u * total rounded up to total: the last candidate


def _generate(table, w_ih, b_ih, w_hh, b_hh, w_head, b_head, h, token, uniforms, temperature, top_k, allowed,
              tokens, logits, nchunks):
    """``uniforms.shape[0]`` new tokens after ``token``, from the state h (L, H), which is updated in place.

    table (V, 3H): layer 0's input projection of each token (bias included);
    w_ih (L-1, 3H, H), b_ih (L-1, 3H): the layers above it; w_hh (L, 3H, H),
    b_hh (L, 3H); w_head (V, H), b_head (V,). Writes tokens[i] (the i-th new
    token) and logits[i] (the head's output it was drawn from).
    """
    L, H = h.shape
    V = w_head.shape[0]
    dtype = h.dtype
    c_max = (H + nchunks - 1) // nchunks
    not_packed = np.empty((0, 0, H, PANEL), dtype)    # one step a token: too short to pack for
    products = np.empty((nchunks, 1, 3, c_max), dtype)
    scratch = np.empty((nchunks, 3 * c_max), dtype)
    gates = np.empty((nchunks, 4, c_max), dtype)       # a block's r, z, n and aux
    x_part = np.empty(3 * H, dtype)                    # W_ih x + b_ih of a layer above the first
    h_next = np.empty(H, dtype)
    weights = np.empty(V)
    for i in range(uniforms.shape[0]):
        for layer in range(L):
            for k in prange(nchunks):
                j0, j1 = _block(k, nchunks, H)
                c = j1 - j0
                row = products[k, 0]
                if layer == 0:
                    x_gates = table[token]
                else:
                    _gate_rows(w_ih[layer - 1], not_packed, 0, j0, c, 0, 3, h[layer - 1:layer], products[k],
                               scratch[k])
                    for g in range(3):
                        lo = g * H + j0
                        _sum(row[g, :c], b_ih[layer - 1, lo:lo + c], x_part[lo:lo + c])
                    x_gates = x_part
                _gate_rows(w_hh[layer], not_packed, 0, j0, c, 0, 3, h[layer:layer + 1], products[k], scratch[k])
                r, z, n, aux = gates[k, 0, :c], gates[k, 1, :c], gates[k, 2, :c], gates[k, 3, :c]
                _sigmoid_of_sum(x_gates[j0:j1], row[0, :c], b_hh[layer, j0:j1], r)
                _sigmoid_of_sum(x_gates[H + j0:H + j1], row[1, :c], b_hh[layer, H + j0:H + j1], z)
                _reset_new_gate(x_gates[2 * H + j0:2 * H + j1], row[2, :c], b_hh[layer, 2 * H + j0:2 * H + j1],
                                r, aux, n)
                _blend(n, z, h[layer, j0:j1], h_next[j0:j1])
            h[layer] = h_next           # after the region: every block read all of the old state
        for k in prange(nchunks):
            lo, hi = _block(k, nchunks, V)
            if lo < hi:
                np.dot(w_head[lo:hi], h[L - 1], logits[i, lo:hi])
        for v in range(V):
            logits[i, v] += b_head[v]
        token = _sample(logits[i], allowed, temperature, top_k, uniforms[i], weights)
        tokens[i] = token


# ------------------------------------------------------------------ streams

def _stream_chunk(x, w_ih, w_hh, b_ih, b_hh, h, lengths, reset_after, nchunks, by_batch):
    """A chunk of a stream, forward direction, no cache: x (T, B, I); h (B, H) is updated in place.

    Each step projects its own input inside the recurrence, so the numbers do
    not depend on where a stream is cut into calls (for a fixed split: the
    caller's choice must not depend on T). For the same reason every
    sequence runs every step, in the batch order (blocks of consecutive
    sequences): a sequence past its length carries its state. Compiled as a
    whole (its buffers allocated in compiled code) because a streaming step
    is so small that Python-side set-up would cost more than the step.
    """
    T, B, _ = x.shape
    H = h.shape[1]
    dtype = h.dtype
    blocks = nchunks if by_batch else 1
    counts = np.zeros((T + 1, blocks), np.int64)
    rows = np.empty((T + 1, blocks), np.int64)
    for k in range(blocks):
        lo, hi = _block(k, blocks, B)
        for s in range(T + 1):
            counts[s, k] = hi - lo if s < T else 0
            rows[s, k] = s * B + lo
    xp = np.empty((T * B, 3 * H), dtype)
    hs = np.empty((2 * B, H), dtype)
    hs[:B] = h
    gate_r = np.empty((B, H), dtype)
    gate_z = np.empty((B, H), dtype)
    gate_n = np.empty((B, H), dtype)
    n_aux = np.empty((B, H), dtype)
    out = np.zeros((T, B, H), dtype)
    not_packed = np.empty((0, 0, H, PANEL), dtype)     # a call may be one step: too short to pack for
    args = (xp, x, w_ih, b_ih, w_hh, not_packed, b_hh, np.arange(B), lengths, counts, rows, False, reset_after, False,
            hs, h, gate_r, gate_z, gate_n, n_aux, out, nchunks, by_batch)
    if nchunks > 1:
        _forward_parallel(*args)
    else:
        _forward_serial(*args)
    return out


# ----------------------------------------------------------------- embedding
#
# The backward of an embedding lookup adds each token's gradient row into
# the weight row of its id. Ids repeat, so splitting the tokens between
# threads would race on a row; the columns are split instead: each thread
# owns a block of the embedding dimension and runs over every token in
# order, so each entry sums its tokens in the same order whatever the split
# (the same bits at every thread count, the serial build included).

def _embedding_backward(ids, grad, out, padding_idx, nchunks):
    """out[ids[t]] += grad[t] for every token t whose id is not padding_idx (-1: none), by column blocks."""
    for k in prange(nchunks):
        lo, hi = _block(k, nchunks, grad.shape[1])
        for t in range(ids.shape[0]):
            row = ids[t]
            if row != padding_idx:
                for j in range(lo, hi):
                    out[row, j] += grad[t, j]


# ----------------------------------------------------------------- pooling
#
# Max and mean pooling over each sequence's own steps (a text classifier's
# GRU outputs (T, B, F) -> (B, F)); max keeps the step each maximum came
# from for the backward. Blocks of sequences, one per thread; a sequence
# reads only its steps t < lengths[b], in order, so padding never changes a
# bit of its result and costs nothing. NumPy's masked argmax over the time
# axis cost 10 % of a training step.

def _max_pool(out, lengths, pooled, argmax, nchunks):
    """pooled[b] = the max of out[t, b] over t < lengths[b], argmax[b] its step (the first; a NaN wins, as np.argmax)."""
    F = out.shape[2]
    for k in prange(nchunks):
        lo, hi = _block(k, nchunks, out.shape[1])
        for b in range(lo, hi):
            for j in range(F):
                pooled[b, j] = out[0, b, j]
                argmax[b, j] = 0
            for t in range(1, lengths[b]):
                for j in range(F):
                    value = out[t, b, j]
                    best = pooled[b, j]
                    if value > best or (value != value and best == best):
                        pooled[b, j] = value
                        argmax[b, j] = t


def _mean_pool(out, lengths, pooled, nchunks):
    """pooled[b] = the mean of out[t, b] over t < lengths[b], summed in step order."""
    F = out.shape[2]
    for k in prange(nchunks):
        lo, hi = _block(k, nchunks, out.shape[1])
        for b in range(lo, hi):
            for j in range(F):
                pooled[b, j] = out[0, b, j]
            for t in range(1, lengths[b]):
                for j in range(F):
                    pooled[b, j] += out[t, b, j]
            scale = pooled.dtype.type(1) / pooled.dtype.type(lengths[b])
            for j in range(F):
                pooled[b, j] *= scale


def _mean_pool_backward(lengths, dpooled, dout, nchunks):
    """dout[t, b] = dpooled[b] / lengths[b] for t < lengths[b]; dout holds zeros elsewhere."""
    F = dpooled.shape[1]
    for k in prange(nchunks):
        lo, hi = _block(k, nchunks, dpooled.shape[0])
        for b in range(lo, hi):
            scale = dpooled.dtype.type(1) / dpooled.dtype.type(lengths[b])
            for t in range(lengths[b]):
                for j in range(F):
                    dout[t, b, j] = dpooled[b, j] * scale


def _max_pool_backward(argmax, dpooled, dout, nchunks):
    """dout[argmax[b, j], b, j] = dpooled[b, j]; dout holds zeros elsewhere."""
    F = argmax.shape[1]
    for k in prange(nchunks):
        lo, hi = _block(k, nchunks, argmax.shape[0])
        for b in range(lo, hi):
            for j in range(F):
                dout[argmax[b, j], b, j] = dpooled[b, j]


# ---------------------------------------------------------------------- Adam
#
# One Adam (or AdamW) step over a flat parameter, every element read and
# written once: NumPy's dozen whole-array passes cost as much as a
# Seq2Seq's head. The operations are torch's single-tensor Adam's, in its
# order, each rounded to the parameter's dtype (the scalars come cast to it),
# as numgru.optim's NumPy formulas were: the same bits.

def _adam_elements(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, amsgrad, maximize, weight_decay, decay_scale,
                   lerp_weight, lerp_rest, lerp_low, beta2, one_minus_beta2, neg_step_size, bias_correction2_sqrt,
                   eps):
    """The step on every element of these (views of) flat arrays; the flags are loop-invariant, so LLVM
    unswitches them and vectorises each variant's loop (a loop over a block's index range was not)."""
    one = param.dtype.type(1)
    for i in range(param.shape[0]):
        g = -grad[i] if maximize else grad[i]
        p = param[i]
        if decay_scale != one:
            p = p * decay_scale
        elif weight_decay != 0:
            g = g + weight_decay * p
        m = exp_avg[i]
        m = m + lerp_weight * (g - m) if lerp_low else g - (g - m) * lerp_rest
        v = exp_avg_sq[i] * beta2 + one_minus_beta2 * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        if amsgrad:
            largest = max_exp_avg_sq[i]
            if largest > v or largest != largest:           # np.maximum: a NaN wins
                v = largest
            max_exp_avg_sq[i] = v
        param[i] = p + (neg_step_size * m) / (np.sqrt(v) / bias_correction2_sqrt + eps)


def _adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, amsgrad, maximize, weight_decay, decay_scale,
               lerp_weight, lerp_rest, lerp_low, beta2, one_minus_beta2, neg_step_size, bias_correction2_sqrt, eps,
               nchunks):
    """param, grad, exp_avg, exp_avg_sq (and max_exp_avg_sq if amsgrad) flat, updated in place by blocks.

    decay_scale != 1: AdamW's p *= 1 - lr wd first; else weight_decay != 0 adds wd p to the gradient.
    lerp_weight = 1 - beta1 and lerp_rest = beta1, for torch.lerp's two branches (lerp_low: weight < 0.5).
    """
    for k in prange(nchunks):
        lo, hi = _block(k, nchunks, param.shape[0])
        _adam_elements(param[lo:hi], grad[lo:hi], exp_avg[lo:hi], exp_avg_sq[lo:hi],
                       max_exp_avg_sq[lo:hi] if amsgrad else max_exp_avg_sq, amsgrad, maximize, weight_decay,
                       decay_scale, lerp_weight, lerp_rest, lerp_low, beta2, one_minus_beta2, neg_step_size,
                       bias_correction2_sqrt, eps)


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
_products = njit(**NJIT_OPTIONS)(_products)
_packed_product = njit(**PRODUCT_NJIT_OPTIONS)(_packed_product)     # fused multiply-adds: config.py
_gate_rows = njit(**NJIT_OPTIONS)(_gate_rows)
_pack_rows = njit(**NJIT_OPTIONS)(_pack_rows)
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
_sample = njit(**NJIT_OPTIONS)(_sample)
_adam_elements = njit(**NJIT_OPTIONS)(_adam_elements)
_GENERATE = _build(_generate)
_MATMUL_ROWS = _build(_matmul_rows)
_MATMUL_PACKED = _build(_matmul_packed)
_MATMUL_TN = _build(_matmul_tn)
_ADD_MATMUL_TN = _build(_add_matmul_tn)
_PACK_GATES = _build(_pack_gates)
_FORWARD = _build(_forward_recurrence)
_forward_parallel, _forward_serial = _FORWARD[True], _FORWARD[False]     # called by _stream_chunk
_BACKWARD = _build(_backward_recurrence)
_STREAM = _kernel(_stream_chunk)
_EMBEDDING_BACKWARD = _build(_embedding_backward)
_MAX_POOL = _build(_max_pool)
_MAX_POOL_BACKWARD = _build(_max_pool_backward)
_MEAN_POOL = _build(_mean_pool)
_MEAN_POOL_BACKWARD = _build(_mean_pool_backward)
_ADAM_STEP = _build(_adam_step)
# The packed layout's row lookups ("Packed rows" above).
_state_rows = njit(**NJIT_OPTIONS)(_state_rows)
_state_after = njit(**NJIT_OPTIONS)(_state_after)


# ------------------------------------------------------------------ wrappers

_workspaces = threading.local()


def _workspace(name, shape, dtype):
    """An uninitialised array for a temporary that dies within the call, reused across calls by this thread.

    A fresh array of tens of MB comes from the kernel a page at a time, and
    the first writes into it fault, serialised between threads: at B=64,
    H=256 (a 39 MB input projection) the faults made the two-thread forward
    no faster than one thread (75 against 36 ms with the memory reused). Each
    Python thread keeps its own buffer for each ``name`` and dtype, grown to
    the largest size asked for.
    """
    key = (name, np.dtype(dtype))       # np.float32 and dtype('float32') hash apart
    buffers = _workspaces.__dict__
    size = math.prod(shape)
    if key not in buffers or buffers[key].size < size:
        buffers[key] = np.empty(size, dtype)
    return buffers[key][:size].reshape(shape)


def _packing(lengths, T, blocks):
    """The packed layout of a batch for ``blocks`` blocks of sequences: (order, counts, rows, gather).

    Sequences are sorted by length, longest first (stable), and dealt in
    turn to the blocks, so that each block gets a fair share of the work and
    a block's sequences that run step s are its first counts[s, k]. Equal
    lengths keep the batch order, in blocks of consecutive sequences.
    order (B,): the sequence at each block position (block k holds positions
    rows[0, k] onwards); counts, rows (T+1, blocks) as in "Packed rows"
    above, step by step and block by block, like PyTorch's PackedSequence
    (counts[T] = 0, rows[T] = the number of rows). gather: the row
    t * B + b of x (T*B, ...) at each packed row, or None where the packed
    rows are x's first ones as they lie (equal lengths).
    """
    B = lengths.shape[0]
    if (lengths == lengths[0]).all():
        # arithmetic, no (T, B) table: at B=1 this set-up is a good part of a call
        length = int(lengths[0])
        bounds = [k * B // blocks for k in range(blocks + 1)]
        counts = np.zeros((T + 1, blocks), np.int64)
        counts[:length] = [hi - lo for lo, hi in zip(bounds, bounds[1:])]
        rows = np.arange(0, (T + 1) * B, B).reshape(T + 1, 1) + bounds[:-1]
        rows[length:] = length * B
        return np.arange(B), counts, rows, None
    by_length = np.argsort(-lengths, kind="stable")
    dealt = [by_length[k::blocks] for k in range(blocks)]
    order = np.concatenate(dealt)
    starts = np.cumsum([0] + [len(d) for d in dealt[:-1]])
    running = np.arange(T)[:, None] < lengths[order]          # (T, B): step s of position p is real
    counts = np.zeros((T + 1, blocks), np.int64)
    counts[:T] = np.add.reduceat(running, starts, axis=1, dtype=np.int64)
    rows = np.zeros((T + 1) * blocks, np.int64)
    np.cumsum(counts.ravel()[:-1], out=rows[1:])
    rows = rows.reshape(T + 1, blocks)
    steps, positions = np.nonzero(running)                     # row-major: exactly the packed order
    return order, counts, rows, steps * B + order[positions]


def forward(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, reverse, reset_after, training, nchunks, by_batch):
    """One layer-direction over a whole sequence.

    x (T, B, I) C-contiguous; w_ih (3H, I); w_hh (3H, H) C-contiguous;
    b_ih, b_hh (3H,) (zeros for no bias); h0 (B, H); lengths int64 (B,),
    1 <= lengths <= T; all of one float dtype. nchunks: the number of
    threads to split over (1: the serial build, no threads woken); by_batch:
    into blocks of sequences, else of hidden units.
    Only the steps each sequence runs are computed (``_packing``): the
    input projection is one product over their rows.
    Returns out (T, B, H) (zero past each length), hn (B, H), and the cache
    ``backward`` needs (None unless ``training``).
    """
    T, B, I = x.shape
    H = w_hh.shape[1]
    nchunks = max(1, min(nchunks, B if by_batch else H))
    parallel = nchunks > 1
    dtype = x.dtype
    order, counts, rows, gather = _packing(lengths, T, nchunks if by_batch else 1)
    n_rows = int(rows[T, 0])
    x_rows = x.reshape(T * B, I)
    x_rows = x_rows[:n_rows] if gather is None else x_rows[gather]
    xp = _workspace("input projection", (n_rows, 3 * H), dtype)
    if n_rows >= config.PACK_MIN_STEPS:
        _MATMUL_PACKED[parallel](x_rows, w_ih, b_ih, xp, nchunks)
    else:
        _MATMUL_ROWS[parallel](x_rows, w_ih.T, b_ih, xp, nchunks)

    saved = n_rows if training else B
    hs = np.empty((n_rows if training else 2 * B, H), dtype)
    hs[:B] = h0[order]
    gate_r = np.empty((saved, H), dtype)
    gate_z = np.empty((saved, H), dtype)
    gate_n = np.empty((saved, H), dtype)
    n_aux = np.empty((saved, H), dtype)
    hn = np.empty((B, H), dtype)
    out = np.zeros((T, B, H), dtype) if n_rows < T * B else np.empty((T, B, H), dtype)
    _FORWARD[parallel](xp, x[:0], w_ih, b_ih, w_hh, pack_gates(w_hh, 1 if by_batch else nchunks, T), b_hh, order,
                       lengths, counts, rows, reverse, reset_after, training, hs, hn, gate_r, gate_z, gate_n, n_aux,
                       out, nchunks, by_batch)
    if not training:
        return out, hn, None
    cache = dict(x=x_rows, gather=gather, w_ih=w_ih, w_hh=w_hh, order=order, lengths=lengths, counts=counts,
                 rows=rows, reverse=reverse, reset_after=reset_after, hs=hs, gate_r=gate_r, gate_z=gate_z,
                 gate_n=gate_n, n_aux=n_aux, nchunks=nchunks, by_batch=by_batch)
    return out, hn, cache


def pack_gates(w, nblocks, steps):
    """w (3H, K) as ``_pack_gates`` lays it out for ``nblocks`` blocks of units, once a call runs at least
    ``config.PACK_MIN_STEPS`` steps; else an empty packing (the products then go through BLAS)."""
    H, K = w.shape[0] // 3, w.shape[1]
    if steps < config.PACK_MIN_STEPS:
        return np.empty((0, 0, K, PANEL), w.dtype)
    widest_block = -(-H // nblocks)                 # ceilings: a block's units, then its panels
    per_gate = -(-widest_block // PANEL)
    packed = np.empty((nblocks, 3 * per_gate, K, PANEL), w.dtype)
    _PACK_GATES[nblocks > 1](w, nblocks, packed)
    return packed


def stream(x, w_ih, w_hh, b_ih, b_hh, h, lengths, reset_after, nchunks, by_batch):
    """A chunk of a stream: x (T, B, I), w_ih (3H, I), w_hh (3H, H), C-contiguous; b_ih, b_hh (3H,);
    h (B, H), updated in place to the state after the chunk; lengths int64 (B,) in [0, T] (0: that
    sequence has no step in this chunk). nchunks, by_batch: as for ``forward``. Returns out (T, B, H),
    zero past each length.
    """
    nchunks = max(1, min(nchunks, h.shape[0] if by_batch else h.shape[1]))
    return _STREAM(x, w_ih, w_hh, b_ih, b_hh, h, lengths, reset_after, nchunks, by_batch)


def generate(table, w_ih, b_ih, w_hh, b_hh, w_head, b_head, h, token, uniforms, temperature, top_k, allowed,
             nchunks):
    """A language model's continuation of ``token`` from the state h (L, H), updated in place; reset_after GRUs.

    table (V, 3H): embedding @ W_ih0.T + b_ih0; w_ih (L-1, 3H, H) and b_ih
    (L-1, 3H) of the layers above the first; w_hh (L, 3H, H); b_hh (L, 3H);
    w_head (V, H); b_head (V,): C-contiguous, one float dtype. uniforms
    float64 (N,) in [0, 1): one per new token; temperature > 0; top_k in
    [1, V]; allowed bool (V,): the tokens that may be drawn. nchunks: the
    threads sharing each layer's step (1: the serial build).
    Returns tokens int64 (N,) and the logits (N, V) each was drawn from.
    """
    N, (V, H) = uniforms.shape[0], w_head.shape
    tokens = np.empty(N, np.int64)
    logits = np.empty((N, V), h.dtype)
    nchunks = max(1, min(nchunks, H))
    _GENERATE[nchunks > 1](table, w_ih, b_ih, w_hh, b_hh, w_head, b_head, h, np.int64(token), uniforms,
                           float(temperature), int(top_k), allowed, tokens, logits, nchunks)
    return tokens, logits


def backward(cache, dout, dhn, into=None):
    """Gradients of one layer-direction from the cache of ``forward``, split between threads as it was
    (the saved rows are packed for its blocks).

    dout (T, B, H) C-contiguous, dhn (B, H). Returns
    dx (T, B, I), dh0 (B, H), dw_ih (3H, I), dw_hh (3H, H), db_ih, db_hh (3H,).
    into: None, or C-contiguous (3H, I), (3H, H) arrays that the weight
    gradients are added into; dw_ih and dw_hh are then returned as None.
    Every product runs over the packed rows only: a padded position is never
    read (NaN there reaches nothing) and gets exactly zero gradient.
    """
    x_rows, w_ih, w_hh, hs, order = cache["x"], cache["w_ih"], cache["w_hh"], cache["hs"], cache["order"]
    nchunks = cache["nchunks"]
    n_rows, I = x_rows.shape
    T, B, H = dout.shape
    parallel = nchunks > 1
    dtype = x_rows.dtype
    dh = np.asarray(dhn, dtype)[order]
    dxp = np.empty((n_rows, 3 * H), dtype)
    d_rz = np.empty((n_rows, 2 * H), dtype)
    d_n = np.empty((n_rows, H), dtype)
    _BACKWARD[parallel](dout, hs, cache["gate_r"], cache["gate_z"], cache["gate_n"], cache["n_aux"],
                        np.ascontiguousarray(w_hh[:2 * H].T), np.ascontiguousarray(w_hh[2 * H:].T), order,
                        cache["lengths"], cache["counts"], cache["rows"], cache["reverse"], cache["reset_after"],
                        dh, dxp, d_rz, d_n, nchunks, cache["by_batch"])
    dh0 = np.empty_like(dh)
    dh0[order] = dh

    no_bias = np.empty(0, dtype)
    gather = cache["gather"]
    dx = (np.empty if n_rows == T * B else np.zeros)((T * B, I), dtype)
    if gather is None:
        _MATMUL_ROWS[parallel](dxp, w_ih, no_bias, dx[:n_rows], nchunks)
    else:
        dx[gather] = _MATMUL_ROWS[parallel](dxp, w_ih, no_bias, np.empty((n_rows, I), dtype), nchunks)
    # The weight gradients sum over the packed rows. Split over rows, each
    # thread but the first sums into a weight-sized partial; with fewer rows
    # than columns (B=1) that partial outweighs the rows themselves, and one
    # thread does the product instead, straight into ``into`` when given (no
    # weight-sized temporary at all: a training step's peak memory at B=1,
    # H=1024 is mostly these).
    n_input = hs if cache["reset_after"] else cache["n_aux"]
    products = ((dxp, x_rows, 0, 3 * H, 0), (d_rz, hs, 0, 2 * H, 1), (d_n, n_input, 2 * H, 3 * H, 1))
    fresh = (np.empty((3 * H, I), dtype), np.empty((3 * H, H), dtype)) if into is None else (None, None)
    for rows, cols, lo, hi, which in products:
        tn_chunks = nchunks if n_rows >= cols.shape[1] else 1
        if into is not None and tn_chunks == 1:
            _ADD_MATMUL_TN[False](rows, cols, into[which][lo:hi], 1)
        elif into is not None:
            into[which][lo:hi] += _MATMUL_TN[True](rows, cols, np.empty((hi - lo, cols.shape[1]), dtype), tn_chunks)
        else:
            _MATMUL_TN[tn_chunks > 1](rows, cols, fresh[which][lo:hi], tn_chunks)
    dw_ih, dw_hh = fresh
    db_ih = dxp.sum(axis=0)
    db_hh = np.concatenate((d_rz.sum(axis=0), d_n.sum(axis=0)))
    return dx.reshape(T, B, I), dh0, dw_ih, dw_hh, db_ih, db_hh


def matmul(a, b, bias=None, nchunks=1):
    """a @ b (+ bias): a (N, K) C-contiguous, b (K, M) any layout, of one float dtype; rows of a split
    into ``nchunks`` blocks, one per thread (1: the serial build), each block one BLAS call."""
    out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    nchunks = max(1, min(nchunks, a.shape[0]))
    return _MATMUL_ROWS[nchunks > 1](a, b, np.empty(0, a.dtype) if bias is None else bias, out, nchunks)


def add_matmul_tn(a, b, out, nchunks=1):
    """out += a.T @ b: a (N, M), b (N, K) C-contiguous, out (M, K); blocks of out's rows shared by
    ``nchunks`` threads (1: the serial build), the bits the same at any count."""
    _ADD_MATMUL_TN[nchunks > 1](a, b, out, max(1, nchunks))


def embedding_backward(ids_flat, grad_2d, grad_weight, padding_idx, nchunks=1):
    """grad_weight[ids_flat[t]] += grad_2d[t] for every token t, skipping the row padding_idx (None: none).

    ids_flat int64 (n,) in [0, N); grad_2d (n, D) and grad_weight (N, D)
    C-contiguous, of one float dtype. nchunks: the number of column blocks,
    one per thread (1: the serial build); the bits do not depend on it.
    """
    nchunks = max(1, min(nchunks, grad_2d.shape[1]))
    _EMBEDDING_BACKWARD[nchunks > 1](ids_flat, grad_2d, grad_weight, -1 if padding_idx is None else padding_idx,
                                     nchunks)


def max_pool(out, lengths, nchunks=1):
    """(pooled (B, F), argmax int64 (B, F)): the max of out[t, b] over each sequence's steps t < lengths[b].

    out (T, B, F) C-contiguous float; lengths int64 (B,) in [1, T]. nchunks:
    blocks of sequences, one per thread (1: the serial build).
    """
    _, B, F = out.shape
    pooled = np.empty((B, F), out.dtype)
    argmax = np.empty((B, F), np.int64)
    nchunks = max(1, min(nchunks, B))
    _MAX_POOL[nchunks > 1](out, lengths, pooled, argmax, nchunks)
    return pooled, argmax


def mean_pool(out, lengths, nchunks=1):
    """pooled (B, F): the mean of out[t, b] over each sequence's steps t < lengths[b] (arguments as ``max_pool``)."""
    _, B, F = out.shape
    pooled = np.empty((B, F), out.dtype)
    nchunks = max(1, min(nchunks, B))
    _MEAN_POOL[nchunks > 1](out, lengths, pooled, nchunks)
    return pooled


def mean_pool_backward(lengths, dpooled, steps, nchunks=1):
    """The gradient (steps, B, F) of ``mean_pool``'s input: dpooled / lengths at each sequence's steps, zeros after."""
    B, F = dpooled.shape
    dout = np.zeros((steps, B, F), dpooled.dtype)
    nchunks = max(1, min(nchunks, B))
    _MEAN_POOL_BACKWARD[nchunks > 1](lengths, np.ascontiguousarray(dpooled), dout, nchunks)
    return dout


def max_pool_backward(argmax, dpooled, steps, nchunks=1):
    """The gradient (steps, B, F) of ``max_pool``'s input: dpooled (B, F) at the steps in argmax, zeros elsewhere."""
    B, F = argmax.shape
    dout = np.zeros((steps, B, F), dpooled.dtype)
    nchunks = max(1, min(nchunks, B))
    _MAX_POOL_BACKWARD[nchunks > 1](argmax, np.ascontiguousarray(dpooled), dout, nchunks)
    return dout


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, step, lr, betas, eps, weight_decay, decoupled,
              maximize, nchunks=1):
    """One Adam/AdamW step in place on C-contiguous arrays of one float dtype and shape (max_exp_avg_sq: None
    without amsgrad); ``step`` counts this one. nchunks: element blocks, one per thread (1: the serial build)."""
    beta1, beta2 = betas
    cast = param.dtype.type
    amsgrad = max_exp_avg_sq is not None
    flat = [a.reshape(-1) for a in (param, grad, exp_avg, exp_avg_sq)]
    flat.append(max_exp_avg_sq.reshape(-1) if amsgrad else flat[3][:0])
    nchunks = max(1, min(nchunks, flat[0].shape[0]))
    _ADAM_STEP[nchunks > 1](*flat, amsgrad, maximize, cast(0 if decoupled else weight_decay),
                            cast(1 - lr * weight_decay) if decoupled else cast(1), cast(1 - beta1),
                            cast(1 - (1 - beta1)), abs(1 - beta1) < 0.5, cast(beta2), cast(1 - beta2),
                            cast(-lr / (1 - beta1 ** step)), cast((1 - beta2 ** step) ** 0.5), cast(eps), nchunks)
