"""Both variants against the slow reference, and against central finite differences in float64.

reset_after=False has no torch counterpart, so the reference and finite
differences are its ground truth; reset_after=True is covered here too.
"""
import numpy as np
import pytest

import numgru
from reference import gru_layer_backward, gru_layer_forward, numerical_grad, rel_err

T, B, I, H = 5, 3, 3, 4
UNSORTED = np.array([3, 1, 5])


def layer_weights(rng, bias=True):
    w = [rng.uniform(-0.6, 0.6, s) for s in ((3 * H, I), (3 * H, H), (3 * H,), (3 * H,))]
    return tuple(w) if bias else (w[0], w[1], None, None)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, UNSORTED])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_functional_matches_reference(reset_after, reverse, lengths, bias, dtype, device):
    rng = np.random.default_rng(0)
    weights = layer_weights(rng, bias)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H))
    dout = rng.standard_normal((T, B, H))
    dhn = rng.standard_normal((B, H))
    cast = tuple(None if w is None else w.astype(dtype) for w in weights)
    out, hn, cache = numgru.gru_forward(x, cast, h0, lengths=lengths, reset_after=reset_after,
                                        reverse=reverse, training=True, device=device)
    dx, dh0, dweights = numgru.gru_backward(cache, dout, dhn)

    r_out, r_hn, r_cache = gru_layer_forward(x, *weights, h0, lengths=lengths, reverse=reverse,
                                             reset_after=reset_after)
    r_dx, r_dh0, *r_dweights = gru_layer_backward(r_cache, dout, dhn)
    tol = 1e-10 if dtype == "float64" else 1e-5
    for got, want in ((out, r_out), (hn, r_hn), (dx, r_dx), (dh0, r_dh0)):
        assert got.dtype == np.dtype(dtype)
        assert rel_err(got, want) < tol
    for got, want in zip(dweights, r_dweights):
        if got is None:
            assert not bias
        else:
            assert rel_err(got, want) < tol


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
def test_functional_matches_finite_differences(reset_after, reverse, device):
    rng = np.random.default_rng(1)
    w_ih, w_hh, b_ih, b_hh = layer_weights(rng)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H))
    R1 = rng.standard_normal((T, B, H))
    R2 = rng.standard_normal((B, H))

    def loss():
        out, hn, _ = numgru.gru_forward(x, (w_ih, w_hh, b_ih, b_hh), h0, lengths=UNSORTED,
                                        reset_after=reset_after, reverse=reverse, device=device)
        return float((out * R1).sum() + (hn * R2).sum())

    _, _, cache = numgru.gru_forward(x, (w_ih, w_hh, b_ih, b_hh), h0, lengths=UNSORTED,
                                     reset_after=reset_after, reverse=reverse, training=True, device=device)
    dx, dh0, (dw_ih, dw_hh, db_ih, db_hh) = numgru.gru_backward(cache, R1, R2)
    for analytic, arr in ((dx, x), (dh0, h0), (dw_ih, w_ih), (dw_hh, w_hh), (db_ih, b_ih), (db_hh, b_hh)):
        assert rel_err(analytic, numerical_grad(loss, arr)) < 1e-7


@pytest.mark.parametrize("reset_after", [True, False])
def test_stack_matches_finite_differences(reset_after):
    """A 2-layer bidirectional GRU with dropout in training mode: the same mask is redrawn
    for every finite-difference evaluation by reseeding, so the loss is a fixed function."""
    rng = np.random.default_rng(2)
    gru = numgru.GRU(I, H, num_layers=2, bidirectional=True, dropout=0.3, reset_after=reset_after,
                     dtype="float64", seed=0)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((4, B, H))
    R1 = rng.standard_normal((T, B, 2 * H))
    R2 = rng.standard_normal((4, B, H))

    def run():
        gru._rng = np.random.default_rng(99)     # the same dropout mask every time
        return gru(x, h0=h0, lengths=UNSORTED)

    def loss():
        out, hn = run()
        return float((out * R1).sum() + (hn * R2).sum())

    run()
    dx, dh0 = gru.backward(R1, R2)
    assert rel_err(dx, numerical_grad(loss, x)) < 1e-7
    assert rel_err(dh0, numerical_grad(loss, h0)) < 1e-7
    for name, param in gru.parameters().items():
        assert rel_err(gru.grads[name], numerical_grad(loss, param)) < 1e-7, name


