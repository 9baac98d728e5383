"""The CUDA backend: both recurrence strategies against the reference, device arrays in and
out without copies, parameters on the GPU, moving models between devices.

Runs where CUDA works: on a real GPU in the normal run, and on every CI run under
the CUDA simulator through tests/test_cuda.py (tiny shapes: the simulator runs one
Python thread per CUDA thread). Elsewhere every test here is skipped.
"""
import numpy as np
import pytest

import numgru
from numgru import devices
from reference import gru_layer_backward, gru_layer_forward, rel_err

pytestmark = pytest.mark.cuda

_, _WORKS, _WHY = devices._cuda_probe()
if not _WORKS:
    pytest.skip(f"CUDA is not available here ({_WHY})", allow_module_level=True)

from numba import cuda  # noqa: E402  (tests may touch numba.cuda directly; numgru never outside kernels/cuda.py)

ck = devices.cuda_kernels()
T, B, I, H = 3, 2, 3, 4
LENGTHS = np.array([3, 1])
TOL = {"float64": 1e-10, "float32": 1e-5}


def layer_weights(rng, bias=True):
    w = [rng.uniform(-0.6, 0.6, s) for s in ((3 * H, I), (3 * H, H), (3 * H,), (3 * H,))]
    return tuple(w) if bias else (w[0], w[1], None, None)


def host(a):
    return a.copy_to_host() if cuda.devicearray.is_cuda_ndarray(a) else np.asarray(a)


@pytest.mark.parametrize("strategy", ["step", "persistent"])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("reverse,lengths,bias", [(False, None, True), (True, LENGTHS, False),
                                                  (False, LENGTHS, True), (True, None, True)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_strategies_match_reference(strategy, reset_after, reverse, lengths, bias, dtype, monkeypatch):
    monkeypatch.setenv(devices.CUDA_STRATEGY_ENV, strategy)
    rng = np.random.default_rng(0)
    weights = layer_weights(rng, bias)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H))
    dout = rng.standard_normal((T, B, H))
    dhn = rng.standard_normal((B, H))
    cast = tuple(None if w is None else w.astype(dtype) for w in weights)
    out, hn, cache = numgru.gru_forward(x, cast, h0, lengths=lengths, reset_after=reset_after,
                                        reverse=reverse, training=True, device="cuda")
    assert cache.kernel["strategy"] == strategy
    dx, dh0, dweights = numgru.gru_backward(cache, dout, dhn)
    r_out, r_hn, r_cache = gru_layer_forward(x, *weights, h0, lengths=lengths, reverse=reverse,
                                             reset_after=reset_after)
    r_dx, r_dh0, *r_dweights = gru_layer_backward(r_cache, dout, dhn)
    for got, want in ((out, r_out), (hn, r_hn), (dx, r_dx), (dh0, r_dh0)):
        assert isinstance(got, np.ndarray) and got.dtype == np.dtype(dtype)   # NumPy in, NumPy out
        assert rel_err(got, want) < TOL[dtype]
    for got, want in zip(dweights, r_dweights):
        if got is None:
            assert not bias
        else:
            assert rel_err(got, want) < TOL[dtype]
    if lengths is not None:
        for b, length in enumerate(lengths):
            assert np.all(out[length:, b] == 0) and np.all(dx[length:, b] == 0)


@pytest.mark.parametrize("strategy", ["step", "persistent"])
def test_inference_matches_training_forward(strategy, monkeypatch):
    """training=False keeps two states in turn and no gates; the numbers are the same."""
    monkeypatch.setenv(devices.CUDA_STRATEGY_ENV, strategy)
    rng = np.random.default_rng(1)
    w = layer_weights(rng)
    x = rng.standard_normal((T, B, I))
    for reset_after in (True, False):
        out, hn, cache = numgru.gru_forward(x, w, lengths=LENGTHS, reset_after=reset_after, device="cuda")
        out_t, hn_t, _ = numgru.gru_forward(x, w, lengths=LENGTHS, reset_after=reset_after, training=True,
                                            device="cuda")
        assert cache is None
        np.testing.assert_array_equal(out, out_t)
        np.testing.assert_array_equal(hn, hn_t)


