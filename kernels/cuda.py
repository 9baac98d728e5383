"""CUDA kernels: one GRU layer, one direction, over a whole sequence, on the GPU.

The only module of numgru that imports ``numba.cuda`` (swap the CUDA target
package here, in one line). It mirrors ``kernels/cpu.py``: the same step space
(sequence b is at time t = s going forward and t = lengths[b]-1-s in reverse,
finished once s >= lengths[b], its state then carried unchanged), the same
saved gates (r, z, n and n_aux: W_hn h + b_hn for reset_after, r ⊙ h
otherwise) and the same gate formulas: kernels/cell.py's, compiled here as
device functions (float64 Cephes' exp and tanh, float32 Eigen's rational tanh,
chosen by type at compile time), so one compiled function serves both dtypes
and both ``reset_after`` variants, and the GPU's gates give the CPU's bits.

The input projection (all time steps at once) and the weight gradients (after
the time loop) are tiled GEMMs. The recurrence runs in one of two ways:

* ``"step"``: one launch per time step (two for reset_after=False, whose n
  needs r ⊙ h of all units first); one thread per (sequence, unit) computes
  its units' recurrent products and every pointwise gate operation. Works
  everywhere, the CUDA simulator included.
* ``"persistent"``: one cooperative launch runs every step. Block k owns a
  slice of c hidden units and keeps their W_hh rows (forward) or columns
  (backward) in shared memory for the whole sequence; ``grid.sync()``
  separates the steps. Chosen when the slices fit in shared memory and the
  grid is co-resident (``max_cooperative_grid_blocks``); otherwise, or if the
  cooperative kernel cannot be built, ``"auto"`` falls back to ``"step"``.
  Python does no per-step work.

Under ``NUMBA_ENABLE_CUDASIM=1`` the simulator runs these kernels on the CPU
(a cooperative grid is then one block and ``grid.sync()`` a
``syncthreads()``); warp shuffles and votes are not simulated, so none is used.
The array helpers at the end (``asarray``, ``to_host``, ``add`` ...) let the
layers run on device arrays without going through the host.
"""
import warnings

import numpy as np
from numba import cuda
from numba.core import config as _numba_config

from ..config import CUDA_JIT_OPTIONS
from . import cell as _cell_source

SIMULATOR = bool(_numba_config.ENABLE_CUDASIM)
STRATEGIES = ("auto", "step", "persistent")

if SIMULATOR:
    from numba.cuda.simulator.cudadrv.devicearray import is_cuda_ndarray as _is_numba_device_array
else:
    from numba.cuda.cudadrv.devicearray import is_cuda_ndarray as _is_numba_device_array

# Launch geometry. The simulator runs one Python thread per CUDA thread
# (~100 µs each), so it gets small blocks and tiles; the kernels are the same.
_TILE = 4 if SIMULATOR else 16             # GEMM tile edge: blocks of _TILE x _TILE threads
_MAX_THREADS = 32 if SIMULATOR else 256     # threads per block of the other kernels
_SHARED_LIMIT = 48 * 1024                   # bytes of dynamic shared memory without opt-in


def status():
    """(works, why): whether kernels can run in this process (a GPU, or the simulator)."""
    if SIMULATOR:
        return True, "the CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
    try:
        available = cuda.is_available()
    except Exception as err:        # a broken driver or toolkit: say what it was
        return False, f"numba.cuda failed to initialise ({type(err).__name__}: {err})"
    if not available:
        return False, "no CUDA GPU or driver was found (numba.cuda.is_available() is False)"
    return True, "a CUDA GPU"


def _jit(fn=None, **kw):
    return cuda.jit(fn, **CUDA_JIT_OPTIONS, **kw) if fn is not None else \
        (lambda f: cuda.jit(f, **CUDA_JIT_OPTIONS, **kw))


# The scalar maths of the cell (kernels/cell.py) as device functions, called
# as ``cell.gate(...)`` etc.; the simulator runs cell.py's plain Python.
cell = _cell_source if SIMULATOR else _cell_source.build(_jit(device=True), "cuda")


# ------------------------------------------------------- forward, per unit
#
# w is a flattened weight matrix: forward, W_hh transposed, (H, 3H) or a
# block's (H, 3c) slice in shared memory (ld = row length, gs = gate stride,
# col = the unit's column in gate r); backward, W_hh (3H, H) or a block's
# (3H, c) column slice (ld = row length, col = the unit's column).

