"""``fit``: epochs of shuffled mini-batches over NumPy arrays, with a progress bar, validation and early stop.

    >>> import numgru
    >>> task = numgru.tasks.adding(T=50, n_train=2000, seed=0)
    >>> model = numgru.GRUModel(2, 32, 1, seed=0)
    >>> history = numgru.fit(model, task.x_train, task.y_train, epochs=5, batch_size=64, lr=3e-3,
    ...                      validation_data=(task.x_val, task.y_val), progress=False)
    >>> history.val_metric[-1] < history.val_metric[0]
    True

The model is anything with ``model(x[, lengths=...]) -> pred``,
``model.backward(dpred)``, ``parameters()``/``grads``, ``train()``/``eval()``
and ``state_dict()``/``load_state_dict()``: ``numgru.GRUModel`` is one.
"""
import math
import time

import numpy as np

from . import losses, validation
from .grad_mode import no_grad
from .threads import one_blas_thread
from .optim import Adam, clip_grad_norm

__all__ = ["fit", "evaluate", "predict", "History", "METRICS"]


def _accuracy(logits, labels, mask=None):
    logits = np.asarray(logits)
    labels = validation.check_labels("labels", labels, logits.shape[:-1], logits.shape[-1])
    hits = logits.argmax(axis=-1) == labels
    if mask is not None:
        mask = validation.check_mask("mask", mask, labels.shape)
        return float(hits[mask].mean())
    return float(hits.mean())


def _mse(pred, target, mask=None):
    return losses.mse(pred, target, mask=mask)[0]


def _rmse(pred, target, mask=None):
    return math.sqrt(_mse(pred, target, mask))


def _mae(pred, target, mask=None):
    pred = np.asarray(pred)
    target = validation.check_target("target", target, pred.shape, pred.dtype)
    err = np.abs(pred - target)
    if mask is not None:
        mask = validation.check_mask("mask", mask, pred.shape[:np.ndim(mask)])
        return float(err[mask].mean())
    return float(err.mean())


def _cross_entropy(logits, labels, mask=None):
    return losses.cross_entropy(logits, labels, mask=mask)[0]


# name -> (function(pred, target, mask=None) -> float, "min" or "max")
METRICS = {
    "mse": (_mse, "min"),
    "rmse": (_rmse, "min"),
    "mae": (_mae, "min"),
    "cross_entropy": (_cross_entropy, "min"),
    "accuracy": (_accuracy, "max"),
}


class History:
    """What ``fit`` did, epoch by epoch. Lists are aligned: entry i is epoch ``epochs[i]``."""

    def __init__(self, metric_name, mode):
        self.metric_name = metric_name
        self.mode = mode
        self.epochs = []
        self.loss = []            # mean training loss over the epoch's batches (weighted by batch size)
        self.val_loss = []        # loss on the validation data (None without validation data)
        self.val_metric = []      # the monitored metric (the training loss without validation data)
        self.seconds = []         # wall time of the epoch, validation included
        self.samples_per_s = []   # training throughput
        self.best_epoch = None
        self.best_metric = None
        self.stopped_early = False
        self.restored_best = False

    def as_dict(self):
        return dict(metric_name=self.metric_name, mode=self.mode, epochs=self.epochs, loss=self.loss,
                    val_loss=self.val_loss, val_metric=self.val_metric, seconds=self.seconds,
                    samples_per_s=self.samples_per_s, best_epoch=self.best_epoch, best_metric=self.best_metric,
                    stopped_early=self.stopped_early, restored_best=self.restored_best)

    def __len__(self):
        return len(self.epochs)

    def __repr__(self):
        if not self.epochs:
            return "History(no epochs)"
        return (f"History({len(self.epochs)} epochs, loss {self.loss[-1]:.4g}, best {self.metric_name} "
                f"{self.best_metric:.4g} at epoch {self.best_epoch}{', stopped early' if self.stopped_early else ''})")


def _resolve_metric(metric, loss_name, mode):
    if metric is None:
        name, fn, default_mode = f"val_{loss_name}", None, "min"
    elif isinstance(metric, str):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {tuple(METRICS)}, a callable (pred, target) -> float, or None "
                             f"(the loss), got {metric!r}")
        fn, default_mode = METRICS[metric]
        name = metric
    elif callable(metric):
        fn, default_mode = metric, "min"
        name = getattr(metric, "__name__", "metric")
    else:
        raise TypeError(f"metric must be a name, a callable or None, got {type(metric).__name__}")
    mode = default_mode if mode is None else validation.check_choice("mode", mode, ("min", "max"))
    return name, fn, mode


