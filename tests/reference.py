"""Slow, obvious, float64 pure-NumPy reference GRU (ground truth for tests).

One layer, one direction, forward and backward-through-time, written to read
like the maths.  PyTorch gate order (r, z, n): the rows of ``w_ih`` / ``w_hh``
are the blocks [W_r; W_z; W_n] of H rows each.

    r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))      reset_after=True  (PyTorch/cuDNN)
    n  = tanh(W_in x + b_in + W_hn (r * h) + b_hn)      reset_after=False (Cho et al. 2014)
    h' = (1 - z) * n + z * h

Variable lengths follow torch pack_padded_sequence(enforce_sorted=False) +
pad_packed_sequence(total_length=T): sequence b only uses steps 0..L_b-1; the
forward direction runs t = 0..L_b-1, the reverse direction runs t = L_b-1..0.
Outputs at padded steps are exactly 0, and their gradients are ignored.

No numba, no torch.
"""
import numpy as np

_EXP_CLIP = 700.0  # exp(-700) ~ 1e-304: still a normal double, so no underflow


def assert_close(a, b, tol=1e-12):
    """max|a - b| <= tol * max(1, max|b|), shapes equal: relative for large values, absolute near zero."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    scale = max(1.0, float(np.abs(b).max())) if b.size else 1.0
    assert float(np.abs(a - b).max(initial=0.0)) <= tol * scale, float(np.abs(a - b).max())


def rel_err(a, b):
    """max|a - b| / max(max|b|, 1e-300)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))


def sigmoid(a):
    """Logistic function, safe for any |a| (no overflow/underflow/invalid flags).

    a >= 0:  1 / (1 + exp(-a))
    a <  0:  exp(a) / (1 + exp(a))
    exp is only ever taken of -min(|a|, 700); below a = -700 the result is 0.
    """
    a = np.asarray(a, dtype=np.float64)
    e = np.exp(-np.minimum(np.abs(a), _EXP_CLIP))   # in (0, 1], never overflows
    pos = 1.0 / (1.0 + e)
    neg = e / (1.0 + e)
    out = np.where(a >= 0, pos, neg)
    return np.where(a < -_EXP_CLIP, 0.0, out)


def _split3(v, H):
    """Split the last axis (or rows) of a 3H-sized object into r, z, n blocks."""
    return v[..., 0:H], v[..., H:2 * H], v[..., 2 * H:3 * H]


def _mask(lengths, T, B):
    """mask[t, b] = True iff step t is a real (non-padded) step of sequence b."""
    if lengths is None:
        return np.ones((T, B), dtype=bool)
    lengths = np.asarray(lengths).astype(np.int64).reshape(-1)
    assert lengths.shape == (B,), "lengths must have shape (B,)"
    assert np.all(lengths >= 1) and np.all(lengths <= T), "need 1 <= lengths[b] <= T"
    return np.arange(T)[:, None] < lengths[None, :]


