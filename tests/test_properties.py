"""The numerical contract beyond parity: NaN/inf behaviour, no writes to inputs, memory
layouts, determinism, dropout, initialisation and state_dict semantics."""
import numba
import numpy as np
import pytest

import numgru
from conftest import CPU_PLAN_SETTINGS

T, B, I, H = 6, 3, 4, 5
# read at import, before conftest's autouse fixture lowers the threshold
DEFAULT_CPU_PLAN_SETTINGS = {name: getattr(numgru.config, name) for name in CPU_PLAN_SETTINGS}


def make(dtype="float64", **kw):
    return numgru.GRU(I, H, num_layers=2, bidirectional=True, dtype=dtype, seed=0, **kw)


def test_nan_propagates_and_stays_in_its_sequence(device):
    gru = make(device=device)
    x = np.random.default_rng(0).standard_normal((T, B, I))
    x[2, 1, 0] = np.nan
    out, hn = gru(x)
    assert np.isnan(out[:, 1]).any() and np.isnan(hn[:, 1]).all()
    assert np.isfinite(out[:, [0, 2]]).all() and np.isfinite(hn[:, [0, 2]]).all()
    clean = x.copy()
    clean[2, 1, 0] = 0.0
    ref_out, _ = gru(clean)
    np.testing.assert_array_equal(out[:, [0, 2]], ref_out[:, [0, 2]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reset_after", [True, False])
def test_huge_pre_activations_saturate_without_nan(dtype, reset_after, device):
    gru = numgru.GRU(I, H, reset_after=reset_after, dtype=dtype, seed=0, device=device)
    x = np.random.default_rng(1).choice([-1.0, 1.0], (T, B, I)) * 1e30
    x[0, 0, 0] = np.inf
    out, hn = gru(x)
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0
    dx, dh0 = gru.backward(np.ones_like(out))
    assert not np.isnan(dx).any() and not np.isnan(dh0).any()


def test_inputs_are_never_written_to(device):
    rng = np.random.default_rng(2)
    gru = make(device=device)
    x, h0 = rng.standard_normal((T, B, I)), rng.standard_normal((4, B, H))
    dout, dhn = rng.standard_normal((T, B, 2 * H)), rng.standard_normal((4, B, H))
    lengths = np.array([3, 6, 1])
    arrays = [x, h0, dout, dhn, lengths]
    for a in arrays:
        a.flags.writeable = False       # any write would raise
    copies = [a.copy() for a in arrays]
    gru(x, h0=h0, lengths=lengths)
    gru.backward(dout, dhn)
    for a, c in zip(arrays, copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_memory_layouts_give_identical_results(dtype, device):
    rng = np.random.default_rng(3)
    gru = make(dtype, device=device)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    dout = rng.standard_normal((T, B, 2 * H)).astype(dtype)
    out, hn = gru(x)
    dx, dh0 = gru.backward(dout)
    big = np.zeros((T, 2 * B, 3 * I), dtype)
    big[:, ::2, ::3] = x
    variants = {"fortran": np.asfortranarray(x), "strided": big[:, ::2, ::3],
                "reversed-strides": x[::-1, ::-1][::-1, ::-1]}
    readonly = x.copy()
    readonly.flags.writeable = False
    variants["readonly"] = readonly
    for name, xv in variants.items():
        o, h = gru(xv)
        d, dh = gru.backward(np.asfortranarray(dout))
        for got, want in ((o, out), (h, hn), (d, dx), (dh, dh0)):
            np.testing.assert_array_equal(got, want, err_msg=name)


def test_same_inputs_same_bits(device):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dout = rng.standard_normal((T, B, 2 * H)).astype(np.float32)
    results = []
    for _ in range(3):
        gru = make("float32", device=device)
        out, hn = gru(x, lengths=[2, 6, 5])
        dx, dh0 = gru.backward(dout)
        results.append((out, hn, dx, dh0, *gru.grads.values()))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


def test_thread_count_changes_rounding_only():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((T, B, I))
    gru = make()
    out2, _ = gru(x)
    saved = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert numgru.threads.cpu_threads(64, 1024, T, 8).plan == (1, False)   # the plan sees the setting
        out1, _ = gru(x)
    finally:
        numba.set_num_threads(saved)
    assert numgru.threads.cpu_threads(64, 1024, T, 8).plan[0] == saved
    np.testing.assert_allclose(out1, out2, rtol=1e-12, atol=1e-14)


def test_dropout_only_in_training_and_seeded(device):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((T, B, I))
    a, b = make(dropout=0.5, device=device), make(dropout=0.5, device=device)
    out_a, _ = a(x)
    out_b, _ = b(x)
    np.testing.assert_array_equal(out_a, out_b)                # same seed, same masks
    plain = make(device=device)
    out_eval, _ = a.eval()(x)
    np.testing.assert_array_equal(out_eval, plain(x)[0])      # eval: no dropout
    assert not np.allclose(out_a, out_eval)
    out_again, _ = a.train()(x)
    assert not np.array_equal(out_a, out_again)                # a fresh mask each call


def test_dropout_mask_scales_kept_units(device):
    """Layer 0's output is dropped with probability p and the survivors are scaled by 1/(1-p)."""
    gru = make(dropout=0.4, device=device)
    gru(np.random.default_rng(7).standard_normal((50, 8, I)))
    mask = gru._cache["masks"][0]
    assert set(np.unique(mask)) <= {0.0, 1 / 0.6}
    assert 0.5 < (mask > 0).mean() < 0.7
    assert gru._cache["masks"][1] is None                      # never after the last layer


def test_initialisation_matches_torch_rule_and_seed():
    gru = numgru.GRU(I, 16, num_layers=2, seed=3)
    bound = 1 / np.sqrt(16)
    for value in gru.parameters().values():
        assert value.dtype == np.float32
        assert np.abs(value).max() <= bound
    again = numgru.GRU(I, 16, num_layers=2, seed=3)
    other = numgru.GRU(I, 16, num_layers=2, seed=4)
    for name, value in gru.state_dict().items():
        np.testing.assert_array_equal(value, again.state_dict()[name])
        assert not np.array_equal(value, other.state_dict()[name])


def test_state_dict_copies_and_parameters_are_live():
    gru = make()
    sd = gru.state_dict()
    sd["weight_hh_l0"][...] = 0                                # editing the copy does nothing
    assert not np.all(gru.parameters()["weight_hh_l0"] == 0)
    source = {k: np.full_like(v, 0.01) for k, v in sd.items()}
    live = gru.parameters()["weight_ih_l1"]
    gru.load_state_dict(source)
    source["weight_ih_l1"][...] = 5                            # loading copied, kept no reference
    assert np.all(gru.parameters()["weight_ih_l1"] == 0.01)
    assert gru.parameters()["weight_ih_l1"] is live            # loaded in place
    names = [f"{w}_l{k}{s}" for k in range(2) for s in ("", "_reverse")
             for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    assert list(gru.state_dict()) == names
    assert set(gru.grads) == set(names)


def test_no_bias_has_no_bias_parameters(device):
    gru = numgru.GRU(I, H, bias=False, device=device)
    assert list(gru.state_dict()) == ["weight_ih_l0", "weight_hh_l0"]
    cell = numgru.GRUCell(I, H, bias=False, device=device)
    assert list(cell.state_dict()) == ["weight_ih", "weight_hh"]


def test_functional_inference_keeps_no_cache(device):
    rng = np.random.default_rng(8)
    w = (rng.standard_normal((3 * H, I)), rng.standard_normal((3 * H, H)), None, None)
    x = rng.standard_normal((T, B, I))
    out, hn, cache = numgru.gru_forward(x, w, device=device)
    assert cache is None
    out_t, hn_t, cache_t = numgru.gru_forward(x, w, training=True, device=device)
    np.testing.assert_array_equal(out, out_t)
    np.testing.assert_array_equal(hn, hn_t)
    assert cache_t is not None


def test_cell_step_equals_sequence_step(device):
    rng = np.random.default_rng(9)
    gru = numgru.GRU(I, H, dtype="float64", seed=1, device=device)
    cell = numgru.GRUCell(I, H, dtype="float64", device=device)
    cell.load_state_dict({k[:-3]: v for k, v in gru.state_dict().items()})
    x = rng.standard_normal((T, B, I))
    out, _ = gru(x)
    h = np.zeros((B, H))
    for t in range(T):
        h = cell(x[t], h)
        np.testing.assert_allclose(h, out[t], rtol=1e-12, atol=1e-15)  # blocking changes rounding only


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reset_after", [True, False])
def test_every_cpu_plan_agrees(cpu_plan, dtype, reset_after):
    """Parallel build split by sequences or by hidden units, or serial build: the same numbers
    up to rounding, in a bidirectional stack with padding (the plan really is taken)."""
    import numgru.config
    from conftest import CPU_PLANS
    from numgru import threads
    from reference import rel_err

    if numba.get_num_threads() == 1:
        pytest.skip("Numba has one thread: every plan is the serial build, there is no other plan to compare with")
    batch = max(B, numba.get_num_threads())     # a split by sequences needs a sequence for every thread
    rng = np.random.default_rng(10)
    x = rng.standard_normal((T, batch, I))
    dout = rng.standard_normal((T, batch, 2 * H))
    lengths = [(2, 6, 5)[b % 3] for b in range(batch)]

    def run():
        gru = numgru.GRU(I, H, num_layers=2, bidirectional=True, reset_after=reset_after, dtype=dtype, seed=0)
        out, hn = gru(x, lengths=lengths)
        dx, dh0 = gru.backward(dout)
        return (out, hn, dx, dh0, *gru.grads.values())

    blocks, by_batch = threads.cpu_threads(batch, H, T, np.dtype(dtype).itemsize).plan
    assert (blocks > 1) == cpu_plan.startswith("parallel")
    assert by_batch == (cpu_plan == "parallel-batches")
    result = run()
    # the yardstick: another plan (conftest's monkeypatch restores the config)
    other = "serial" if cpu_plan != "serial" else "parallel-batches"
    for name, value in zip(CPU_PLAN_SETTINGS, CPU_PLANS[other]):
        setattr(numgru.config, name, value)
    assert threads.cpu_threads(batch, H, T, np.dtype(dtype).itemsize).plan != (blocks, by_batch)
    yardstick = run()
    tol = 1e-12 if dtype == "float64" else 1e-6
    for a, b in zip(result, yardstick):
        assert rel_err(a, b) < tol


def test_default_cpu_plans(monkeypatch):
    """The rule numgru.threads applies with numgru.config's settings: one thread for
    tiny work; by sequences at small H or with large blocks; by units otherwise."""
    import numgru.config
    from numgru import threads
    for name, value in DEFAULT_CPU_PLAN_SETTINGS.items():   # undo conftest's lowered threshold
        monkeypatch.setattr(numgru.config, name, value)

    def plan(B, H, steps=200, itemsize=4):
        return threads.cpu_plan(B, H, steps, itemsize, threads=2)

    assert plan(1, 64) == (1, False)          # B=1: one thread
    assert plan(1, 1024) == (2, False)        # ... unless a step is large enough to share
    assert plan(8, 64) == (2, True)           # small H: by sequences
    assert plan(64, 64) == (2, True)
    assert plan(16, 256) == (2, False)        # larger H, small blocks: by units
    assert plan(16, 1024) == (2, False)
    assert plan(64, 256) == (2, True)         # blocks of 32 sequences: by sequences
    assert plan(4, 8, steps=1) == (1, False)  # a tiny streaming step: one thread
    assert plan(4, 8, steps=200) == (2, True)  # ... and a whole sequence of them: by sequences
    assert plan(3, 256) == (2, False)         # blocks of 1 and 2 sequences: by units
    assert plan(64, 512) == (2, True)         # W_hh of 3 MB: each thread can read all of it
    assert plan(64, 512, itemsize=8) == (2, True)
    assert plan(64, 1024) == (2, False)       # 12.6 MB: each thread reads its units' share
    assert plan(128, 1024, itemsize=8) == (2, False)