@_jit(device=True)
def _forward_gates(s, b, j, w, ld, gs, col, xp, b_hh, lengths, reverse, reset_after,
                   hs, gate_r, gate_z, gate_n, n_aux, out):
    """Step s of unit j of sequence b: r and z; n and h' too when reset_after (else n_aux = r ⊙ h)."""
    T = xp.shape[0]
    H = hs.shape[2]
    keep = hs.shape[0] == T + 1
    cur = s if keep else s % 2
    nxt = s + 1 if keep else (s + 1) % 2
    g = s if keep else 0
    if s >= lengths[b]:
        hs[nxt, b, j] = hs[cur, b, j]
        n_aux[g, b, j] = 0
        out[s, b, j] = 0                    # padded times are exactly the finished steps
        return
    t = cell.time_of(s, lengths[b], reverse)
    acc_r = xp.dtype.type(0)
    acc_z = xp.dtype.type(0)
    acc_n = xp.dtype.type(0)
    for k in range(H):
        h = hs[cur, b, k]
        base = k * ld + col
        acc_r += w[base] * h
        acc_z += w[base + gs] * h
        if reset_after:
            acc_n += w[base + 2 * gs] * h
    r = cell.gate(xp[t, b, j], acc_r, b_hh[j])
    z = cell.gate(xp[t, b, H + j], acc_z, b_hh[H + j])
    gate_r[g, b, j] = r
    gate_z[g, b, j] = z
    if reset_after:
        aux, n = cell.new_gate_after(xp[t, b, 2 * H + j], acc_n, b_hh[2 * H + j], r)
        n_aux[g, b, j] = aux
        gate_n[g, b, j] = n
        h = cell.blend(n, z, hs[cur, b, j])
        hs[nxt, b, j] = h
        out[t, b, j] = h
    else:
        n_aux[g, b, j] = cell.reset_state(r, hs[cur, b, j])


@_jit(device=True)
def _forward_new(s, b, j, w, ld, gs, col, xp, b_hh, lengths, reverse, hs, gate_z, gate_n, n_aux, out):
    """reset_after=False, step s, unit j: n = tanh(x_n + W_hn (r ⊙ h) + b_hn) and h', once n_aux is complete."""
    T = xp.shape[0]
    H = hs.shape[2]
    keep = hs.shape[0] == T + 1
    cur = s if keep else s % 2
    nxt = s + 1 if keep else (s + 1) % 2
    g = s if keep else 0
    if s >= lengths[b]:
        return
    t = cell.time_of(s, lengths[b], reverse)
    acc = xp.dtype.type(0)
    for k in range(H):
        acc += w[k * ld + col + 2 * gs] * n_aux[g, b, k]
    n = cell.new_gate_before(xp[t, b, 2 * H + j], acc, b_hh[2 * H + j])
    gate_n[g, b, j] = n
    h = cell.blend(n, gate_z[g, b, j], hs[cur, b, j])
    hs[nxt, b, j] = h
    out[t, b, j] = h


# ------------------------------------------------------ backward, per unit

@_jit(device=True)
def _backward_dh(s1, b, j, w, ld, col, reset_after, d_rz, d_n, dh_direct, dh):
    """dh[b, j] = dh_direct[b, j] + d_rz[s1, b] · W_h(rz)[:, j] (+ d_n[s1, b] · W_hn[:, j])."""
    H = dh.shape[1]
    acc_rz = dh.dtype.type(0)
    for g in range(2 * H):
        acc_rz += d_rz[s1, b, g] * w[g * ld + col]
    v = dh_direct[b, j] + acc_rz
    if reset_after:
        acc_n = dh.dtype.type(0)
        for g in range(H):
            acc_n += d_n[s1, b, g] * w[(2 * H + g) * ld + col]
        v += acc_n
    dh[b, j] = v


@_jit(device=True)
def _unit_gate_grads(s, t, b, j, grad_h, hs, gate_r, gate_z, gate_n, n_aux, reset_after,
                     dh_direct, dxp, d_rz, d_n):
    """Unit j of sequence b at step s (time t): ``cell.gate_grads`` stored (r's waits for W_hn's product
    when not reset_after)."""
    H = dh_direct.shape[1]
    dr_pre, dz_pre, dn_pre, dn_w, direct = cell.gate_grads(
        grad_h, hs[s, b, j], gate_r[s, b, j], gate_z[s, b, j], gate_n[s, b, j], n_aux[s, b, j], reset_after,
        dh_direct.dtype.type(1))
    dh_direct[b, j] = direct
    d_rz[s, b, H + j] = dz_pre
    dxp[t, b, H + j] = dz_pre
    dxp[t, b, 2 * H + j] = dn_pre
    d_n[s, b, j] = dn_w
    if reset_after:
        d_rz[s, b, j] = dr_pre
        dxp[t, b, j] = dr_pre