def _sequence_mask(model, pred, lengths):
    """(B, T) mask of valid steps for a many-to-many model with lengths; None otherwise."""
    if lengths is None or getattr(model, "output", None) != "all" or np.ndim(pred) < 3:
        return None
    T = pred.shape[1]
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def _call_loss(fn, pred, target, mask):
    return fn(pred, target) if mask is None else fn(pred, target, mask=mask)


def _forward(model, x, lengths):
    return model(x) if lengths is None else model(x, lengths=lengths)


def predict(model, x, lengths=None, batch_size=1024):
    """The model's predictions on x in eval mode, ``batch_size`` sequences at a time."""
    batch_size = validation.check_positive_int("batch_size", batch_size)
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        preds = []
        with no_grad():
            for start in range(0, len(x), batch_size):
                sl = slice(start, start + batch_size)
                preds.append(_forward(model, x[sl], None if lengths is None else lengths[sl]))
        return np.concatenate(preds, axis=0)
    finally:
        model.train(was_training)


def evaluate(model, x, y, *, loss="mse", metric=None, lengths=None, batch_size=1024):
    """(loss, metric) of the model on (x, y) in eval mode; metric is None when not asked for.

    metric: a name from ``METRICS`` or a callable (pred, target) -> float.
    """
    loss_fn = losses.get(loss)
    x = validation.as_float_array("x", x, model.dtype)
    y = validation.check_samples("y", y, len(x))
    lengths = None if lengths is None else validation.check_samples("lengths", lengths, len(x))
    pred = predict(model, x, lengths, batch_size)
    mask = _sequence_mask(model, pred, lengths)
    value = _call_loss(loss_fn, pred, y, mask)[0]
    if metric is None:
        return value, None
    fn = METRICS[metric][0] if isinstance(metric, str) else metric
    return value, float(_call_loss(fn, pred, y, mask))


def fit(model, x, y, *, loss="mse", optimizer=None, lr=1e-3, epochs=10, batch_size=32, lengths=None,
        validation_data=None, metric=None, mode=None, patience=None, min_delta=0.0, clip_norm=None,
        shuffle=True, seed=None, progress=True, restore_best=True, desc="train"):
    """Train ``model`` on (x, y) for up to ``epochs`` epochs of mini-batches; return a ``History``.

    x: (N, T, input_size) float array (N sequences, batch-first); y: N targets
    (floats for "mse", integer labels for "cross_entropy"); lengths: (N,) or None.
    loss: "mse", "cross_entropy" or a callable (pred, target) -> (loss, dpred).
    optimizer: any numgru optimiser over [model]; default ``Adam([model], lr=lr)``.
    validation_data: (x_val, y_val) or (x_val, y_val, lengths_val); evaluated
    after every epoch with ``metric`` (a name from ``METRICS``, a callable
    (pred, target) -> float, or None for the validation loss); ``mode`` says
    whether lower ("min") or higher ("max") is better (default: by metric).
    Without validation data the training loss is monitored.
    patience: stop after this many epochs without an improvement larger than
    ``min_delta`` (None: never). restore_best: end with the weights of the best
    epoch. clip_norm: clip the global gradient norm of every batch to this.
    seed: the shuffling generator's seed. progress: show a tqdm bar (samples/s,
    ETA, loss, validation metric).
    """
    run = _FitArguments(model, x, y, loss=loss, epochs=epochs, batch_size=batch_size, lengths=lengths,
                        validation_data=validation_data, metric=metric, mode=mode, patience=patience,
                        min_delta=min_delta, clip_norm=clip_norm)
    x, y, lengths = run.x, run.y, run.lengths
    if optimizer is None:
        optimizer = Adam([model], lr=lr)

    def loss_and_backward(idx):
        value, dpred, _ = _batch_loss(model, run.loss_fn, x[idx], y[idx], None if lengths is None else lengths[idx])
        model.backward(dpred)
        return value

    state = _EpochState(np.random.default_rng(seed), History(run.metric_name, run.mode))
    return _train_epochs(model, run, state, _optimiser_steps(model, optimizer, run.clip_norm, loss_and_backward),
                         shuffle=shuffle, restore_best=restore_best, progress=progress, desc=desc)


def _optimiser_steps(model, optimizer, clip_norm, loss_and_backward):
    """``_train_epochs``'s train_batch: gradients zeroed, ``loss_and_backward(idx)`` (the batch's loss, its
    gradients added), the loss checked finite, clipping, the optimiser's step."""
    def train_batch(epoch, start, idx):
        optimizer.zero_grad()
        value = loss_and_backward(idx)
        _check_loss(value, epoch, start, len(idx))
        if clip_norm is not None:
            clip_grad_norm([model], clip_norm)
        optimizer.step()
        return value
    return train_batch