# --------------------------------------------------------------------------
# single layer, single direction
# --------------------------------------------------------------------------
def gru_layer_forward(x, w_ih, w_hh, b_ih, b_hh, h0, lengths=None, reverse=False,
                      reset_after=True):
    """x (T,B,I); w_ih (3H,I); w_hh (3H,H); b_ih,b_hh (3H,) or None (None = zero bias);
    h0 (B,H) or None (zeros); lengths (B,) ints with 1<=lengths[b]<=T or None (all T).
    returns out (T,B,H), hn (B,H), cache"""
    x = np.asarray(x, dtype=np.float64)
    w_ih = np.asarray(w_ih, dtype=np.float64)
    w_hh = np.asarray(w_hh, dtype=np.float64)
    T, B, I = x.shape
    H = w_hh.shape[1]
    assert w_ih.shape == (3 * H, I) and w_hh.shape == (3 * H, H)
    b_ih = np.zeros(3 * H) if b_ih is None else np.asarray(b_ih, dtype=np.float64)
    b_hh = np.zeros(3 * H) if b_hh is None else np.asarray(b_hh, dtype=np.float64)
    h = np.zeros((B, H)) if h0 is None else np.array(h0, dtype=np.float64)
    assert h.shape == (B, H)
    mask = _mask(lengths, T, B)

    W_ir, W_iz, W_in = _split3(w_ih.T, H)          # each (I, H)  (x @ W.T form)
    W_hr, W_hz, W_hn = _split3(w_hh.T, H)          # each (H, H)
    b_ir, b_iz, b_in = _split3(b_ih, H)
    b_hr, b_hz, b_hn = _split3(b_hh, H)

    out = np.zeros((T, B, H))
    steps = range(T - 1, -1, -1) if reverse else range(T)
    cache_steps = []
    for t in steps:
        m = mask[t][:, None]                       # (B,1) real step?
        xt = x[t]
        r = sigmoid(xt @ W_ir + b_ir + h @ W_hr + b_hr)
        z = sigmoid(xt @ W_iz + b_iz + h @ W_hz + b_hz)
        if reset_after:
            hn_lin = h @ W_hn + b_hn               # W_hn h + b_hn
            n = np.tanh(xt @ W_in + b_in + r * hn_lin)
        else:
            hn_lin = (r * h) @ W_hn + b_hn         # W_hn (r*h) + b_hn
            n = np.tanh(xt @ W_in + b_in + hn_lin)
        h_new = (1.0 - z) * n + z * h
        cache_steps.append(dict(t=t, m=m, h=h, r=r, z=z, n=n, hn_lin=hn_lin))
        h = np.where(m, h_new, h)                  # padded steps leave h untouched
        out[t] = np.where(m, h, 0.0)

    cache = dict(x=x, w_ih=w_ih, w_hh=w_hh, H=H, reset_after=reset_after,
                 reverse=reverse, mask=mask, steps=cache_steps)
    return out, h.copy(), cache


def gru_layer_backward(cache, dout, dhn=None):
    """dout (T,B,H) gradient wrt out, dhn (B,H) or None (zero).
    returns dx (T,B,I), dh0 (B,H), dw_ih, dw_hh, db_ih, db_hh (db_* are zeros-shaped (3H,) even when biases were None)"""
    x, w_ih, w_hh, H = cache["x"], cache["w_ih"], cache["w_hh"], cache["H"]
    reset_after = cache["reset_after"]
    T, B, I = x.shape
    dout = np.asarray(dout, dtype=np.float64)
    assert dout.shape == (T, B, H)

    W_hn = w_hh[2 * H:3 * H].T                     # (H, H), x @ W form
    dx = np.zeros((T, B, I))
    dw_ih = np.zeros_like(w_ih)
    dw_hh = np.zeros_like(w_hh)
    db_ih = np.zeros(3 * H)
    db_hh = np.zeros(3 * H)
    dh = np.zeros((B, H)) if dhn is None else np.array(dhn, dtype=np.float64)

    # walk the processed steps backwards in processing order
    for s in reversed(cache["steps"]):
        t, m, h, r, z, n, hn_lin = (s[k] for k in ("t", "m", "h", "r", "z", "n", "hn_lin"))
        dh = dh + np.where(m, dout[t], 0.0)        # out[t] = h_new on real steps only
        dh_new = np.where(m, dh, 0.0)              # gradient flowing into this step's update
        dh_skip = np.where(m, 0.0, dh)             # padded step: h passed through unchanged

        # h' = (1 - z) n + z h
        dn = dh_new * (1.0 - z)
        dz = dh_new * (h - n)
        dh_prev = dh_new * z
        da_n = dn * (1.0 - n * n)                  # through tanh
        if reset_after:
            # a_n = gi_n + r * (W_hn h + b_hn)
            dr = da_n * hn_lin
            dgh_n = da_n * r                       # grad wrt (W_hn h + b_hn)
            rh_or_h = h
        else:
            # a_n = gi_n + W_hn (r h) + b_hn
            dgh_n = da_n                           # grad wrt (W_hn (r h) + b_hn)
            d_rh = dgh_n @ W_hn.T
            dr = d_rh * h
            dh_prev = dh_prev + d_rh * r
            rh_or_h = r * h
        da_r = dr * r * (1.0 - r)                  # through sigmoid
        da_z = dz * z * (1.0 - z)

        dgi = np.concatenate([da_r, da_z, da_n], axis=1)     # grad wrt W_ih x + b_ih
        dgh_rz = np.concatenate([da_r, da_z], axis=1)       # grad wrt W_h{r,z} h + b_h{r,z}

        dx[t] = dgi @ w_ih
        dw_ih += dgi.T @ x[t]
        db_ih += dgi.sum(axis=0)

        dw_hh[:2 * H] += dgh_rz.T @ h
        dw_hh[2 * H:] += dgh_n.T @ rh_or_h
        db_hh += np.concatenate([dgh_rz, dgh_n], axis=1).sum(axis=0)
        dh_prev = dh_prev + dgh_rz @ w_hh[:2 * H]
        if reset_after:
            dh_prev = dh_prev + dgh_n @ w_hh[2 * H:]

        dh = dh_prev + dh_skip

    return dx, dh, dw_ih, dw_hh, db_ih, db_hh