def test_auto_prefers_persistent_and_falls_back(monkeypatch):
    rng = np.random.default_rng(2)
    w = layer_weights(rng)
    x = rng.standard_normal((T, B, I))
    monkeypatch.delenv(devices.CUDA_STRATEGY_ENV, raising=False)
    *_, cache = numgru.gru_forward(x, w, training=True, device="cuda")
    assert cache.kernel["strategy"] == "persistent"          # W_hh fits on chip, the grid is co-resident
    ref_out, ref_hn, _ = numgru.gru_forward(x, w, device="cuda")

    monkeypatch.setattr(ck, "_SHARED_LIMIT", 16)              # now no slice of W_hh fits
    out, hn, cache = numgru.gru_forward(x, w, training=True, device="cuda")
    assert cache.kernel["strategy"] == "step"
    np.testing.assert_allclose(out, ref_out, rtol=1e-12)
    monkeypatch.setenv(devices.CUDA_STRATEGY_ENV, "persistent")
    with pytest.raises(RuntimeError, match="shared memory"):
        numgru.gru_forward(x, w, device="cuda")


def test_persistent_kernel_that_cannot_be_built_falls_back_with_a_warning(monkeypatch):
    rng = np.random.default_rng(3)
    w = layer_weights(rng)
    x = rng.standard_normal((T, B, I))

    def broken(*args):
        raise RuntimeError("no cudadevrt")

    monkeypatch.setattr(ck, "_max_cooperative_blocks", broken)
    monkeypatch.setattr(ck, "_persistent_broken", {})
    with pytest.warns(RuntimeWarning, match="one launch per time step"):
        out, _, cache = numgru.gru_forward(x, w, training=True, device="cuda")
    assert cache.kernel["strategy"] == "step"
    monkeypatch.setenv(devices.CUDA_STRATEGY_ENV, "persistent")
    with pytest.raises(RuntimeError, match="cudadevrt"):
        numgru.gru_forward(x, w, device="cuda")


def test_unknown_strategy_is_refused(monkeypatch):
    monkeypatch.setenv(devices.CUDA_STRATEGY_ENV, "warp")
    w = layer_weights(np.random.default_rng(4))
    with pytest.raises(ValueError, match=devices.CUDA_STRATEGY_ENV):
        numgru.gru_forward(np.zeros((T, B, I)), w, device="cuda")


# ------------------------------------------------------------ device arrays

def test_device_arrays_in_device_arrays_out_without_copies():
    rng = np.random.default_rng(5)
    w = tuple(a.astype(np.float32) for a in layer_weights(rng))
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dout = rng.standard_normal((T, B, H)).astype(np.float32)
    d_x, d_w, d_dout = cuda.to_device(x), tuple(cuda.to_device(a) for a in w), cuda.to_device(dout)
    assert ck.asarray(d_x, np.float32) is d_x                 # used as it is: no copy
    out, hn, cache = numgru.gru_forward(d_x, d_w, lengths=LENGTHS, training=True)   # "auto" follows x
    assert cache.device == "cuda" and cache.kernel["x"] is d_x and cache.kernel["w_hh"] is d_w[1]
    dx, dh0, dweights = numgru.gru_backward(cache, d_dout)
    for a in (out, hn, dx, dh0, *dweights):
        assert cuda.devicearray.is_cuda_ndarray(a)
    r_out, r_hn, r_cache = gru_layer_forward(x, *w, None, lengths=LENGTHS)
    r_dx, r_dh0, *r_dweights = gru_layer_backward(r_cache, dout, np.zeros((B, H)))
    for got, want in zip((out, hn, dx, dh0, *dweights), (r_out, r_hn, r_dx, r_dh0, *r_dweights)):
        assert rel_err(host(got), want) < 1e-5
    np.testing.assert_array_equal(d_x.copy_to_host(), x)     # inputs are never written to
    # NumPy dout: NumPy gradients, whatever the forward got
    assert isinstance(numgru.gru_backward(cache, dout)[0], np.ndarray)