@_jit(device=True)
def _backward_gates(s, b, j, dout, hs, gate_r, gate_z, gate_n, n_aux, lengths, reverse, reset_after,
                    dh, dh_direct, dxp, d_rz, d_n):
    """Gate gradients of unit j of sequence b at step s from dh[b, j] = dL/dh_{s+1}."""
    H = dh.shape[1]
    if s >= lengths[b]:
        # a finished sequence carries its state: dh passes through; padded times get zero
        dh_direct[b, j] = dh[b, j]
        d_rz[s, b, j] = 0
        d_rz[s, b, H + j] = 0
        d_n[s, b, j] = 0
        dxp[s, b, j] = 0
        dxp[s, b, H + j] = 0
        dxp[s, b, 2 * H + j] = 0
        return
    t = cell.time_of(s, lengths[b], reverse)
    _unit_gate_grads(s, t, b, j, dh[b, j] + dout[t, b, j], hs, gate_r, gate_z, gate_n, n_aux, reset_after,
                     dh_direct, dxp, d_rz, d_n)


@_jit(device=True)
def _backward_reset(s, b, j, w, ld, col, hs, gate_r, lengths, reverse, d_n, dh_direct, dxp, d_rz):
    """reset_after=False, once d_n[s] is complete: d(r ⊙ h) = dn_pre W_hn, then r's gradient."""
    if s >= lengths[b]:
        return
    H = dh_direct.shape[1]
    one = dh_direct.dtype.type(1)
    t = cell.time_of(s, lengths[b], reverse)
    d_rh = dh_direct.dtype.type(0)
    for g in range(H):
        d_rh += d_n[s, b, g] * w[(2 * H + g) * ld + col]
    r = gate_r[s, b, j]
    dr_pre = cell.reset_grad(d_rh, hs[s, b, j], r, one)
    d_rz[s, b, j] = dr_pre
    dxp[t, b, j] = dr_pre
    dh_direct[b, j] += d_rh * r


# ------------------------------------------------ strategy 1: launch per step

@_jit
def _forward_step(s, phase, w_t, xp, b_hh, lengths, reverse, reset_after,
                  hs, gate_r, gate_z, gate_n, n_aux, out):
    """One step (phase 0: r, z [, n, h']; phase 1: n, h' for reset_after=False); thread per (b, j)."""
    i = cuda.grid(1)
    B = hs.shape[1]
    H = hs.shape[2]
    if i < B * H:
        b = i // H
        j = i - b * H
        if phase == 0:
            _forward_gates(s, b, j, w_t, 3 * H, H, j, xp, b_hh, lengths, reverse, reset_after,
                           hs, gate_r, gate_z, gate_n, n_aux, out)
        else:
            _forward_new(s, b, j, w_t, 3 * H, H, j, xp, b_hh, lengths, reverse,
                         hs, gate_z, gate_n, n_aux, out)


@_jit
def _backward_step(s, phase, w, dout, hs, gate_r, gate_z, gate_n, n_aux, lengths, reverse, reset_after,
                   dh, dh_direct, dxp, d_rz, d_n):
    """Phase 0: dh from step s+1, then step s's gates; 1: r's gradient (reset_after=False); 2: dh_0."""
    i = cuda.grid(1)
    T = dout.shape[0]
    B = dh.shape[0]
    H = dh.shape[1]
    if i < B * H:
        b = i // H
        j = i - b * H
        if phase == 0:
            if s < T - 1:
                _backward_dh(s + 1, b, j, w, H, j, reset_after, d_rz, d_n, dh_direct, dh)
            _backward_gates(s, b, j, dout, hs, gate_r, gate_z, gate_n, n_aux, lengths, reverse, reset_after,
                            dh, dh_direct, dxp, d_rz, d_n)
        elif phase == 1:
            _backward_reset(s, b, j, w, H, j, hs, gate_r, lengths, reverse, d_n, dh_direct, dxp, d_rz)
        else:
            _backward_dh(0, b, j, w, H, j, reset_after, d_rz, d_n, dh_direct, dh)


# ------------------------------------- strategy 2: persistent, cooperative

