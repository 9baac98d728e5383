"""numgru.GRU / GRUCell against torch.nn.GRU / GRUCell: outputs, hn, dx, dh0 and every parameter gradient.

float64 must agree to 1e-10 relative, float32 to 1e-5 relative against float64 torch.
"""
import itertools

import numpy as np
import pytest

import numgru
from reference import rel_err

torch = pytest.importorskip("torch")

TOL = {"float64": 1e-10, "float32": 1e-5}
T, B, I, H = 6, 4, 3, 5
LENGTHS = {"none": None, "unsorted": [4, 1, 6, 3]}   # includes length 1 and full length T


def torch_gru_like(gru):
    """A float64 torch.nn.GRU holding ``gru``'s weights (through load_state_dict, as users do)."""
    ref = torch.nn.GRU(gru.input_size, gru.hidden_size, num_layers=gru.num_layers, bias=gru.bias,
                       batch_first=gru.batch_first, bidirectional=gru.bidirectional, dtype=torch.float64)
    ref.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in gru.state_dict().items()})
    return ref


def torch_forward_backward(ref, x, h0, lengths, dout, dhn):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    h0t = None if h0 is None else torch.tensor(h0, dtype=torch.float64, requires_grad=True)
    if lengths is None:
        out, hn = ref(xt, h0t)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), batch_first=ref.batch_first,
                                                         enforce_sorted=False)
        out, hn = ref(packed, h0t)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=ref.batch_first, total_length=x.shape[1 if ref.batch_first else 0])
    loss = (out * torch.from_numpy(dout)).sum() + (hn * torch.from_numpy(dhn)).sum()
    loss.backward()
    grads = {name: p.grad.numpy() for name, p in ref.named_parameters()}
    dh0 = None if h0t is None else h0t.grad.numpy()
    return out.detach().numpy(), hn.detach().numpy(), xt.grad.numpy(), dh0, grads


GRID = list(itertools.product([1, 2, 3], [False, True], [False, True], [True, False], [False, True],
                              ["none", "unsorted"]))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layers,bidirectional,batch_first,bias,with_h0,lengths", GRID)
def test_gru_matches_torch(dtype, layers, bidirectional, batch_first, bias, with_h0, lengths, device):
    rng = np.random.default_rng(layers * 100 + bidirectional * 10 + batch_first)
    gru = numgru.GRU(I, H, num_layers=layers, bias=bias, batch_first=batch_first,
                     bidirectional=bidirectional, dtype=dtype, seed=7, device=device)
    ref = torch_gru_like(gru)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    h0 = rng.standard_normal((layers * D, B, H)) if with_h0 else None
    lens = LENGTHS[lengths]
    dout = rng.standard_normal((B, T, D * H) if batch_first else (T, B, D * H))
    dhn = rng.standard_normal((layers * D, B, H))

    out, hn = gru(x, h0=h0, lengths=lens)
    dx, dh0 = gru.backward(dout, dhn)
    t_out, t_hn, t_dx, t_dh0, t_grads = torch_forward_backward(ref, x, h0, lens, dout, dhn)

    tol = TOL[dtype]
    assert out.dtype == np.dtype(dtype) and dx.dtype == np.dtype(dtype)
    assert rel_err(out, t_out) < tol
    assert rel_err(hn, t_hn) < tol
    assert rel_err(dx, t_dx) < tol
    if with_h0:
        assert rel_err(dh0, t_dh0) < tol
    assert set(gru.grads) == set(t_grads)
    for name, grad in t_grads.items():
        assert rel_err(gru.grads[name], grad) < tol, name


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_dh0_without_h0_is_gradient_at_zero_state(dtype, bidirectional, device):
    """With no h0, dh0 is still returned: the gradient at the zero initial state."""
    rng = np.random.default_rng(1)
    gru = numgru.GRU(I, H, num_layers=2, bidirectional=bidirectional, dtype=dtype, seed=3, device=device)
    ref = torch_gru_like(gru)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((T, B, I))
    dout = rng.standard_normal((T, B, D * H))
    dhn = rng.standard_normal((2 * D, B, H))
    gru(x)
    _, dh0 = gru.backward(dout, dhn)
    *_, t_dh0, _ = torch_forward_backward(ref, x, np.zeros((2 * D, B, H)), None, dout, dhn)
    assert rel_err(dh0, t_dh0) < TOL[dtype]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", ["T=1", "unbatched", "unbatched_h0", "B=1"])
