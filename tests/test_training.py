"""The tutorial example converges; GRUModel's gradients match torch; fit's history, early stop, restore, progress."""
import numpy as np
import pytest

import numgru
from numgru import losses, optim, tasks

torch = pytest.importorskip("torch")


# ------------------------------------------------------------------------------ the tutorial example

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tutorial_pattern_converges(seed):
    """GRU(1, 8) + Linear, MSE, Adam lr 0.01: [0,1,0,1,0] -> [1,0,1,0,1] to loss < 1e-3 within 300 epochs."""
    task = tasks.pattern()
    x = task.x_train[0]                              # (5, 1): one unbatched sequence, as the tutorials feed it
    y = task.y_train[0]
    gru = numgru.GRU(1, 8, seed=seed)
    head = numgru.Linear(8, 1, seed=seed + 100)
    opt = optim.Adam([gru, head], lr=0.01)
    history = []
    for _ in range(300):
        opt.zero_grad()
        out, _ = gru(x)
        pred = head(out)
        loss, dpred = losses.mse(pred, y)
        gru.backward(head.backward(dpred))
        opt.step()
        history.append(loss)
    assert history[0] > 0.1
    assert min(history) < 1e-3, f"best loss {min(history):.3g}"
    assert history[-1] < 1e-3, f"final loss {history[-1]:.3g}"
    final = losses.mse(head(gru(x)[0]), y)[0]
    assert final < 1e-3


# --------------------------------------------------------------------------- GRUModel vs torch

class TorchModel(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        g = model.gru
        self.gru = torch.nn.GRU(g.input_size, g.hidden_size, g.num_layers, batch_first=True,
                                bidirectional=g.bidirectional, dtype=torch.float64)
        self.head = torch.nn.Linear(model.head.in_features, model.output_size, dtype=torch.float64)
        self.output = model.output
        self.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})

    def forward(self, x, lengths):
        T = x.shape[1]
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths), batch_first=True,
                                                         enforce_sorted=False)
        out, hn = self.gru(packed)
        if self.output == "all":
            out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
            return self.head(out)
        last = hn[-1] if not self.gru.bidirectional else torch.cat([hn[-2], hn[-1]], dim=-1)
        return self.head(last)


@pytest.mark.parametrize("output,bidirectional,layers", [("last", False, 1), ("last", True, 2), ("all", False, 2),
                                                         ("all", True, 1)])
def test_gru_model_gradients_match_torch(output, bidirectional, layers):
    rng = np.random.default_rng(3)
    B, T, I = 4, 6, 3
    model = numgru.GRUModel(I, 5, 2, layers, output=output, bidirectional=bidirectional, dtype="float64", seed=9)
    ref = TorchModel(model)
    x = rng.standard_normal((B, T, I))
    lengths = np.array([6, 2, 4, 1])
    target = rng.standard_normal((B, 2) if output == "last" else (B, T, 2))
    mask = None if output == "last" else np.arange(T)[None] < lengths[:, None]

    pred = model(x, lengths=lengths)
    loss, dpred = losses.mse(pred, target, mask=mask)
    dx = model.backward(dpred)

    xt = torch.tensor(x, requires_grad=True)
    pt = ref(xt, lengths)
    if mask is None:
        ref_loss = torch.nn.functional.mse_loss(pt, torch.from_numpy(target))
    else:
        m = torch.from_numpy(mask)
        ref_loss = torch.nn.functional.mse_loss(pt[m], torch.from_numpy(target)[m])
    ref_loss.backward()
    assert abs(loss - ref_loss.item()) < 1e-12 * ref_loss.item()
    if mask is None:
        np.testing.assert_allclose(pred, pt.detach().numpy(), rtol=1e-11, atol=1e-13)
    else:
        np.testing.assert_allclose(pred[mask], pt.detach().numpy()[mask], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-13)
    ref_grads = {name: p.grad.numpy() for name, p in ref.named_parameters()}
    assert sorted(model.grads) == sorted(ref_grads)
    for name, grad in model.grads.items():
        np.testing.assert_allclose(grad, ref_grads[name], rtol=1e-10, atol=1e-13, err_msg=name)


def test_gru_model_holds_its_layers_arrays():
    model = numgru.GRUModel(2, 4, 3, seed=0)
    assert model.parameters()["gru.weight_hh_l0"] is model.gru.parameters()["weight_hh_l0"]
    assert model.parameters()["head.weight"] is model.head.parameters()["weight"]
    pred = model(np.ones((2, 5, 2), np.float32))
    model.backward(np.ones_like(pred))
    assert model.grads["gru.weight_hh_l0"] is model.gru.grads["weight_hh_l0"]
    assert model.grads["gru.weight_hh_l0"].any()
    model.zero_grad()
    assert not model.gru.grads["weight_hh_l0"].any()
    assert pred.shape == (2, 3)
    unbatched = model(np.ones((5, 2), np.float32))
    assert unbatched.shape == (3,) and np.allclose(unbatched, pred[0])


# ------------------------------------------------------------------------------------------- fit

def small_adding(seed=0):
    return tasks.adding(T=8, n_train=512, n_val=128, n_test=128, seed=seed)