@_jit
def _forward_persistent(w_t, c, xp, b_hh, lengths, reverse, reset_after,
                        hs, gate_r, gate_z, gate_n, n_aux, out):
    """All steps in one launch. Block k owns units [k*c, k*c + c) and keeps their
    W_hh rows, transposed, in shared memory: ws[k*3c + g*c + jj] = W_hh[g*H + j0 + jj, k]."""
    ws = cuda.shared.array(0, w_t.dtype)
    T = xp.shape[0]
    B = hs.shape[1]
    H = hs.shape[2]
    j0 = cuda.blockIdx.x * c
    width = c if j0 + c <= H else H - j0      # (builtin min fails to type on the CUDA target)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    ld = 3 * c
    for idx in range(tid, H * ld, nt):
        k = idx // ld
        rem = idx - k * ld
        gate = rem // c
        jj = rem - gate * c
        if jj < width:
            ws[idx] = w_t[k * 3 * H + gate * H + j0 + jj]
        else:
            ws[idx] = 0
    cuda.syncthreads()
    grid = cuda.cg.this_grid()
    for s in range(T):
        for idx in range(tid, B * width, nt):
            b = idx // width
            jj = idx - b * width
            _forward_gates(s, b, j0 + jj, ws, ld, c, jj, xp, b_hh, lengths, reverse, reset_after,
                           hs, gate_r, gate_z, gate_n, n_aux, out)
        grid.sync()
        if not reset_after:
            for idx in range(tid, B * width, nt):
                b = idx // width
                jj = idx - b * width
                _forward_new(s, b, j0 + jj, ws, ld, c, jj, xp, b_hh, lengths, reverse,
                             hs, gate_z, gate_n, n_aux, out)
            grid.sync()


@_jit
def _backward_persistent(w, c, dout, hs, gate_r, gate_z, gate_n, n_aux, lengths, reverse, reset_after,
                         dh, dh_direct, dxp, d_rz, d_n):
    """BPTT in one launch. Block k owns units [k*c, k*c + c) and keeps their W_hh
    columns in shared memory: wc[g*c + jj] = W_hh[g, j0 + jj]. The thread that
    finishes dh[b, j] is the one that uses it, so only the gate gradients of
    all units need the grid barrier."""
    wc = cuda.shared.array(0, w.dtype)
    T = dout.shape[0]
    B = dh.shape[0]
    H = dh.shape[1]
    j0 = cuda.blockIdx.x * c
    width = c if j0 + c <= H else H - j0      # (builtin min fails to type on the CUDA target)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    for idx in range(tid, 3 * H * c, nt):
        g = idx // c
        jj = idx - g * c
        if jj < width:
            wc[idx] = w[g * H + j0 + jj]
        else:
            wc[idx] = 0
    cuda.syncthreads()
    grid = cuda.cg.this_grid()
    for step in range(T):
        s = T - 1 - step
        for idx in range(tid, B * width, nt):
            b = idx // width
            jj = idx - b * width
            if s < T - 1:
                _backward_dh(s + 1, b, j0 + jj, wc, c, jj, reset_after, d_rz, d_n, dh_direct, dh)
            _backward_gates(s, b, j0 + jj, dout, hs, gate_r, gate_z, gate_n, n_aux, lengths, reverse,
                            reset_after, dh, dh_direct, dxp, d_rz, d_n)
        grid.sync()
        if not reset_after:
            for idx in range(tid, B * width, nt):
                b = idx // width
                jj = idx - b * width
                _backward_reset(s, b, j0 + jj, wc, c, jj, hs, gate_r, lengths, reverse,
                                d_n, dh_direct, dxp, d_rz)
            grid.sync()
    for idx in range(tid, B * width, nt):
        b = idx // width
        jj = idx - b * width
        _backward_dh(0, b, j0 + jj, wc, c, jj, reset_after, d_rz, d_n, dh_direct, dh)


# ------------------------------------------------------- batched products

@_jit
def _gemm(a, b, bias, has_bias, out, trans_a, trans_b):
    """out[m, n] = sum_k A[m, k] B[k, n] (+ bias[n]), A = a.T if trans_a, B = b.T if trans_b.

    Tiled through shared memory; each output element is one thread's sum in a
    fixed order, so results are bit-stable from run to run. The two tiles
    live in one dynamic shared array (launched with 2·_TILE² elements):
    A's tile element (i, j) at tiles[i*_TILE + j], B's at tiles[sb0 + i*_TILE + j].
    (The simulator creates static shared arrays without a lock, so two of a
    block's threads could each get their own; dynamic memory is one buffer.)
    """
    tiles = cuda.shared.array(0, out.dtype)
    sb0 = _TILE * _TILE
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    m0 = cuda.blockIdx.x * _TILE
    n0 = cuda.blockIdx.y * _TILE
    M = out.shape[0]
    N = out.shape[1]
    K = a.shape[0] if trans_a else a.shape[1]
    acc = out.dtype.type(0)
    for k0 in range(0, K, _TILE):
        # A's tile (mm, kk) = A[m0 + mm, k0 + kk] and B's tile (kk, nn) = B[k0 + kk, n0 + nn],
        # loaded so that neighbouring threads read neighbouring addresses
        if trans_a:
            m, k = m0 + tx, k0 + ty
            if m < M and k < K:
                tiles[tx * _TILE + ty] = a[k, m]
            else:
                tiles[tx * _TILE + ty] = 0
        else:
            m, k = m0 + ty, k0 + tx
            if m < M and k < K:
                tiles[ty * _TILE + tx] = a[m, k]
            else:
                tiles[ty * _TILE + tx] = 0
        if trans_b:
            n, k = n0 + ty, k0 + tx
            if n < N and k < K:
                tiles[sb0 + tx * _TILE + ty] = b[n, k]
            else:
                tiles[sb0 + tx * _TILE + ty] = 0
        else:
            n, k = n0 + tx, k0 + ty
            if n < N and k < K:
                tiles[sb0 + ty * _TILE + tx] = b[k, n]
            else:
                tiles[sb0 + ty * _TILE + tx] = 0
        cuda.syncthreads()
        for kk in range(_TILE):
            acc += tiles[ty * _TILE + kk] * tiles[sb0 + kk * _TILE + tx]
        cuda.syncthreads()
    m = m0 + ty
    n = n0 + tx
    if m < M and n < N:
        if has_bias:
            acc += bias[n]
        out[m, n] = acc


