"""Token losses against torch.nn.functional (float64): cross_entropy with lengths / ignore_index / mask /
reduction over (T, B, C) and (B, T, C) logits, binary_cross_entropy_with_logits, huge logits, bad input."""
import numpy as np
import pytest

from numgru import losses

from reference import assert_close as close    # max|a - b| <= tol * max(1, max|b|)

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = 1e-12


def torch_cross_entropy(logits, labels, counted, reduction="mean"):
    """torch's cross_entropy over the counted positions (the others given ignore_index=-100): loss, dlogits."""
    C = logits.shape[-1]
    lt = torch.tensor(logits, requires_grad=True)
    target = torch.from_numpy(np.where(counted, labels, -100).reshape(-1))
    loss = F.cross_entropy(lt.reshape(-1, C), target, ignore_index=-100, reduction=reduction)
    loss.backward()
    return loss.item(), lt.grad.numpy()


def steps_within(lengths, T, batch_first):
    within = np.arange(T)[:, None] < np.asarray(lengths)[None, :]      # (T, B)
    return within.T if batch_first else within


# ------------------------------------------------------------------------------ cross_entropy

@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_lengths_match_torch_in_both_layouts(batch_first, reduction):
    rng = np.random.default_rng(0)
    T, B, C = 6, 4, 5
    lengths = np.array([6, 1, 3, 4])
    shape = (B, T) if batch_first else (T, B)
    logits = rng.standard_normal(shape + (C,)) * 3
    labels = rng.integers(0, C, size=shape)
    loss, grad = losses.cross_entropy(logits, labels, lengths=lengths, batch_first=batch_first, reduction=reduction)
    ref_loss, ref_grad = torch_cross_entropy(logits, labels, steps_within(lengths, T, batch_first), reduction)
    close(loss, ref_loss)
    close(grad, ref_grad)
    assert not grad[~steps_within(lengths, T, batch_first)].any()


@pytest.mark.parametrize("ignore_index", [-100, 0, 2, 7])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_ignore_index_matches_torch(ignore_index, reduction):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((5, 3, 4))
    labels = rng.integers(0, 4, size=(5, 3))
    labels[0, :2] = ignore_index                  # may lie outside [0, C), as in torch
    loss, grad = losses.cross_entropy(logits, labels, ignore_index=ignore_index, reduction=reduction)
    lt = torch.tensor(logits, requires_grad=True)
    ref = F.cross_entropy(lt.reshape(-1, 4), torch.from_numpy(labels.reshape(-1)), ignore_index=ignore_index,
                          reduction=reduction)
    ref.backward()
    close(loss, ref.item())
    close(grad, lt.grad.numpy())


def test_mask_lengths_and_ignore_index_combine():
    rng = np.random.default_rng(2)
    T, B, C = 5, 3, 6
    logits = rng.standard_normal((B, T, C))
    labels = rng.integers(0, C, size=(B, T))
    labels[0, 1] = labels[2, 0] = -1
    lengths = np.array([5, 2, 4])
    mask = rng.random((B, T)) < 0.8
    mask[0, 0] = True
    counted = mask & steps_within(lengths, T, True) & (labels != -1)
    loss, grad = losses.cross_entropy(logits, labels, mask, lengths=lengths, ignore_index=-1, batch_first=True)
    ref_loss, ref_grad = torch_cross_entropy(logits, labels, counted)
    close(loss, ref_loss)
    close(grad, ref_grad)