# --------------------------------------------------------------------------
# multi-layer / bidirectional composition (inference only, torch naming)
# --------------------------------------------------------------------------
def gru_forward_stack(x, params, num_layers, bidirectional, h0=None, lengths=None,
                      reset_after=True):
    """Multi-layer, optionally bidirectional, inference-only composition with PyTorch naming:
    params: dict with keys weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k} and '_reverse' suffixed
    versions (bias keys may be absent = no bias); x (T,B,I); h0 (L*D,B,H) or None.
    Returns out (T,B,D*H) and hn (L*D,B,H) ordered like torch (layer0 fwd, layer0 rev, layer1 fwd, ...).
    No dropout."""
    x = np.asarray(x, dtype=np.float64)
    T, B, _ = x.shape
    D = 2 if bidirectional else 1
    H = np.asarray(params["weight_hh_l0"]).shape[1]
    if h0 is not None:
        h0 = np.asarray(h0, dtype=np.float64)
        assert h0.shape == (num_layers * D, B, H)
    layer_in = x
    hn = np.zeros((num_layers * D, B, H))
    for k in range(num_layers):
        outs = []
        for d in range(D):
            sfx = f"l{k}" + ("_reverse" if d == 1 else "")
            out_d, hn_d, _ = gru_layer_forward(
                layer_in, params["weight_ih_" + sfx], params["weight_hh_" + sfx],
                params.get("bias_ih_" + sfx), params.get("bias_hh_" + sfx),
                None if h0 is None else h0[k * D + d],
                lengths=lengths, reverse=(d == 1), reset_after=reset_after)
            outs.append(out_d)
            hn[k * D + d] = hn_d
        layer_in = np.concatenate(outs, axis=2)
    return layer_in, hn


# --------------------------------------------------------------------------
def numerical_grad(f, arr, eps=1e-6):
    """central finite differences of scalar function f() w.r.t. every element of arr (modified in place and restored)."""
    g = np.zeros(arr.shape, dtype=np.float64)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + eps
        fp = float(f())
        arr[idx] = old - eps
        fm = float(f())
        arr[idx] = old
        g[idx] = (fp - fm) / (2.0 * eps)
    return g


# --------------------------------------------------------------------------
def adam_reference(param, grad, state, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled):
    """torch's single-tensor Adam/AdamW step as whole-array NumPy operations, in place (state: a dict)."""
    beta1, beta2 = betas
    if not state:
        state.update(step=0, exp_avg=np.zeros_like(param), exp_avg_sq=np.zeros_like(param))
        if amsgrad:
            state["max_exp_avg_sq"] = np.zeros_like(param)
    state["step"] += 1
    g = -grad if maximize else grad
    if weight_decay != 0:
        if decoupled:
            param *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * param
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    weight = 1 - beta1
    if abs(weight) < 0.5:                                   # torch.lerp's two branches
        exp_avg += weight * (g - exp_avg)
    else:
        exp_avg[...] = g - (g - exp_avg) * (1 - weight)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * g * g
    step_size = lr / (1 - beta1 ** state["step"])
    bias_correction2_sqrt = (1 - beta2 ** state["step"]) ** 0.5
    if amsgrad:
        np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
        denom = np.sqrt(state["max_exp_avg_sq"]) / bias_correction2_sqrt
    else:
        denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt
    denom += eps
    param += (-step_size * exp_avg) / denom
