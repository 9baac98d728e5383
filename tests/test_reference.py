"""Proves tests/reference.py right (vs torch float64, finite differences and an
independent scalar-loop implementation) so it can serve as ground truth."""
import math
import warnings

import numpy as np
import pytest

from reference import (
    gru_forward_stack,
    gru_layer_backward,
    gru_layer_forward,
    numerical_grad,
    rel_err,
    sigmoid,
)

T, B, I, H = 5, 3, 3, 4
UNSORTED = [3, 1, 5]          # unsorted, includes length 1 and full length T


# --------------------------------------------------------------------------- helpers
def rand_layer(rng, I=I, H=H, bias=True, scale=0.5):
    w_ih = rng.uniform(-scale, scale, (3 * H, I))
    w_hh = rng.uniform(-scale, scale, (3 * H, H))
    b_ih = rng.uniform(-scale, scale, 3 * H) if bias else None
    b_hh = rng.uniform(-scale, scale, 3 * H) if bias else None
    return w_ih, w_hh, b_ih, b_hh


def rand_params(rng, I, H, L, D, bias=True):
    p = {}
    for k in range(L):
        in_size = I if k == 0 else D * H
        for d in range(D):
            sfx = f"l{k}" + ("_reverse" if d else "")
            w_ih, w_hh, b_ih, b_hh = rand_layer(rng, in_size, H, bias)
            p["weight_ih_" + sfx] = w_ih
            p["weight_hh_" + sfx] = w_hh
            if bias:
                p["bias_ih_" + sfx] = b_ih
                p["bias_hh_" + sfx] = b_hh
    return p