def test_existing_form_unchanged_and_defaults():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((7, 4))
    labels = rng.integers(0, 4, size=7)
    loss, grad = losses.cross_entropy(logits, labels)
    ref_loss, ref_grad = torch_cross_entropy(logits, labels, np.ones(7, bool))
    close(loss, ref_loss)
    close(grad, ref_grad)
    # batch_first alone changes nothing: it only says which axis lengths run along
    assert losses.cross_entropy(logits, labels, batch_first=True)[0] == loss


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_stay_finite_and_right(dtype):
    logits = np.array([[[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]],
                       [[5e3, 5e3, -1e4], [1e4, 1e4 - 1, -1e4]]], dtype)            # (T=2, B=2, C=3)
    labels = np.array([[1, 2], [0, 1]])
    lengths = np.array([2, 2])
    loss, grad = losses.cross_entropy(logits, labels, lengths=lengths)
    assert grad.dtype == dtype
    assert np.isfinite(loss) and np.isfinite(grad).all()
    ref_loss, ref_grad = torch_cross_entropy(logits.astype(np.float64), labels, np.ones((2, 2), bool))
    tol = 1e-6 if dtype == np.float32 else TOL
    assert abs(loss - ref_loss) <= tol * abs(ref_loss)
    close(grad, ref_grad, tol)
    assert ref_loss > 5000               # 2e4 for the first token: counted, not clamped


def test_the_loss_sums_float32_in_float64():
    logits = np.zeros((200_000, 2), np.float32)
    logits[:, 0] = 1.0
    loss, grad = losses.cross_entropy(logits, np.zeros(200_000, np.int64), reduction="sum")
    expected = 200_000 * np.log1p(np.exp(-1.0))
    assert abs(loss - expected) <= 1e-6 * expected
    assert grad.dtype == np.float32


def test_uncounted_positions_reach_nothing():
    """A NaN, inf or any label at a position that does not count leaves the loss and every other gradient alone."""
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((4, 2, 3))
    labels = rng.integers(0, 3, size=(4, 2))
    lengths = np.array([4, 2])
    reference = losses.cross_entropy(logits, labels, lengths=lengths)
    logits[2:, 1] = np.nan
    logits[3, 1, 0] = np.inf
    labels[2:, 1] = -5
    loss, grad = losses.cross_entropy(logits, labels, lengths=lengths, ignore_index=-5)
    assert loss == reference[0]
    assert grad.tobytes() == reference[1].tobytes()


def test_inputs_are_not_modified():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((3, 2, 4))
    labels = rng.integers(0, 4, size=(3, 2))
    labels[0, 0] = -100
    lengths = np.array([3, 2])
    mask = np.ones((3, 2), bool)
    arrays = (logits, labels, lengths, mask)
    copies = [a.copy() for a in arrays]
    for a in arrays:
        a.flags.writeable = False
    losses.cross_entropy(logits, labels, mask, lengths=lengths, ignore_index=-100)
    losses.binary_cross_entropy_with_logits(logits, (logits > 0).astype(np.float64), mask)
    for a, copy in zip(arrays, copies):
        np.testing.assert_array_equal(a, copy)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(logits=np.zeros((4, 3)), labels=np.zeros(4, np.int64), lengths=[4, 4, 4, 4]), ValueError,
     r"lengths needs 3-D logits \(T, B, C\), got logits of shape \(4, 3\)"),
    (dict(lengths=[2, 2]), ValueError, r"lengths must have one entry per sequence, shape \(3,\)"),
    (dict(lengths=[2, 2], batch_first=True), ValueError, r"lengths must have one entry per sequence, shape \(4,\)"),
    (dict(lengths=[1, 5, 1]), ValueError, r"lengths must lie in \[0, 4\]"),
    (dict(lengths=[1.0, 2.0, 3.0]), TypeError, "lengths must be an array of integers"),
    (dict(lengths=[0, 0, 0]), ValueError, "no position counts"),
    (dict(labels=np.full((4, 3), -100), ignore_index=-100), ValueError, "no position counts"),
    (dict(labels=np.full((4, 3), 2), ignore_index=2, mask=np.ones((4, 3), bool)), ValueError, "no position counts"),
    (dict(labels=np.full((4, 3), -1), ignore_index=-100), ValueError,
     r"labels must lie in \[0, 5\) for 5 classes \(besides ignore_index=-100\), got min -1 and max -1"),
    (dict(ignore_index=1.0), TypeError, "ignore_index must be an integer, got 1.0"),
    (dict(ignore_index=True), TypeError, "ignore_index must be an integer"),
    (dict(reduction="none"), ValueError, r"reduction must be one of \('mean', 'sum'\), got 'none'"),
    (dict(labels=np.zeros((4, 3))), TypeError, "labels must be an array of integer class indices, got dtype float64"),
    (dict(labels=np.zeros((4, 3), bool)), TypeError, "labels must be an array of integer .* got dtype bool"),
    (dict(mask=np.zeros((4, 3), bool)), ValueError, "mask selects no element"),
    (dict(logits=np.zeros((4, 3, 5), np.int64)), TypeError, "logits must be an array of float32 or float64"),
])
def test_bad_input_names_the_argument(kwargs, error, match):
    args = dict(logits=np.zeros((4, 3, 5)), labels=np.zeros((4, 3), np.int64))
    args.update(kwargs)
    with pytest.raises(error, match=match):
        losses.cross_entropy(args.pop("logits"), args.pop("labels"), args.pop("mask", None), **args)