def test_gru_on_device_arrays_all_layouts():
    rng = np.random.default_rng(6)
    for batch_first in (False, True):
        gru = numgru.GRU(I, H, bidirectional=True, batch_first=batch_first, dtype="float64", seed=1,
                         device="cuda")
        x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
        h0 = rng.standard_normal((2, B, H))
        dout = rng.standard_normal(x.shape[:2] + (2 * H,))
        out, hn = gru(x, h0=h0, lengths=LENGTHS)
        dx, dh0 = gru.backward(dout)
        grads = {k: host(v) for k, v in gru.grads.items()}
        gru.zero_grad()
        d_out, d_hn = gru(cuda.to_device(x), h0=cuda.to_device(h0), lengths=LENGTHS)
        d_dx, d_dh0 = gru.backward(cuda.to_device(dout))
        for got, want in ((d_out, out), (d_hn, hn), (d_dx, dx), (d_dh0, dh0)):
            assert cuda.devicearray.is_cuda_ndarray(got)
            np.testing.assert_array_equal(host(got), want)
        for k, v in gru.grads.items():
            np.testing.assert_array_equal(host(v), grads[k])
    # unbatched, and a float32 device array into a float64 model (converted on the device)
    gru = numgru.GRU(I, H, dtype="float64", seed=2, device="cuda")
    x = rng.standard_normal((T, I)).astype(np.float32)
    out, hn = gru(x)
    d_out, d_hn = gru(cuda.to_device(x))
    assert d_out.shape == (T, H) and d_hn.shape == (1, H) and d_out.dtype == np.float64
    np.testing.assert_array_equal(host(d_out), out)


def test_strided_device_arrays():
    rng = np.random.default_rng(7)
    gru = numgru.GRU(I, H, dtype="float64", seed=3, device="cuda")
    big = rng.standard_normal((T, 2 * B, 2 * I))
    x = np.ascontiguousarray(big[:, ::2, ::2])
    view = cuda.to_device(big)[:, ::2, ::2]
    assert not view.is_c_contiguous()
    np.testing.assert_array_equal(host(gru(view)[0]), gru(x)[0])