def torch_run(params, x, I, H, L, bidirectional, bias, h0=None, lengths=None):
    """float64 torch.nn.GRU; returns (gru, x_t, h0_t, out_t, hn_t) all torch."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    gru = torch.nn.GRU(I, H, num_layers=L, bidirectional=bidirectional, bias=bias).double()
    gru.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in params.items()})
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    h0t = None if h0 is None else torch.from_numpy(h0.copy()).requires_grad_(True)
    if lengths is None:
        out, hn = gru(xt, h0t)
    else:
        packed = pack_padded_sequence(xt, torch.as_tensor(lengths, dtype=torch.int64),
                                      enforce_sorted=False)
        out_p, hn = gru(packed, h0t)
        out, _ = pad_packed_sequence(out_p, total_length=x.shape[0])
    return gru, xt, h0t, out, hn


def naive_layer(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, reverse, reset_after):
    """Independent implementation: per sequence, per step, per unit, scalar maths,
    running each sequence on its truncated input x[:L, b] only."""
    Tn, Bn, In = x.shape
    Hn = w_hh.shape[1]
    b_ih = np.zeros(3 * Hn) if b_ih is None else b_ih
    b_hh = np.zeros(3 * Hn) if b_hh is None else b_hh
    sig = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731  (small args here)
    out = np.zeros((Tn, Bn, Hn))
    hn = np.zeros((Bn, Hn))
    for b in range(Bn):
        L = Tn if lengths is None else int(lengths[b])
        h = [0.0] * Hn if h0 is None else list(h0[b])
        for t in (reversed(range(L)) if reverse else range(L)):
            gi = [sum(w_ih[j, i] * x[t, b, i] for i in range(In)) + b_ih[j] for j in range(3 * Hn)]
            gh = [sum(w_hh[j, i] * h[i] for i in range(Hn)) + b_hh[j] for j in range(3 * Hn)]
            r = [sig(gi[u] + gh[u]) for u in range(Hn)]
            z = [sig(gi[Hn + u] + gh[Hn + u]) for u in range(Hn)]
            if reset_after:
                n = [math.tanh(gi[2 * Hn + u] + r[u] * gh[2 * Hn + u]) for u in range(Hn)]
            else:
                rh = [r[i] * h[i] for i in range(Hn)]
                n = [math.tanh(gi[2 * Hn + u]
                               + sum(w_hh[2 * Hn + u, i] * rh[i] for i in range(Hn))
                               + b_hh[2 * Hn + u]) for u in range(Hn)]
            h = [(1 - z[u]) * n[u] + z[u] * h[u] for u in range(Hn)]
            out[t, b] = h
        hn[b] = h
    return out, hn


# --------------------------------------------------------------------------- sigmoid
def test_sigmoid_extremes_exact_and_no_warnings():
    a = np.array([1e4, -1e4, 0.0, 800.0, -800.0, 710.0, -710.0, 700.0, -700.0, 30.0, -30.0, 1.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            s = sigmoid(a)
            s_scalar_hi, s_scalar_lo = sigmoid(1e4), sigmoid(-1e4)
    assert s[0] == 1.0 and s[1] == 0.0
    assert float(s_scalar_hi) == 1.0 and float(s_scalar_lo) == 0.0
    assert s[2] == 0.5 and s[3] == 1.0 and s[4] == 0.0
    assert np.all(np.isfinite(s)) and np.all((s >= 0) & (s <= 1))
    mid = np.linspace(-30, 30, 61)
    assert rel_err(sigmoid(mid), 1.0 / (1.0 + np.exp(-mid))) < 1e-15
    assert np.max(np.abs(sigmoid(mid) + sigmoid(-mid) - 1.0)) < 1e-15


def test_rel_err():
    assert rel_err(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_err(np.array([1.0, 2.0]), np.array([1.0, 4.0])) == 0.5


# --------------------------------------------------------------------------- forward
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, UNSORTED])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_vs_naive_loop(reset_after, reverse, lengths, bias):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H))
    w = rand_layer(rng, bias=bias)
    out, hn, _ = gru_layer_forward(x, *w, h0, lengths=lengths, reverse=reverse,
                                   reset_after=reset_after)
    out_n, hn_n = naive_layer(x, *w, h0, lengths, reverse, reset_after)
    assert rel_err(out, out_n) < 1e-13
    assert rel_err(hn, hn_n) < 1e-13


def test_forward_padding_semantics():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H))
    w = rand_layer(rng)
    for reverse in (False, True):
        out, hn, _ = gru_layer_forward(x, *w, h0, lengths=UNSORTED, reverse=reverse)
        for b, L in enumerate(UNSORTED):
            assert np.all(out[L:, b] == 0.0)                 # exactly zero padding
            last = 0 if reverse else L - 1
            assert np.array_equal(hn[b], out[last, b])
        # garbage in padded x must not matter
        x2 = x.copy()
        for b, L in enumerate(UNSORTED):
            x2[L:, b] = 1e3
        out2, hn2, _ = gru_layer_forward(x2, *w, h0, lengths=UNSORTED, reverse=reverse)
        assert np.array_equal(out, out2) and np.array_equal(hn, hn2)
    # lengths all == T  is the same as lengths=None; h0=None is zeros; bias None is zero bias
    a = gru_layer_forward(x, *w, None, lengths=[T] * B)
    b_ = gru_layer_forward(x, *w, np.zeros((B, H)))
    assert np.array_equal(a[0], b_[0]) and np.array_equal(a[1], b_[1])
    w_ih, w_hh, _, _ = w
    a = gru_layer_forward(x, w_ih, w_hh, None, None, h0)
    b_ = gru_layer_forward(x, w_ih, w_hh, np.zeros(3 * H), np.zeros(3 * H), h0)
    assert np.array_equal(a[0], b_[0]) and np.array_equal(a[1], b_[1])


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, UNSORTED])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("use_h0", [True, False])
def test_layer_forward_vs_torch(reverse, lengths, bias, use_h0):
    pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((T, B, I))
    params = rand_params(rng, I, H, 1, 2, bias)
    h0 = rng.standard_normal((2, B, H)) if use_h0 else None
    _, _, _, out_t, hn_t = torch_run(params, x, I, H, 1, True, bias, h0, lengths)
    d = 1 if reverse else 0
    sfx = "l0_reverse" if reverse else "l0"
    out, hn, _ = gru_layer_forward(
        x, params["weight_ih_" + sfx], params["weight_hh_" + sfx],
        params.get("bias_ih_" + sfx), params.get("bias_hh_" + sfx),
        None if h0 is None else h0[d], lengths=lengths, reverse=reverse)
    assert rel_err(out, out_t.detach().numpy()[:, :, d * H:(d + 1) * H]) < 1e-12
    assert rel_err(hn, hn_t.detach().numpy()[d]) < 1e-12


@pytest.mark.parametrize("L,bidirectional", [(1, False), (1, True), (2, False), (3, True)])
@pytest.mark.parametrize("lengths", [None, UNSORTED])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("use_h0", [True, False])
def test_stack_forward_vs_torch(L, bidirectional, lengths, bias, use_h0):
    pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((T, B, I))
    params = rand_params(rng, I, H, L, D, bias)
    h0 = rng.standard_normal((L * D, B, H)) if use_h0 else None
    _, _, _, out_t, hn_t = torch_run(params, x, I, H, L, bidirectional, bias, h0, lengths)
    out, hn = gru_forward_stack(x, params, L, bidirectional, h0=h0, lengths=lengths)
    assert out.shape == (T, B, D * H) and hn.shape == (L * D, B, H)
    assert rel_err(out, out_t.detach().numpy()) < 1e-12
    assert rel_err(hn, hn_t.detach().numpy()) < 1e-12
    if lengths is not None:
        for b, Lb in enumerate(lengths):
            assert np.all(out[Lb:, b] == 0.0)


@pytest.mark.parametrize("lengths", [None, UNSORTED])
def test_stack_reset_before_vs_naive(lengths):
    rng = np.random.default_rng(5)
    L, D = 2, 2
    x = rng.standard_normal((T, B, I))
    params = rand_params(rng, I, H, L, D, True)
    h0 = rng.standard_normal((L * D, B, H))
    out, hn = gru_forward_stack(x, params, L, True, h0=h0, lengths=lengths, reset_after=False)
    layer_in, hn_n = x, []
    for k in range(L):
        outs = []
        for d in range(D):
            sfx = f"l{k}" + ("_reverse" if d else "")
            o, h = naive_layer(layer_in, params["weight_ih_" + sfx], params["weight_hh_" + sfx],
                               params["bias_ih_" + sfx], params["bias_hh_" + sfx],
                               h0[k * D + d], lengths, d == 1, False)
            outs.append(o)
            hn_n.append(h)
        layer_in = np.concatenate(outs, axis=2)
    assert rel_err(out, layer_in) < 1e-13
    assert rel_err(hn, np.stack(hn_n)) < 1e-13


# --------------------------------------------------------------------------- backward
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, UNSORTED])
@pytest.mark.parametrize("bias", [True, False])
def test_backward_vs_torch_autograd(reverse, lengths, bias):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((T, B, I))
    params = rand_params(rng, I, H, 1, 2, bias)
    h0 = rng.standard_normal((2, B, H))
    R1 = rng.standard_normal((T, B, H))
    R2 = rng.standard_normal((B, H))
    d = 1 if reverse else 0
    sfx = "l0_reverse" if reverse else "l0"

    gru, xt, h0t, out_t, hn_t = torch_run(params, x, I, H, 1, True, bias, h0, lengths)
    loss = (out_t[:, :, d * H:(d + 1) * H] * torch.from_numpy(R1)).sum() \
        + (hn_t[d] * torch.from_numpy(R2)).sum()
    loss.backward()

    out, hn, cache = gru_layer_forward(
        x, params["weight_ih_" + sfx], params["weight_hh_" + sfx],
        params.get("bias_ih_" + sfx), params.get("bias_hh_" + sfx), h0[d],
        lengths=lengths, reverse=reverse)
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = gru_layer_backward(cache, R1, R2)

    assert rel_err(dx, xt.grad.numpy()) < 1e-10
    assert rel_err(dh0, h0t.grad.numpy()[d]) < 1e-10
    assert rel_err(dw_ih, getattr(gru, "weight_ih_" + sfx).grad.numpy()) < 1e-10
    assert rel_err(dw_hh, getattr(gru, "weight_hh_" + sfx).grad.numpy()) < 1e-10
    assert db_ih.shape == (3 * H,) and db_hh.shape == (3 * H,)
    if bias:
        assert rel_err(db_ih, getattr(gru, "bias_ih_" + sfx).grad.numpy()) < 1e-10
        assert rel_err(db_hh, getattr(gru, "bias_hh_" + sfx).grad.numpy()) < 1e-10


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, UNSORTED])
def test_backward_vs_numerical(reset_after, reverse, lengths):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H))
    w_ih, w_hh, b_ih, b_hh = rand_layer(rng, scale=0.8)
    R1 = rng.standard_normal((T, B, H))
    R2 = rng.standard_normal((B, H))

    def loss():
        out, hn, _ = gru_layer_forward(x, w_ih, w_hh, b_ih, b_hh, h0, lengths=lengths,
                                       reverse=reverse, reset_after=reset_after)
        return np.sum(out * R1) + np.sum(hn * R2)

    _, _, cache = gru_layer_forward(x, w_ih, w_hh, b_ih, b_hh, h0, lengths=lengths,
                                    reverse=reverse, reset_after=reset_after)
    grads = gru_layer_backward(cache, R1, R2)
    for name, arr, g in zip(("x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"),
                            (x, h0, w_ih, w_hh, b_ih, b_hh), grads):
        num = numerical_grad(loss, arr, eps=1e-6)
        assert g.shape == arr.shape
        assert rel_err(g, num) < 1e-7, name
    if lengths is not None:
        for b, L in enumerate(lengths):
            assert np.all(grads[0][L:, b] == 0.0)            # padded dx exactly zero


@pytest.mark.parametrize("reset_after", [True, False])
def test_backward_no_bias_and_defaults(reset_after):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((T, B, I))
    w_ih, w_hh, _, _ = rand_layer(rng, scale=0.8)
    R1 = rng.standard_normal((T, B, H))

    def loss():
        out, _, _ = gru_layer_forward(x, w_ih, w_hh, None, None, None, lengths=UNSORTED,
                                      reverse=True, reset_after=reset_after)
        return np.sum(out * R1)

    _, _, cache = gru_layer_forward(x, w_ih, w_hh, None, None, None, lengths=UNSORTED,
                                    reverse=True, reset_after=reset_after)
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = gru_layer_backward(cache, R1)   # dhn=None
    assert db_ih.shape == (3 * H,) and db_hh.shape == (3 * H,)
    assert dh0.shape == (B, H)
    for arr, g in ((x, dx), (w_ih, dw_ih), (w_hh, dw_hh)):
        assert rel_err(g, numerical_grad(loss, arr)) < 1e-7
    # bias gradients are those of an explicit zero bias
    zb_ih, zb_hh = np.zeros(3 * H), np.zeros(3 * H)
    _, _, cache0 = gru_layer_forward(x, w_ih, w_hh, zb_ih, zb_hh, np.zeros((B, H)),
                                     lengths=UNSORTED, reverse=True, reset_after=reset_after)
    g0 = gru_layer_backward(cache0, R1, np.zeros((B, H)))
    for a, b in zip((dx, dh0, dw_ih, dw_hh, db_ih, db_hh), g0):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("reverse", [False, True])
def test_backward_ignores_padded_dout(reverse):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H))
    w = rand_layer(rng)
    R1 = rng.standard_normal((T, B, H))
    R2 = rng.standard_normal((B, H))
    _, _, cache = gru_layer_forward(x, *w, h0, lengths=UNSORTED, reverse=reverse)
    g = gru_layer_backward(cache, R1, R2)
    R1b = R1.copy()
    for b, L in enumerate(UNSORTED):
        R1b[L:, b] = 1e6
    g2 = gru_layer_backward(cache, R1b, R2)
    for a, b_ in zip(g, g2):
        assert np.array_equal(a, b_)
    for b, L in enumerate(UNSORTED):
        assert np.all(g[0][L:, b] == 0.0)