@_jit
def _colsum(a, out):
    """out[n] = sum over rows of a[:, n], in row order (one thread per column)."""
    n = cuda.grid(1)
    if n < out.shape[0]:
        acc = out.dtype.type(0)
        for m in range(a.shape[0]):
            acc += a[m, n]
        out[n] = acc


@_jit
def _transpose(src, dst):
    """dst = src.T for 2-D arrays."""
    i = cuda.grid(1)
    if i < dst.size:
        r = i // dst.shape[1]
        c = i - r * dst.shape[1]
        dst[r, c] = src[c, r]


# ---------------------------------------------------- elementwise helpers

@_jit
def _copy(src, dst):
    """dst[...] = src (same shape, any strides, cast to dst's dtype); 1-, 2- or 3-D."""
    i = cuda.grid(1)
    if i < dst.size:
        if dst.ndim == 1:
            dst[i] = src[i]
        elif dst.ndim == 2:
            r = i // dst.shape[1]
            c = i - r * dst.shape[1]
            dst[r, c] = src[r, c]
        else:
            plane = dst.shape[1] * dst.shape[2]
            p = i // plane
            rem = i - p * plane
            r = rem // dst.shape[2]
            c = rem - r * dst.shape[2]
            dst[p, r, c] = src[p, r, c]


@_jit
def _swap01(src, dst):
    """dst[i, j, k] = src[j, i, k] (batch-first <-> time-first)."""
    i = cuda.grid(1)
    if i < dst.size:
        plane = dst.shape[1] * dst.shape[2]
        p = i // plane
        rem = i - p * plane
        r = rem // dst.shape[2]
        c = rem - r * dst.shape[2]
        dst[p, r, c] = src[r, p, c]


@_jit
def _binary(op, a, b, out):
    """Flat contiguous arrays: op 0: out = a + b; 1: out = a * b."""
    i = cuda.grid(1)
    if i < out.shape[0]:
        if op == 0:
            out[i] = a[i] + b[i]
        else:
            out[i] = a[i] * b[i]


@_jit
def _zero_padding(x, lengths, out):
    """out = x (T, B, I) with every step past its sequence's length zeroed."""
    i = cuda.grid(1)
    T, B, I = x.shape
    if i < T * B * I:
        t, b, k = i // (B * I), i // I % B, i % I
        out[t, b, k] = x[t, b, k] if t < lengths[b] else 0


@_jit
def _fill(a, value):
    i = cuda.grid(1)
    if i < a.shape[0]:
        a[i] = value


@_jit
def _count_nonfinite(a, count):
    i = cuda.grid(1)
    if i < a.shape[0]:
        v = a[i]
        if v - v != 0:                      # NaN for ±inf and NaN, 0 for every finite value
            cuda.atomic.add(count, 0, 1)


# -------------------------------------------------------------- launching