def test_padded_positions_get_exactly_zero(device):
    rng = np.random.default_rng(3)
    gru = numgru.GRU(I, H, bidirectional=True, dtype="float64", seed=1, device=device)
    x = rng.standard_normal((T, B, I))
    out, _ = gru(x, lengths=UNSORTED)
    dx, _ = gru.backward(rng.standard_normal(out.shape))
    for b, length in enumerate(UNSORTED):
        assert np.all(out[length:, b] == 0)
        assert np.all(dx[length:, b] == 0)
        assert np.all(dx[:length, b] != 0)


def test_padding_never_reaches_the_gradients(device):
    # As in a packed sequence, values past a length are never read: NaN there
    # gives the same gradients as zeros (dW_ih once summed 0 * NaN).
    rng = np.random.default_rng(5)
    x = rng.standard_normal((T, B, I))
    dout = rng.standard_normal((T, B, 2 * H))
    grads = []
    for padding in (0.0, np.nan):
        gru = numgru.GRU(I, H, bidirectional=True, dtype="float64", seed=1, device=device)
        padded = x.copy()
        for b, length in enumerate(UNSORTED):
            padded[length:, b] = padding
        gru(padded, lengths=UNSORTED)
        dx, dh0 = gru.backward(dout)
        grads.append((dx, dh0, gru.grads))
    (dx0, dh00, grads0), (dx1, dh01, grads1) = grads
    np.testing.assert_array_equal(dx1, dx0)
    np.testing.assert_array_equal(dh01, dh00)
    for name in grads0:
        np.testing.assert_array_equal(grads1[name], grads0[name], err_msg=name)


def test_gradients_accumulate_and_zero_grad():
    rng = np.random.default_rng(4)
    gru = numgru.GRU(I, H, dtype="float64", seed=1)
    x = rng.standard_normal((T, B, I))
    dout = rng.standard_normal((T, B, H))
    gru(x)
    gru.backward(dout)
    once = {k: v.copy() for k, v in gru.grads.items()}
    gru(x)
    gru.backward(dout)
    for name in once:
        np.testing.assert_allclose(gru.grads[name], 2 * once[name], rtol=1e-12)
    gru.zero_grad()
    assert all(np.all(g == 0) for g in gru.grads.values())


@pytest.mark.parametrize("steps, batch, size", [(3, 1, 300), (40, 4, 6)])
@pytest.mark.parametrize("reset_after", [True, False])
def test_module_grads_accumulate_as_the_functional_ones(steps, batch, size, reset_after):
    """GRU.backward adds the weight gradients straight into .grads (with fewer rows T*B than
    columns, block by block, without a weight-sized temporary): the same as adding the
    functional gru_backward's, twice over, and for a GRUCell too."""
    rng = np.random.default_rng(5)
    gru = numgru.GRU(size, size, dtype="float64", reset_after=reset_after, seed=2)
    x = rng.standard_normal((steps, batch, size))
    dout = rng.standard_normal((steps, batch, size))
    weights = tuple(gru.state_dict()[name] for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
    _, _, cache = numgru.gru_forward(x, weights, reset_after=reset_after, training=True)
    _, _, expected = numgru.gru_backward(cache, dout)
    for _ in range(2):
        gru(x)
        gru.backward(dout)
    for name, grad in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), expected):
        assert rel_err(gru.grads[name], 2 * grad) < 1e-12

    cell = numgru.GRUCell(size, size, dtype="float64", reset_after=reset_after, seed=2)
    cell_weights = tuple(cell.state_dict()[name] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    _, _, cache = numgru.gru_forward(x[:1], cell_weights, reset_after=reset_after, training=True)
    _, _, expected = numgru.gru_backward(cache, None, dout[0])
    cell(x[0])
    cell.backward(dout[0])
    for name, grad in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), expected):
        assert rel_err(cell.grads[name], grad) < 1e-12