class _LoopArguments:
    """The epoch loop's own arguments, checked: epochs, batch size, early stop and clipping."""

    def __init__(self, epochs, batch_size, patience, min_delta, clip_norm):
        self.epochs = validation.check_positive_int("epochs", epochs)
        self.batch_size = validation.check_positive_int("batch_size", batch_size)
        self.patience = None if patience is None else validation.check_positive_int("patience", patience)
        self.min_delta = validation.check_real("min_delta", min_delta, low=0.0)
        self.clip_norm = None if clip_norm is None else validation.check_real("clip_norm", clip_norm, low=0.0,
                                                                             low_open=True)


class _FitArguments(_LoopArguments):
    """``fit``'s arguments, checked: what the epochs of any training loop (one process or many) run on.

    x, y and lengths are left as given when ``check_data=False`` (arrays held
    elsewhere, whose checks the caller makes); N is then ``len(x)``.
    """

    def __init__(self, model, x, y, *, loss, epochs, batch_size, lengths, validation_data, metric, mode,
                 patience, min_delta, clip_norm, check_data=True):
        super().__init__(epochs, batch_size, patience, min_delta, clip_norm)
        self.loss_fn = losses.get(loss)
        self.loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "loss")
        if check_data:
            x, y, lengths = _check_training_data(model, x, y, lengths)
        self.x, self.y, self.lengths, self.N = x, y, lengths, len(x)
        self.x_val = self.y_val = self.lengths_val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise TypeError("validation_data must be (x_val, y_val) or (x_val, y_val, lengths_val)")
            self.x_val = validation.as_float_array("validation_data[0] (x_val)", validation_data[0], model.dtype)
            self.y_val = validation.check_samples("validation_data[1] (y_val)", validation_data[1], len(self.x_val),
                                                  "targets")
            if len(validation_data) == 3 and validation_data[2] is not None:
                self.lengths_val = validation.check_lengths(validation_data[2], len(self.x_val), self.x_val.shape[1])
        self.metric_name, self.metric_fn, self.mode = _resolve_metric(metric, self.loss_name, mode)
        if validation_data is None:
            self.metric_name, self.metric_fn, self.mode = f"train_{self.loss_name}", None, "min"


    def validate(self, model):
        """(validation loss, monitored value) after an epoch, or None without validation data."""
        if self.x_val is None:
            return None
        val_loss, val_metric = evaluate(model, self.x_val, self.y_val, loss=self.loss_fn, metric=self.metric_fn,
                                        lengths=self.lengths_val)
        return val_loss, val_loss if self.metric_fn is None else val_metric


class _RowArguments(_LoopArguments):
    """What ``_train_epochs`` reads, for ``fit_rows``: a loss to minimise over rows and a validation loss."""

    def __init__(self, n_samples, epochs, batch_size, patience, min_delta, clip_norm, validation_loss):
        super().__init__(epochs, batch_size, patience, min_delta, clip_norm)
        self.N = n_samples
        self.mode = "min"
        self.validation_loss = validation_loss

    def validate(self, model):
        if self.validation_loss is None:
            return None
        value = float(self.validation_loss())
        return value, value


def fit_rows(model, step, n_samples, *, validation_loss=None, epochs, batch_size, lr, weight_decay=0.0, patience=5,
             min_delta=1e-4, clip_norm=None, shuffle=True, seed=None, restore_best=True, progress=True, desc=None,
             loss_name="cross_entropy"):
    """``fit``'s epochs for a model that trains on data of its own (texts, sentence pairs): ``step(rows)``
    runs forward, loss and backward on those rows of it and returns the batch's mean loss; Adam (with
    ``weight_decay``) and clipping follow. ``validation_loss() -> float``, evaluated after every epoch, is
    monitored (without it, the epoch's training loss is); early stop, restore_best and seed as in ``fit``.
    """
    run = _RowArguments(n_samples, epochs, batch_size, patience, min_delta, clip_norm, validation_loss)
    train_batch = _optimiser_steps(model, Adam([model], lr=lr, weight_decay=weight_decay), run.clip_norm, step)
    history = History(f"{'train' if validation_loss is None else 'val'}_{loss_name}", "min")
    state = _EpochState(np.random.default_rng(seed), history)
    return _train_epochs(model, run, state, train_batch, shuffle=shuffle, restore_best=restore_best,
                         progress=progress, desc=desc or type(model).__name__)


def _check_training_data(model, x, y, lengths):
    """x (N, T, input_size) in the model's dtype, y with N targets (floats cast to it), lengths (N,) or None."""
    x = validation.as_float_array("x", x, model.dtype)
    if x.ndim != 3:
        raise ValueError(f"x must be (N, T, input_size): N sequences, batch-first, got shape {x.shape}")
    y = validation.check_samples("y", y, x.shape[0], "targets")
    if y.dtype.kind == "f":
        y = y.astype(model.dtype, copy=False)
    if lengths is not None:
        lengths = validation.check_lengths(lengths, x.shape[0], x.shape[1])
    return x, y, lengths