def test_cell_on_device():
    rng = np.random.default_rng(8)
    cell = numgru.GRUCell(I, H, dtype="float64", seed=4, device="cuda")
    x, h, dh1 = rng.standard_normal((B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    h1 = cell(x, h)
    dx, dh = cell.backward(dh1)
    d_h1 = cell(cuda.to_device(x), cuda.to_device(h))
    d_dx, d_dh = cell.backward(cuda.to_device(dh1))
    assert isinstance(h1, np.ndarray) and cuda.devicearray.is_cuda_ndarray(d_h1)
    for got, want in ((d_h1, h1), (d_dx, dx), (d_dh, dh)):
        np.testing.assert_array_equal(host(got), want)
    assert cell(x[0], h[0]).shape == (H,)


def test_device_inputs_are_validated():
    gru = numgru.GRU(I, H, device="cuda")
    with pytest.raises(ValueError, match="input_size"):
        gru(cuda.to_device(np.zeros((T, B, I + 1), np.float32)))
    with pytest.raises(TypeError, match="int64"):
        gru(cuda.to_device(np.zeros((T, B, I), np.int64)))
    with pytest.raises(ValueError, match="h0"):
        gru(cuda.to_device(np.zeros((T, B, I), np.float32)), h0=cuda.to_device(np.zeros((1, B + 1, H), np.float32)))
    bad = np.zeros((T, B, I), np.float32)
    bad[1, 0, 2] = np.nan
    gru(cuda.to_device(bad))                                  # NaN is allowed by default
    with pytest.raises(ValueError, match="NaN"):
        gru(cuda.to_device(bad), check_finite=True)
    out, _ = gru(np.zeros((T, B, I), np.float32))
    with pytest.raises(ValueError, match="dout"):
        gru.backward(cuda.to_device(np.zeros((T, B, H + 1), np.float32)))
    cpu_gru = numgru.GRU(I, H, device="cpu")
    with pytest.raises(TypeError, match="CUDA array"):
        cpu_gru(cuda.to_device(np.zeros((T, B, I), np.float32)))


# ----------------------------------------------------------- parameters

def test_parameters_live_on_the_device_and_state_dict_is_host():
    gru = numgru.GRU(I, H, num_layers=2, dtype="float64", seed=0, device="cuda")
    params = gru.parameters()
    assert all(cuda.devicearray.is_cuda_ndarray(v) for v in params.values())
    assert all(cuda.devicearray.is_cuda_ndarray(v) for v in gru.grads.values())
    sd = gru.state_dict()
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    twin = numgru.GRU(I, H, num_layers=2, dtype="float64", seed=0, device="cpu")
    for name, value in twin.state_dict().items():            # the same seed gives the same numbers
        np.testing.assert_array_equal(sd[name], value)
    live = params["weight_hh_l1"]
    source = {k: np.full_like(v, 0.01) for k, v in sd.items()}
    source["weight_ih_l0"] = cuda.to_device(source["weight_ih_l0"])   # device arrays load too
    gru.load_state_dict(source)
    assert gru.parameters()["weight_hh_l1"] is live           # loaded in place
    assert np.all(host(live) == 0.01) and np.all(host(gru.parameters()["weight_ih_l0"]) == 0.01)


def test_gradients_accumulate_and_zero_grad_on_device():
    rng = np.random.default_rng(9)
    gru = numgru.GRU(I, H, dtype="float64", seed=1, device="cuda")
    x = rng.standard_normal((T, B, I))
    dout = rng.standard_normal((T, B, H))
    gru(x)
    gru.backward(dout)
    once = {k: host(v) for k, v in gru.grads.items()}
    gru(x)
    gru.backward(dout)
    for name in once:
        np.testing.assert_allclose(host(gru.grads[name]), 2 * once[name], rtol=1e-12)
    gru.zero_grad()
    assert all(np.all(host(g) == 0) for g in gru.grads.values())


def test_model_moves_between_devices():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((T, B, I))
    dout = rng.standard_normal((T, B, H))
    gru = numgru.GRU(I, H, dtype="float64", seed=5, device="cpu")
    gru.grads["weight_hh_l0"][...] = 1.0
    start = gru.state_dict()
    assert gru.to("cuda") is gru and gru.device == "cuda"
    assert all(cuda.devicearray.is_cuda_ndarray(v) for v in gru.parameters().values())
    assert np.all(host(gru.grads["weight_hh_l0"]) == 1.0)    # gradients move too
    for name, value in gru.state_dict().items():
        np.testing.assert_array_equal(value, start[name])
    gru.zero_grad()
    out, hn = gru(x)
    dx, dh0 = gru.backward(dout)
    r_out, r_hn, r_cache = gru_layer_forward(x, *(start[k] for k in ("weight_ih_l0", "weight_hh_l0",
                                                                     "bias_ih_l0", "bias_hh_l0")), None)
    r_dx, _, r_dw_ih, r_dw_hh, r_db_ih, r_db_hh = gru_layer_backward(r_cache, dout, np.zeros((B, H)))
    assert rel_err(out, r_out) < 1e-10 and rel_err(dx, r_dx) < 1e-10
    grads = {k: host(v) for k, v in gru.grads.items()}
    assert gru.to("cpu") is gru and gru.device == "cpu"
    assert all(isinstance(v, np.ndarray) for v in gru.parameters().values())
    with pytest.raises(RuntimeError, match="forward"):
        gru.backward(dout)                                    # the cache stayed on the other device
    for name, want in (("weight_ih_l0", r_dw_ih), ("weight_hh_l0", r_dw_hh), ("bias_ih_l0", r_db_ih),
                       ("bias_hh_l0", r_db_hh)):
        assert isinstance(gru.grads[name], np.ndarray)
        np.testing.assert_array_equal(gru.grads[name], grads[name])
        assert rel_err(gru.grads[name], want) < 1e-10


def test_cpu_only_modules_refuse_cuda():
    from numgru.module import Module

    class CpuOnly(Module):
        pass

    with pytest.raises(RuntimeError, match="CpuOnly.*no CUDA implementation"):
        CpuOnly("float32", "cuda", 0)
    assert CpuOnly("float32", "auto", 0).device == "cpu"


def test_auto_never_picks_the_simulator():
    if ck.SIMULATOR:
        assert numgru.GRU(I, H).device == "cpu"
        assert numgru.GRU(I, H, device="cuda").device == "cuda"