def _threads(n):
    """Threads per block for n work items: whole warps on a GPU, no idle threads in the simulator."""
    if SIMULATOR:
        return max(1, min(_MAX_THREADS, n))
    return min(_MAX_THREADS, max(32, -(-n // 32) * 32))


def _launch_flat(kernel, n, *args):
    if n > 0:
        threads = _threads(n)
        kernel[(n + threads - 1) // threads, threads](*args)


def _matmul(a, b, out, trans_a=False, trans_b=False, bias=None):
    M, N = out.shape
    if M == 0 or N == 0:
        return out
    has_bias = bias is not None
    if not has_bias:
        bias = out[0]                       # a placeholder of the right type; never read
    grid = ((M + _TILE - 1) // _TILE, (N + _TILE - 1) // _TILE)
    _gemm[grid, (_TILE, _TILE), 0, 2 * _TILE * _TILE * out.dtype.itemsize](a, b, bias, has_bias, out,
                                                                         trans_a, trans_b)
    return out


_max_blocks_cache = {}
_persistent_broken = {}


def _max_cooperative_blocks(kernel, args, threads, shared):
    """How many blocks of ``threads`` threads and ``shared`` bytes can be co-resident."""
    if SIMULATOR:
        return kernel.overloads[None].max_cooperative_grid_blocks(threads)
    argtypes = tuple(kernel.typeof_pyval(a) for a in args)
    key = (kernel, argtypes, threads, shared)
    if key not in _max_blocks_cache:
        compiled = kernel.compile(argtypes)
        _max_blocks_cache[key] = compiled.max_cooperative_grid_blocks(threads, shared)
    return _max_blocks_cache[key]


def _persistent_plan(kernel, args, B, H, itemsize):
    """(c, blocks, threads, shared bytes) for the persistent kernel, or None if it does not fit.

    The smallest slice width c (the most blocks) whose 3·c·H weights fit in
    shared memory and whose ceil(H / c) blocks are co-resident.
    """
    c = 1
    while True:
        c = min(c, H)
        shared = 3 * c * H * itemsize
        if shared > _SHARED_LIMIT:
            return None
        blocks = -(-H // c)
        threads = _threads(B * c)
        if blocks <= _max_cooperative_blocks(kernel, args, threads, shared):
            return c, blocks, threads, shared
        if c == H:
            return None
        c *= 2


def _run_recurrence(name, kernel, args, B, H, itemsize, strategy, run_steps):
    """Launch the persistent ``kernel`` when chosen and possible, else ``run_steps()``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"CUDA strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy != "step" and name not in _persistent_broken:
        try:
            plan = _persistent_plan(kernel, (args[0], 1) + args[1:], B, H, itemsize)
        except Exception as err:            # e.g. no cudadevrt to link grid sync against
            if strategy == "persistent":
                raise
            _persistent_broken[name] = err
            warnings.warn(f"numgru: the persistent CUDA {name} kernel cannot be built here "
                          f"({type(err).__name__}: {err}); using one launch per time step",
                          RuntimeWarning, stacklevel=3)
            plan = None
        if plan is not None:
            c, blocks, threads, shared = plan
            kernel[blocks, threads, 0, shared](args[0], c, *args[1:])
            return "persistent"
        if strategy == "persistent":
            raise RuntimeError(f"the persistent CUDA {name} kernel does not fit this problem "
                               f"(hidden_size={H}, batch={B}): W_hh slices need more shared memory "
                               "or more co-resident blocks than the GPU has")
    elif strategy == "persistent":
        raise RuntimeError(f"the persistent CUDA {name} kernel cannot be built here: "
                           f"{_persistent_broken[name]}")
    run_steps()
    return "step"


# ------------------------------------------------------------------ wrappers

def forward(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, reverse, reset_after, training, strategy="auto"):
    """One layer-direction over a whole sequence, on device arrays.

    x (T, B, I) C-contiguous; w_ih (3H, I), w_hh (3H, H), b_ih, b_hh (3H,)
    (zeros for no bias) C-contiguous; h0 (B, H); lengths int64 (B,),
    1 <= lengths <= T; all floats of one dtype. Returns out (T, B, H) (zero
    past each length), hn (B, H) and the cache ``backward`` needs (None
    unless ``training``), as ``kernels.cpu.forward`` does.
    """
    T, B, I = x.shape
    H = w_hh.shape[1]
    dtype = x.dtype
    xp = cuda.device_array((T * B, 3 * H), dtype)
    _matmul(x.reshape(T * B, I), w_ih, xp, trans_b=True, bias=b_ih)
    xp = xp.reshape(T, B, 3 * H)

    saved = T if training else 1
    hs = cuda.device_array((T + 1 if training else 2, B, H), dtype)
    copy_into(h0, hs[0])
    gate_r = cuda.device_array((saved, B, H), dtype)
    gate_z = cuda.device_array((saved, B, H), dtype)
    gate_n = cuda.device_array((saved, B, H), dtype)
    n_aux = cuda.device_array((saved, B, H), dtype)
    out = cuda.device_array((T, B, H), dtype)
    w_t = cuda.device_array((H, 3 * H), dtype)
    _launch_flat(_transpose, 3 * H * H, w_hh, w_t)
    w_t = w_t.reshape(3 * H * H)
    args = (w_t, xp, b_hh, lengths, bool(reverse), bool(reset_after), hs, gate_r, gate_z, gate_n, n_aux, out)

    def run_steps():
        threads = _threads(B * H)
        grid = (B * H + threads - 1) // threads
        for s in range(T):
            _forward_step[grid, threads](s, 0, *args)
            if not reset_after:
                _forward_step[grid, threads](s, 1, *args)

    used = _run_recurrence("forward", _forward_persistent, args, B, H, dtype.itemsize, strategy, run_steps)
    hn = cuda.device_array((B, H), dtype)
    copy_into(hs[T if training else T % 2], hn)
    if not training:
        return out, hn, None
    cache = dict(x=x, w_ih=w_ih, w_hh=w_hh, lengths=lengths, reverse=bool(reverse),
                 reset_after=bool(reset_after), hs=hs, gate_r=gate_r, gate_z=gate_z,
                 gate_n=gate_n, n_aux=n_aux, strategy=used)
    return out, hn, cache


def backward(cache, dout, dhn, strategy="auto"):
    """Gradients of one layer-direction from the cache of ``forward``.

    dout (T, B, H) and dhn (B, H) device arrays of any strides, or None (zero).
    Returns dx (T, B, I), dh0 (B, H), dw_ih (3H, I), dw_hh (3H, H), db_ih, db_hh (3H,).
    """
    x, w_ih, w_hh, hs = cache["x"], cache["w_ih"], cache["w_hh"], cache["hs"]
    reset_after = cache["reset_after"]
    T, B, I = x.shape
    H = w_hh.shape[1]
    dtype = x.dtype
    dh = zeros((B, H), dtype) if dhn is None else asarray(dhn, dtype, copy=True)
    if dout is None:
        dout = zeros((T, B, H), dtype)
    dh_direct = cuda.device_array((B, H), dtype)
    dxp = cuda.device_array((T, B, 3 * H), dtype)
    d_rz = cuda.device_array((T, B, 2 * H), dtype)
    d_n = cuda.device_array((T, B, H), dtype)
    w = w_hh.reshape(3 * H * H)
    args = (w, dout, hs, cache["gate_r"], cache["gate_z"], cache["gate_n"], cache["n_aux"],
            cache["lengths"], cache["reverse"], reset_after, dh, dh_direct, dxp, d_rz, d_n)

    def run_steps():
        threads = _threads(B * H)
        grid = (B * H + threads - 1) // threads
        for s in range(T - 1, -1, -1):
            _backward_step[grid, threads](s, 0, *args)
            if not reset_after:
                _backward_step[grid, threads](s, 1, *args)
        _backward_step[grid, threads](0, 2, *args)

    _run_recurrence("backward", _backward_persistent, args, B, H, dtype.itemsize, strategy, run_steps)

    dxp2 = dxp.reshape(T * B, 3 * H)
    d_rz2 = d_rz.reshape(T * B, 2 * H)
    d_n2 = d_n.reshape(T * B, H)
    h_prev = hs[:T].reshape(T * B, H)
    n_input = h_prev if reset_after else cache["n_aux"].reshape(T * B, H)
    dx = _matmul(dxp2, w_ih, cuda.device_array((T * B, I), dtype))
    # A step past a length has dxp = 0, but its input must not reach dW_ih at
    # all, as in a packed sequence: padding of NaN would give 0 * NaN.
    x_read = cuda.device_array((T, B, I), dtype)
    _launch_flat(_zero_padding, T * B * I, x, cache["lengths"], x_read)
    dw_ih = _matmul(dxp2, x_read.reshape(T * B, I), cuda.device_array((3 * H, I), dtype), trans_a=True)
    dw_hh = cuda.device_array((3 * H, H), dtype)
    _matmul(d_rz2, h_prev, dw_hh[:2 * H], trans_a=True)
    _matmul(d_n2, n_input, dw_hh[2 * H:], trans_a=True)
    db_ih = cuda.device_array(3 * H, dtype)
    db_hh = cuda.device_array(3 * H, dtype)
    _launch_flat(_colsum, 3 * H, dxp2, db_ih)
    _launch_flat(_colsum, 2 * H, d_rz2, db_hh[:2 * H])
    _launch_flat(_colsum, H, d_n2, db_hh[2 * H:])
    return dx.reshape(T, B, I), dh, dw_ih, dw_hh, db_ih, db_hh


# --------------------------------------------------- arrays on the device
#
# What the layers need to keep their data on the GPU. Device arrays are
# Numba's; any object with __cuda_array_interface__ (CuPy arrays, PyTorch CUDA
# tensors) is wrapped without a copy.

def is_device_array(value):
    """A Numba device array or any object exposing __cuda_array_interface__."""
    if _is_numba_device_array(value):
        return True
    if SIMULATOR:
        return False
    try:
        return cuda.is_cuda_array(value)
    except Exception:                       # e.g. a PyTorch tensor that requires grad
        return hasattr(value, "detach") and cuda.is_cuda_array(value.detach())


def wrap(value):
    """A Numba device array viewing the same memory (no copy)."""
    if _is_numba_device_array(value):
        return value
    if hasattr(value, "detach") and hasattr(value, "requires_grad"):
        value = value.detach()              # PyTorch refuses the interface on tensors that require grad
    return cuda.as_cuda_array(value)


def asarray(value, dtype, copy=False):
    """``value`` as a C-contiguous device array of ``dtype``: device arrays that
    already are one are used as they are (unless ``copy``); host arrays are copied over."""
    dtype = np.dtype(dtype)
    if is_device_array(value):
        arr = wrap(value)
        if arr.dtype == dtype and arr.is_c_contiguous() and not copy:
            return arr
        out = cuda.device_array(arr.shape, dtype)
        copy_into(arr, out)
        return out
    return cuda.to_device(np.ascontiguousarray(value, dtype=dtype))


def empty(shape, dtype):
    return cuda.device_array(shape, np.dtype(dtype))


def zeros(shape, dtype):
    out = cuda.device_array(shape, np.dtype(dtype))
    fill(out, 0)
    return out


def fill(a, value):
    """a[...] = value, for a C-contiguous device array."""
    flat = a.reshape(a.size)
    _launch_flat(_fill, a.size, flat, flat.dtype.type(value))
    return a


def copy_into(src, dst):
    """dst[...] = src for device arrays of one shape (1-3-D, any strides, any float dtypes)."""
    if tuple(src.shape) != tuple(dst.shape):
        raise ValueError(f"cannot copy an array of shape {tuple(src.shape)} into one of shape {tuple(dst.shape)}")
    _launch_flat(_copy, dst.size, src, dst)
    return dst


def to_host(a):
    """A NumPy copy of a device array."""
    if not a.is_c_contiguous():
        a = asarray(a, a.dtype, copy=True)
    return a.copy_to_host()


def synchronize():
    """Wait for every kernel launched so far (benchmarks time GPU work this way)."""
    cuda.synchronize()


def host_copy(a):
    """A NumPy copy of a device array (``to_host`` always copies)."""
    return to_host(a)


def assign(dst, value):
    """dst[...] = value, in place, from a host array of dst's shape."""
    dst.copy_to_device(np.ascontiguousarray(value, dtype=dst.dtype))


def _binary_op(op, a, b, out):
    n = out.size
    _launch_flat(_binary, n, op, a.reshape(n), b.reshape(n), out.reshape(n))
    return out


def add(a, b):
    """a + b for C-contiguous device arrays of one shape."""
    return _binary_op(0, a, b, cuda.device_array(a.shape, a.dtype))


def add_(dst, src):
    """dst += src, in place."""
    return _binary_op(0, dst, asarray(src, dst.dtype), dst)


def multiply(a, b):
    """a * b for C-contiguous device arrays of one shape."""
    return _binary_op(1, a, b, cuda.device_array(a.shape, a.dtype))


def swap01(a):
    """A C-contiguous copy of a 3-D device array with its first two axes swapped."""
    out = cuda.device_array((a.shape[1], a.shape[0], a.shape[2]), a.dtype)
    _launch_flat(_swap01, out.size, a, out)
    return out


def time_major(a):
    """(B, T, F) -> (T, B, F): a C-contiguous copy (the GPU kernels read C-contiguous arrays)."""
    return swap01(a)


def concatenate_last(arrays):
    """Concatenate 3-D device arrays along their last axis."""
    first = arrays[0]
    widths = [a.shape[2] for a in arrays]
    out = cuda.device_array((first.shape[0], first.shape[1], sum(widths)), first.dtype)
    start = 0
    for a, w in zip(arrays, widths):
        copy_into(a, out[:, :, start:start + w])
        start += w
    return out


def stack(arrays):
    """Stack same-shaped device arrays along a new first axis."""
    out = cuda.device_array((len(arrays),) + tuple(arrays[0].shape), arrays[0].dtype)
    for i, a in enumerate(arrays):
        copy_into(a, out[i])
    return out


def all_finite(a):
    """Whether a C-contiguous device array holds no NaN or inf."""
    count = cuda.to_device(np.zeros(1, np.int64))
    flat = a.reshape(a.size)
    _launch_flat(_count_nonfinite, a.size, flat, count)
    return int(count.copy_to_host()[0]) == 0