def _batch_loss(model, loss_fn, xb, yb, lb):
    """Forward and loss of one batch: (loss, its gradient with respect to the prediction, sequence mask or None)."""
    pred = _forward(model, xb, lb)
    mask = _sequence_mask(model, pred, lb)
    value, dpred = _call_loss(loss_fn, pred, yb, mask)
    return value, dpred, mask


def _check_loss(value, epoch, start, n):
    if not math.isfinite(value):
        raise FloatingPointError(f"training diverged: the loss is {value} at epoch {epoch}, samples "
                                 f"{start}..{start + n}; lower the learning rate or pass clip_norm")


class _EpochState:
    """What an epoch boundary leaves behind: the shuffling generator, the history, the best weights so far and
    the epochs waited since; a checkpoint saves it and a resumed run continues from it."""

    def __init__(self, rng, history, best_state=None, waited=0):
        self.rng, self.history, self.best_state, self.waited = rng, history, best_state, waited

    @property
    def epoch(self):
        """The last epoch done (0 before the first)."""
        return self.history.epochs[-1] if self.history.epochs else 0


def _train_epochs(model, run, state, train_batch, *, shuffle, restore_best, progress, desc, after_epoch=None):
    """The epochs from ``state.epoch + 1`` on: ``train_batch(epoch, start, idx) -> loss`` trains one batch of
    the shuffled order; validation, early stop and the best weights as ``fit`` documents them.
    ``after_epoch(state)`` runs at the end of every epoch (a checkpoint). Returns the history."""
    N, epochs, history = run.N, run.epochs, state.history
    first = epochs + 1 if history.stopped_early else state.epoch + 1
    bar = _progress_bar(max(epochs - first + 1, 0) * N, desc, progress)

    def train_epoch(epoch):
        """One pass over the shuffled training data; returns the mean loss (weighted by batch size)."""
        model.train()
        order = state.rng.permutation(N) if shuffle else np.arange(N)
        total = 0.0
        for start in range(0, N, run.batch_size):
            idx = order[start:start + run.batch_size]
            value = train_batch(epoch, start, idx)
            total += value * len(idx)
            if bar is not None:
                bar.update(len(idx))
                bar.set_postfix_str(f"epoch {epoch}/{epochs} loss {value:.4g}" + _last_metric(history),
                                    refresh=False)
        return total / N

    try:
        # One BLAS thread for the whole run: NumPy's own products between kernels would otherwise wake
        # BLAS worker threads that spin against Numba's threads on the same cores.
        with one_blas_thread():
            for epoch in range(first, epochs + 1):
                start_time = time.perf_counter()
                epoch_loss = train_epoch(epoch)
                train_seconds = time.perf_counter() - start_time
                validated = run.validate(model)
                val_loss, monitored = (None, epoch_loss) if validated is None else validated
                history.epochs.append(epoch)
                history.loss.append(epoch_loss)
                history.val_loss.append(val_loss)
                history.val_metric.append(monitored)
                history.seconds.append(time.perf_counter() - start_time)
                history.samples_per_s.append(N / train_seconds if train_seconds > 0 else float("inf"))
                best = history.best_metric
                if best is None or (monitored < best - run.min_delta if run.mode == "min"
                                    else monitored > best + run.min_delta):
                    history.best_metric, history.best_epoch = monitored, epoch
                    state.waited = 0
                    if restore_best:
                        state.best_state = model.state_dict()
                else:
                    state.waited += 1
                if bar is not None:
                    bar.set_postfix_str(f"epoch {epoch}/{epochs} loss {epoch_loss:.4g}" + _last_metric(history))
                history.stopped_early = run.patience is not None and state.waited >= run.patience and epoch < epochs
                if after_epoch is not None:
                    after_epoch(state)
                if history.stopped_early:
                    break
    finally:
        if bar is not None:
            bar.close()
        if hasattr(model, "drop_cache"):
            model.drop_cache()          # the last batch's cache is of no use after training
    if restore_best and state.best_state is not None and history.best_epoch != history.epochs[-1]:
        model.load_state_dict(state.best_state)
        history.restored_best = True
    return history


def _last_metric(history):
    if not history.val_metric:
        return ""
    return f" {history.metric_name} {history.val_metric[-1]:.4g}"


def _progress_bar(total, desc, progress):
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit=" samples", unit_scale=True, dynamic_ncols=True, leave=True,
                mininterval=0.5)