def test_fit_learns_and_reports_history():
    task = small_adding()
    model = numgru.GRUModel(2, 16, 1, seed=0)
    history = numgru.fit(model, task.x_train, task.y_train, lr=1e-2, epochs=8, batch_size=32, clip_norm=1.0,
                         validation_data=(task.x_val, task.y_val), metric="mse", seed=0, progress=False)
    assert history.epochs == list(range(1, 9))
    assert len(history.loss) == len(history.val_loss) == len(history.val_metric) == len(history.seconds) == 8
    assert all(s > 0 for s in history.samples_per_s)
    assert history.val_metric[-1] < 0.5 * task.baseline, history.val_metric
    assert history.best_metric == min(history.val_metric)
    assert history.val_loss == history.val_metric     # the metric is the loss here
    test_loss, test_mse = numgru.evaluate(model, task.x_test, task.y_test, metric="mse")
    assert test_mse == pytest.approx(test_loss) and test_mse < 0.5 * task.baseline
    assert set(history.as_dict()) >= {"loss", "val_metric", "best_epoch", "stopped_early"}
    # the last batch's backward cache is dropped (it made a pickled model ~70x larger)
    assert model._cache is None and model.gru._cache is None and model.head._cache is None


def test_fit_is_deterministic_under_a_seed():
    task = small_adding()
    runs = []
    for _ in range(2):
        model = numgru.GRUModel(2, 8, 1, seed=4)
        history = numgru.fit(model, task.x_train, task.y_train, epochs=2, batch_size=64, seed=11, progress=False)
        runs.append((history.loss, model.state_dict()))
    assert runs[0][0] == runs[1][0]
    for name in runs[0][1]:
        assert np.array_equal(runs[0][1][name], runs[1][1][name])


def test_early_stop_and_restore_best():
    task = small_adding()
    model = numgru.GRUModel(2, 8, 1, seed=0)
    snapshots = []

    def worsening(pred, target):
        """A metric that is best at epoch 1 and worse after, recording the weights it saw."""
        snapshots.append(model.state_dict())
        return float(len(snapshots))

    history = numgru.fit(model, task.x_train, task.y_train, lr=1e-2, epochs=20, batch_size=64, patience=2,
                         validation_data=(task.x_val, task.y_val), metric=worsening, mode="min", progress=False)
    assert history.stopped_early and history.epochs == [1, 2, 3]
    assert history.best_epoch == 1 and history.restored_best
    for name, value in model.state_dict().items():
        assert np.array_equal(value, snapshots[0][name])
        assert not np.array_equal(value, snapshots[-1][name]) or "bias" in name


def test_fit_classification_with_lengths():
    task = tasks.waveforms(min_len=10, max_len=20, n_train=256, n_val=64, n_test=64, seed=0)
    model = numgru.GRUModel(1, 8, 4, seed=0)
    history = numgru.fit(model, task.x_train, task.y_train, loss="cross_entropy", lengths=task.lengths_train,
                         epochs=2, batch_size=32, lr=1e-2, metric="accuracy",
                         validation_data=(task.x_val, task.y_val, task.lengths_val), progress=False)
    assert history.mode == "max" and history.metric_name == "accuracy"
    assert all(0.0 <= a <= 1.0 for a in history.val_metric)
    assert history.loss[-1] < history.loss[0]
    # padded steps do not change the prediction
    padded = model.predict(task.x_val, lengths=task.lengths_val)
    trimmed = model.predict(task.x_val[:1, :task.lengths_val[0]])
    np.testing.assert_allclose(padded[:1], trimmed, rtol=1e-5, atol=1e-6)


def test_fit_many_to_many_masks_padding():
    task = tasks.copy_memory(delay=3, length=2, n_train=64, n_val=16, n_test=16, seed=0)
    model = numgru.GRUModel(task.input_size, 8, task.num_outputs, output="all", seed=0)
    lengths = np.full(64, task.x_train.shape[1])
    lengths[::2] -= 2
    history = numgru.fit(model, task.x_train, task.y_train, loss="cross_entropy", lengths=lengths, epochs=1,
                         batch_size=16, progress=False)
    assert np.isfinite(history.loss[0])


def test_fit_shows_a_progress_bar(capsys):
    task = small_adding()
    model = numgru.GRUModel(2, 4, 1, seed=0)
    numgru.fit(model, task.x_train[:64], task.y_train[:64], epochs=2, batch_size=32,
               validation_data=(task.x_val, task.y_val), progress=True, desc="unit")
    err = capsys.readouterr().err
    assert "unit" in err and "samples/s" in err and "loss" in err and "epoch 2/2" in err
    numgru.fit(model, task.x_train[:64], task.y_train[:64], epochs=1, progress=False)
    assert capsys.readouterr().err == ""


def test_fit_reports_divergence():
    task = small_adding()
    model = numgru.GRUModel(2, 4, 1, seed=0)

    def nan_loss(pred, target):
        return float("nan"), np.zeros_like(pred)

    with pytest.raises(FloatingPointError, match="training diverged: the loss is nan at epoch 1"):
        numgru.fit(model, task.x_train, task.y_train, loss=nan_loss, epochs=1, progress=False)


def test_fit_bad_input():
    task = small_adding()
    model = numgru.GRUModel(2, 4, 1, seed=0)
    with pytest.raises(ValueError, match=r"y must have 512 targets along its first axis"):
        numgru.fit(model, task.x_train, task.y_train[:10], progress=False)
    with pytest.raises(ValueError, match=r"x must be \(N, T, input_size\)"):
        numgru.fit(model, task.x_train[0], task.y_train, progress=False)
    with pytest.raises(ValueError, match="metric must be one of"):
        numgru.fit(model, task.x_train, task.y_train, validation_data=(task.x_val, task.y_val), metric="f1",
                   progress=False)
    with pytest.raises(TypeError, match="validation_data must be"):
        numgru.fit(model, task.x_train, task.y_train, validation_data=task.x_val, progress=False)
    with pytest.raises(ValueError, match="epochs must be a positive integer, got 0"):
        numgru.fit(model, task.x_train, task.y_train, epochs=0, progress=False)
    with pytest.raises(ValueError, match="output must be one of"):
        numgru.GRUModel(2, 4, 1, output="first")