# -------------------------------------------------------------- binary_cross_entropy_with_logits

@pytest.mark.parametrize("shape", [(7,), (4, 3), (2, 3, 5)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_matches_torch(shape, reduction):
    rng = np.random.default_rng(len(shape))
    logits = rng.standard_normal(shape) * 4
    targets = rng.random(shape)                   # soft targets as well as 0/1
    targets.reshape(-1)[::2] = np.round(targets.reshape(-1)[::2])
    loss, grad = losses.binary_cross_entropy_with_logits(logits, targets, reduction=reduction)
    lt = torch.tensor(logits, requires_grad=True)
    ref = F.binary_cross_entropy_with_logits(lt, torch.from_numpy(targets), reduction=reduction)
    ref.backward()
    close(loss, ref.item())
    close(grad, lt.grad.numpy())


def test_bce_mask_averages_over_the_selected_positions():
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((3, 5, 2))
    targets = (rng.random((3, 5, 2)) < 0.5).astype(np.float64)
    mask = np.arange(5)[None, :] < np.array([5, 2, 3])[:, None]
    loss, grad = losses.binary_cross_entropy_with_logits(logits, targets, mask)
    sel_loss, sel_grad = losses.binary_cross_entropy_with_logits(logits[mask], targets[mask])
    close(loss, sel_loss)
    close(grad[mask], sel_grad)
    assert not grad[~mask].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_huge_logits(dtype):
    logits = np.array([1e4, -1e4, 1e4, -1e4, 0.0], dtype)
    targets = np.array([1.0, 0.0, 0.0, 1.0, 0.5], dtype)
    loss, grad = losses.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    assert grad.dtype == dtype and np.isfinite(grad).all()
    lt = torch.tensor(logits.astype(np.float64), requires_grad=True)
    ref = F.binary_cross_entropy_with_logits(lt, torch.from_numpy(targets.astype(np.float64)), reduction="sum")
    ref.backward()
    assert abs(loss - ref.item()) <= 1e-7 * ref.item()
    close(grad, lt.grad.numpy())
    assert loss > 2e4 - 1


def test_bce_bad_input_and_registry():
    with pytest.raises(ValueError, match=r"targets must have the prediction's shape \(3,\)"):
        losses.binary_cross_entropy_with_logits(np.zeros(3), np.zeros(4))
    with pytest.raises(TypeError, match="targets must be an array of float32 or float64"):
        losses.binary_cross_entropy_with_logits(np.zeros(3), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.binary_cross_entropy_with_logits(np.zeros(3), np.zeros(3), reduction="max")
    with pytest.raises(ValueError, match="mask selects no element"):
        losses.binary_cross_entropy_with_logits(np.zeros(3), np.zeros(3), np.zeros(3, bool))
    assert losses.get("binary_cross_entropy_with_logits") is losses.binary_cross_entropy_with_logits
    assert losses.LOSSES["binary_cross_entropy_with_logits"] is losses.binary_cross_entropy_with_logits
