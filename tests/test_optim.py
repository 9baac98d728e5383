"""numgru.optim against torch.optim and torch.nn.utils.clip_grad_norm_: same gradients in, same parameters out."""
import math

import numpy as np
import pytest

import numgru
from numgru import optim

torch = pytest.importorskip("torch")

TOL = {"float64": 1e-13, "float32": 2e-6}


def make_modules(dtype="float64"):
    return [numgru.GRU(3, 4, num_layers=2, dtype=dtype, seed=0), numgru.Linear(4, 2, dtype=dtype, seed=1)]


def torch_params(modules):
    """One torch tensor per (module, name), holding a copy of the parameter, in the optimiser's order."""
    tdtype = torch.float64 if modules[0].dtype == np.float64 else torch.float32
    return [torch.tensor(value.copy(), dtype=tdtype, requires_grad=True)
            for module in modules for value in module.parameters().values()]


def set_grads(modules, tparams, rng, scale=1.0):
    """The same random gradients on both sides."""
    i = 0
    for module in modules:
        for name, value in module.parameters().items():
            g = (scale * rng.standard_normal(value.shape)).astype(value.dtype)
            module.grads[name][...] = g
            tparams[i].grad = torch.from_numpy(g.copy())
            i += 1


def assert_same(modules, tparams, tol):
    i = 0
    for module in modules:
        for name, value in module.parameters().items():
            ref = tparams[i].detach().numpy()
            err = np.abs(value.astype(np.float64) - ref).max() / max(1.0, np.abs(ref).max())
            assert err <= tol, f"{type(module).__name__}.{name}: relative error {err:.3g}"
            i += 1


CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-3)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, maximize=True, weight_decay=0.05)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,kwargs", CASES)
def test_optimiser_matches_torch(name, kwargs, dtype):
    modules = make_modules(dtype)
    tparams = torch_params(modules)
    opt = getattr(optim, name)(modules, **kwargs)
    ref = getattr(torch.optim, name)(tparams, **kwargs)
    rng = np.random.default_rng(0)
    for step in range(4):      # the first step on its own, then momentum / moment estimates at work
        set_grads(modules, tparams, rng, scale=10.0 ** (step - 2))
        opt.step()
        ref.step()
        assert_same(modules, tparams, TOL[dtype])
    assert opt.step_count == 4


def test_step_updates_the_live_arrays_in_place():
    gru, head = make_modules()
    before = {name: value for name, value in gru.parameters().items()}
    snapshot = gru.state_dict()
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    out0, _ = gru(x)
    opt = optim.Adam([gru, head], lr=0.1)
    gru.backward(np.ones_like(out0))
    opt.step()
    for name, value in gru.parameters().items():
        assert value is before[name]                     # never rebound
        assert not np.array_equal(value, snapshot[name])  # but changed
    out1, _ = gru(x)
    assert not np.allclose(out0, out1)


def test_zero_grad_clears_every_module():
    modules = make_modules()
    for m in modules:
        for g in m.grads.values():
            g[...] = 1.0
    optim.SGD(modules, lr=0.1).zero_grad()
    assert all(not g.any() for m in modules for g in m.grads.values())


def test_each_parameter_once():
    model = numgru.GRUModel(2, 4, 1, seed=0)
    with pytest.raises(ValueError, match="same array"):
        optim.Adam([model, model.gru])


def test_bad_optimiser_arguments():
    modules = make_modules()
    with pytest.raises(ValueError, match=r"lr must lie in \[0.0, inf\], got -1.0"):
        optim.SGD(modules, lr=-1)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0 and dampening == 0"):
        optim.SGD(modules, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"betas\[1\] must lie in \[0.0, 1.0\), got 1.0"):
        optim.Adam(modules, betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="betas must be a pair"):
        optim.Adam(modules, betas=0.9)
    with pytest.raises(TypeError, match=r"lr must be a real number, got '0.1'"):
        optim.Adam(modules, lr="0.1")
    with pytest.raises(ValueError, match="at least one module"):
        optim.Adam([])
    with pytest.raises(TypeError, match=r"modules\[1\] must have .parameters\(\) and a .grads dict"):
        optim.Adam([modules[0], "not a module"])


# ------------------------------------------------------------------------------------ clipping

@pytest.mark.parametrize("max_norm", [0.5, 1e6])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    modules = make_modules()
    tparams = torch_params(modules)
    set_grads(modules, tparams, np.random.default_rng(5))
    total = optim.clip_grad_norm(modules, max_norm, norm_type=norm_type)
    ref = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    assert abs(total - ref.item()) <= 1e-13 * ref.item()
    i = 0
    for module in modules:
        for grad in module.grads.values():
            ref_grad = tparams[i].grad.numpy()
            assert np.abs(grad - ref_grad).max() <= 1e-13 * max(1.0, np.abs(ref_grad).max())
            i += 1


def test_clip_grad_norm_result_and_nonfinite():
    head = numgru.Linear(2, 1, dtype="float64", seed=0)
    head.grads["weight"][...] = [[3.0, 0.0]]
    head.grads["bias"][...] = [4.0]
    assert optim.clip_grad_norm([head], 1.0) == 5.0
    assert abs(np.sqrt(sum((g ** 2).sum() for g in head.grads.values())) - 5 / (5 + 1e-6)) < 1e-12
    head.grads["bias"][...] = [np.inf]
    with pytest.raises(RuntimeError, match="non-finite"):
        optim.clip_grad_norm([head], 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="max_norm must lie in"):
        optim.clip_grad_norm([head], -1.0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,kwargs", [c for c in CASES if c[0] != "SGD"] + [("Adam", dict(betas=(0.3, 0.9)))])
def test_adam_kernel_gives_the_bits_of_the_whole_array_formulas(name, kwargs, dtype):
    """The compiled one-pass step (serial, and parallel on a parameter big enough for threads) against
    tests/reference.py's NumPy operations: the same bits, step after step."""
    from reference import adam_reference
    modules = [numgru.GRU(3, 300, dtype=dtype, seed=0), numgru.Linear(300, 5, dtype=dtype, seed=1)]
    assert max(p.size for m in modules for p in m.parameters().values()) >= numgru.config.PARALLEL_MIN_REGION_WORK
    params = [p.copy() for m in modules for p in m.parameters().values()]
    opt = getattr(optim, name)(modules, **kwargs)
    settings = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01 if name == "AdamW" else 0.0,
                    amsgrad=False, maximize=False)
    settings.update(kwargs)
    states = [{} for _ in params]
    rng = np.random.default_rng(0)
    for step in range(4):
        grads = [(10.0 ** (step - 2) * rng.standard_normal(p.shape)).astype(dtype) for p in params]
        for (module, key), g in zip(opt._keys, grads):
            opt.modules[module].grads[key][...] = g
        opt.step()
        for p, g, state in zip(params, grads, states):
            adam_reference(p, g, state, decoupled=name == "AdamW", **settings)
        for (module, key), p in zip(opt._keys, params):
            assert np.array_equal(opt.modules[module].parameters()[key], p), (step, key)
