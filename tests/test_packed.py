"""The packed products of the CPU kernels (kernels/cpu.py, "packed weights"): exact sums, every shape's edge,
bits that do not depend on the split, and the BLAS path for calls too short to pack for."""
import numpy as np
import pytest
from numba import njit

from numgru import config
from numgru.kernels import cpu


@njit
def _product(a, panels, out):
    cpu._packed_product(a, panels, out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 7, 8, 9, 17])
@pytest.mark.parametrize("N, K", [(1, 1), (31, 5), (32, 3), (33, 7), (100, 13), (150, 64), (8 * 32, 2)])
def test_packed_product_is_the_matrix_product(dtype, rows, N, K):
    """Whole tiles, rows left over, groups of panels with fewer than TILE left, and an ``out`` that ends
    inside its last panel: every output is the product, and nothing past ``out``'s columns is written."""
    rng = np.random.default_rng(rows * 1000 + N + K)
    w = rng.standard_normal((N, K)).astype(dtype)
    a = rng.standard_normal((rows, K)).astype(dtype)
    panels = np.full((-(-N // cpu.PANEL), K, cpu.PANEL), np.nan, dtype)
    cpu._pack_rows(w, 0, N, panels)
    assert (panels.reshape(-1, K, cpu.PANEL).transpose(0, 2, 1).reshape(-1, K)[N:] == 0).all()   # zero padding
    wide = np.full((rows, N + 40), -7.0, dtype)
    _product(a, panels, wide[:, :N])
    exact = a.astype(np.float64) @ w.T.astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(w).T.astype(np.float64)
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(wide[:, :N] - exact) <= K * eps * scale + 1e-300)
    assert (wide[:, N:] == -7.0).all()


def _layer(rng, T, B, H, I, dtype):
    x = rng.standard_normal((T, B, I)).astype(dtype)
    w_ih = (rng.standard_normal((3 * H, I)) * 0.3).astype(dtype)
    w_hh = (rng.standard_normal((3 * H, H)) * 0.3).astype(dtype)
    b_ih, b_hh = rng.standard_normal((2, 3 * H)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    lengths = rng.integers(1, T + 1, B)
    lengths[0] = T
    return x, w_ih, w_hh, b_ih, b_hh, h0, lengths


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("T, B, H, I", [(20, 7, 100, 13), (16, 33, 64, 8), (12, 5, 257, 31)])
def test_forward_bits_do_not_depend_on_the_split(dtype, reset_after, T, B, H, I):
    """Each output of a packed product is one chain of multiply-adds in the order of k, so one, two or
    three threads, split by sequences or by hidden units, give the same bits (ragged lengths, H not a
    multiple of the panel width)."""
    assert T >= config.PACK_MIN_STEPS
    args = _layer(np.random.default_rng(T + B + H), T, B, H, I, dtype)
    runs = [cpu.forward(*args, reverse, reset_after, False, nchunks, by_batch)[:2]
            for reverse in (False, True) for nchunks in (1, 2, 3) for by_batch in (True, False)]
    for k in (0, 6):        # forward, reverse
        for out, hn in runs[k:k + 6]:
            assert (out == runs[k][0]).all() and (hn == runs[k][1]).all()


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("reset_after", [True, False])
def test_short_calls_take_blas_and_agree(monkeypatch, dtype, tol, reset_after):
    """Below PACK_MIN_STEPS the products go through BLAS: the same numbers to rounding, the same gradients' cache."""
    T, B, H, I = 9, 6, 40, 5
    args = _layer(np.random.default_rng(3), T, B, H, I, dtype)
    packed = cpu.forward(*args, False, reset_after, True, 2, False)
    assert cpu.pack_gates(args[2], 2, T).shape[0] == 2
    monkeypatch.setattr(config, "PACK_MIN_STEPS", T + 1)
    assert cpu.pack_gates(args[2], 2, T).shape[0] == 0
    blas = cpu.forward(*args, False, reset_after, True, 2, False)
    for got, want in [(packed[0], blas[0]), (packed[1], blas[1])] + [
            (packed[2][key], blas[2][key]) for key in ("hs", "gate_r", "gate_z", "gate_n", "n_aux")]:
        assert np.max(np.abs(got - want)) < tol


def test_workspace_is_reused_and_never_returned():
    """The input projection's buffer is kept per thread and grown, but no result a caller gets lives in it."""
    rng = np.random.default_rng(4)
    big = _layer(rng, 30, 8, 48, 6, np.float32)
    small = _layer(rng, 10, 3, 48, 6, np.float32)
    out_big, hn_big, _ = cpu.forward(*big, False, True, False, 2, False)
    kept = out_big.copy(), hn_big.copy()
    buffer = cpu._workspace("input projection", (1,), np.float32).base
    assert buffer.size >= 30 * 8 * 3 * 48       # the forward's own buffer, whichever way its dtype was named
    out_small, _, _ = cpu.forward(*small, False, True, False, 2, False)
    assert cpu._workspace("input projection", (1,), np.dtype(np.float32)).base is buffer   # reused
    assert (out_big == kept[0]).all() and (hn_big == kept[1]).all()
    assert not np.shares_memory(out_small, buffer) and not np.shares_memory(out_big, buffer)
    again, _, _ = cpu.forward(*big, False, True, False, 2, False)
    assert (again == kept[0]).all()