def test_edge_shapes_match_torch(dtype, case, device):
    rng = np.random.default_rng(2)
    gru = numgru.GRU(I, H, num_layers=2, bidirectional=True, dtype=dtype, seed=5, device=device)
    ref = torch_gru_like(gru)
    shape = {"T=1": (1, B, I), "unbatched": (T, I), "unbatched_h0": (T, I), "B=1": (T, 1, I)}[case]
    x = rng.standard_normal(shape)
    batch = shape[1:-1]
    h0 = rng.standard_normal((4, *batch, H)) if case == "unbatched_h0" else None
    dout = rng.standard_normal(shape[:-1] + (2 * H,))
    dhn = rng.standard_normal((4, *batch, H))
    out, hn = gru(x, h0=h0)
    dx, dh0 = gru.backward(dout, dhn)
    t_out, t_hn, t_dx, t_dh0, t_grads = torch_forward_backward(ref, x, h0, None, dout, dhn)
    assert out.shape == t_out.shape and hn.shape == t_hn.shape and dx.shape == x.shape
    assert dh0.shape == (4, *batch, H)
    for a, b in ((out, t_out), (hn, t_hn), (dx, t_dx)):
        assert rel_err(a, b) < TOL[dtype]
    if h0 is not None:
        assert rel_err(dh0, t_dh0) < TOL[dtype]
    for name, grad in t_grads.items():
        assert rel_err(gru.grads[name], grad) < TOL[dtype], name


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_gru_cell_matches_torch(dtype, bias, batched, device):
    rng = np.random.default_rng(3)
    cell = numgru.GRUCell(I, H, bias=bias, dtype=dtype, seed=11, device=device)
    ref = torch.nn.GRUCell(I, H, bias=bias, dtype=torch.float64)
    ref.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in cell.state_dict().items()})
    batch = (B,) if batched else ()
    x = rng.standard_normal(batch + (I,))
    h = rng.standard_normal(batch + (H,))
    dh1 = rng.standard_normal(batch + (H,))
    h1 = cell(x, h)
    dx, dh = cell.backward(dh1)
    xt = torch.tensor(x, requires_grad=True)
    ht = torch.tensor(h, requires_grad=True)
    h1t = ref(xt, ht)
    (h1t * torch.from_numpy(dh1)).sum().backward()
    tol = TOL[dtype]
    assert h1.shape == batch + (H,) and dx.shape == x.shape and dh.shape == h.shape
    assert rel_err(h1, h1t.detach().numpy()) < tol
    assert rel_err(dx, xt.grad.numpy()) < tol
    assert rel_err(dh, ht.grad.numpy()) < tol
    for name, p in ref.named_parameters():
        assert rel_err(cell.grads[name], p.grad.numpy()) < tol, name


def test_torch_state_dict_loads_as_is(device):
    ref = torch.nn.GRU(I, H, num_layers=2, bidirectional=True)
    gru = numgru.GRU(I, H, num_layers=2, bidirectional=True, device=device)
    gru.load_state_dict(ref.state_dict())          # float32 tensors, some requiring grad
    for name, value in ref.state_dict().items():
        np.testing.assert_array_equal(gru.parameters()[name], value.numpy())
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)
    out, hn = gru(x)
    t_out, t_hn = ref(torch.from_numpy(x))
    assert rel_err(out, t_out.detach().numpy()) < 1e-5
