"""numgru.Linear and numgru.losses against torch.nn.Linear and torch.nn.functional (float64), plus bad input."""
import numpy as np
import pytest

import numgru
from numgru import losses

from reference import assert_close as close    # max|a - b| <= tol * max(1, max|b|)

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = 1e-12


# ----------------------------------------------------------------------------------- Linear

@pytest.mark.parametrize("shape", [(7,), (4, 7), (3, 5, 7), (2, 3, 4, 7)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(shape, bias):
    rng = np.random.default_rng(len(shape))
    head = numgru.Linear(7, 3, bias=bias, dtype="float64", seed=1)
    ref = torch.nn.Linear(7, 3, bias=bias, dtype=torch.float64)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in head.state_dict().items()})
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(shape[:-1] + (3,))
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    (yt * torch.from_numpy(dy)).sum().backward()
    y = head(x)
    dx = head.backward(dy)
    close(y, yt.detach().numpy())
    close(dx, xt.grad.numpy())
    close(head.grads["weight"], ref.weight.grad.numpy())
    if bias:
        close(head.grads["bias"], ref.bias.grad.numpy())
    assert sorted(head.grads) == sorted(dict(ref.named_parameters()))


def test_linear_grads_accumulate_and_zero():
    head = numgru.Linear(4, 2, dtype="float64", seed=0)
    x = np.ones((3, 4))
    head(x)
    head.backward(np.ones((3, 2)))
    once = head.grads["weight"].copy()
    head(x)
    head.backward(np.ones((3, 2)))
    close(head.grads["weight"], 2 * once)
    head.zero_grad()
    assert not head.grads["weight"].any() and not head.grads["bias"].any()


def test_linear_init_layout_and_seed():
    a = numgru.Linear(16, 5, seed=3)
    b = numgru.Linear(16, 5, seed=3)
    c = numgru.Linear(16, 5, seed=4)
    p = a.parameters()
    assert p["weight"].shape == (5, 16) and p["bias"].shape == (5,)
    assert p["weight"].dtype == np.float32
    assert np.abs(p["weight"]).max() <= 1 / 4 and np.abs(p["bias"]).max() <= 1 / 4
    assert np.abs(p["weight"]).max() > 0.2          # drawn over the whole interval
    assert np.array_equal(p["weight"], b.parameters()["weight"])
    assert not np.array_equal(p["weight"], c.parameters()["weight"])
    y = a(np.ones((2, 16), np.float32))
    assert y.dtype == np.float32


def test_linear_does_not_write_inputs():
    head = numgru.Linear(3, 2, dtype="float64", seed=0)
    x = np.arange(6, dtype=np.float64).reshape(2, 3)
    x.flags.writeable = False
    dy = np.ones((2, 2))
    dy.flags.writeable = False
    head(x)
    head.backward(dy)


def test_linear_bad_input():
    head = numgru.Linear(3, 2, seed=0)
    with pytest.raises(RuntimeError, match="forward first"):
        head.backward(np.ones((1, 2), np.float32))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 3\).*got shape \(4, 5\)"):
        head(np.ones((4, 5), np.float32))
    with pytest.raises(TypeError, match="x must be an array of float32 or float64, got dtype int64"):
        head(np.ones((4, 3), np.int64))
    head(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"dy must have the shape of the forward's output \(4, 2\), got \(4, 3\)"):
        head.backward(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match="in_features must be a positive integer, got 0"):
        numgru.Linear(0, 2)
    with pytest.raises(TypeError, match="out_features must be a positive integer"):
        numgru.Linear(3, 2.5)
    with pytest.raises(ValueError, match="contains NaN"):
        head(np.full((1, 3), np.nan, np.float32), check_finite=True)


# ------------------------------------------------------------------------------------ losses

@pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 6, 3)])
def test_mse_matches_torch(shape):
    rng = np.random.default_rng(0)
    pred, target = rng.standard_normal(shape), rng.standard_normal(shape)
    pt = torch.tensor(pred, requires_grad=True)
    ref = F.mse_loss(pt, torch.from_numpy(target))
    ref.backward()
    loss, grad = losses.mse(pred, target)
    assert isinstance(loss, float)
    assert abs(loss - ref.item()) <= TOL * abs(ref.item())
    close(grad, pt.grad.numpy())


@pytest.mark.parametrize("shape", [(6, 4), (3, 5, 4), (1, 2, 3, 4)])
def test_cross_entropy_matches_torch(shape):
    rng = np.random.default_rng(1)
    logits = 3 * rng.standard_normal(shape)
    labels = rng.integers(0, shape[-1], shape[:-1])
    lt = torch.tensor(logits, requires_grad=True)
    # torch puts the class dimension second for N-D input; numgru keeps it last.
    moved = lt if lt.ndim == 2 else lt.movedim(-1, 1)
    ref = F.cross_entropy(moved, torch.from_numpy(labels))
    ref.backward()
    loss, grad = losses.cross_entropy(logits, labels)
    assert abs(loss - ref.item()) <= TOL * abs(ref.item())
    close(grad, lt.grad.numpy())


def test_cross_entropy_extreme_logits_stay_finite():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0]])
    loss, grad = losses.cross_entropy(logits, np.array([0, 0]))
    assert np.isfinite(loss) and np.isfinite(grad).all()
    assert abs(loss - 1e4) < 1e-6       # (0 + 2e4) / 2
    ref = F.cross_entropy(torch.from_numpy(logits), torch.tensor([0, 0]))
    assert abs(loss - ref.item()) <= TOL * ref.item()


def test_losses_keep_float32():
    pred = np.ones((4, 2), np.float32)
    loss, grad = losses.mse(pred, np.zeros((4, 2), np.float32))
    assert grad.dtype == np.float32 and loss == 1.0
    _, grad = losses.cross_entropy(np.zeros((4, 3), np.float32), np.zeros(4, np.int64))
    assert grad.dtype == np.float32


def test_masks_average_over_the_selected_positions():
    rng = np.random.default_rng(2)
    pred, target = rng.standard_normal((3, 5, 2)), rng.standard_normal((3, 5, 2))
    mask = np.arange(5)[None, :] < np.array([5, 2, 3])[:, None]
    loss, grad = losses.mse(pred, target, mask=mask)
    sel_loss, sel_grad = losses.mse(pred[mask], target[mask])
    assert abs(loss - sel_loss) <= TOL * sel_loss
    close(grad[mask], sel_grad)
    assert not grad[~mask].any()

    logits, labels = rng.standard_normal((3, 5, 4)), rng.integers(0, 4, (3, 5))
    loss, grad = losses.cross_entropy(logits, labels, mask=mask)
    sel_loss, sel_grad = losses.cross_entropy(logits[mask], labels[mask])
    assert abs(loss - sel_loss) <= TOL * sel_loss
    close(grad[mask], sel_grad)
    assert not grad[~mask].any()


def test_losses_bad_input():
    with pytest.raises(ValueError, match=r"target must have the prediction's shape \(2, 3\), got \(3, 2\)"):
        losses.mse(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(TypeError, match="pred must be an array of float32 or float64, got dtype int64"):
        losses.mse(np.zeros((2, 3), np.int64), np.zeros((2, 3)))
    with pytest.raises(TypeError, match="labels must be an array of integer class indices, got dtype float64"):
        losses.cross_entropy(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\) for 3 classes, got min 0 and max 3"):
        losses.cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        losses.cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="mask selects no element"):
        losses.mse(np.zeros((2, 3)), np.zeros((2, 3)), mask=np.zeros(2, bool))
    with pytest.raises(ValueError, match=r"mask must have shape \(2,\)"):
        losses.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), mask=np.ones(3, bool))
    with pytest.raises(ValueError, match="loss must be one of"):
        losses.get("hinge")
