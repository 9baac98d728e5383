"""The epoch loop of the models that train on their own kind of data (texts, sentence pairs).

``train_epochs`` runs shuffled mini-batches through a model's ``step(rows)``
(forward, loss, backward for those rows of its data; returns the batch's mean
loss), with Adam, optional gradient clipping, a validation loss after every
epoch, early stopping and the best epoch's weights restored, and fills a
``numgru.History``. ``TextClassifierModel.fit`` and ``Seq2Seq.fit`` use it.
"""
import math
import time

import numpy as np

from . import validation
from .optim import Adam, clip_grad_norm
from .threads import one_blas_thread
from .training import History, _progress_bar

__all__ = ["train_epochs"]


def train_epochs(model, step, n_samples, *, validation_loss=None, epochs, batch_size, lr, weight_decay=0.0,
                 patience=5, min_delta=1e-4, clip_norm=None, shuffle=True, seed=None, restore_best=True,
                 progress=True, desc=None, loss_name="cross_entropy"):
    """Train ``model`` by ``step(rows) -> mean loss of the batch`` over ``n_samples`` rows; returns a History.

    validation_loss: ``() -> float``, evaluated after every epoch and monitored
    (without it, the epoch's training loss is). patience: stop after this
    many epochs without an improvement larger than ``min_delta`` (None: run
    every epoch). restore_best: end with the weights of the best epoch.
    seed: the shuffling's generator.
    """
    epochs = validation.check_positive_int("epochs", epochs)
    batch_size = validation.check_positive_int("batch_size", batch_size)
    if patience is not None:
        patience = validation.check_positive_int("patience", patience)
    min_delta = validation.check_real("min_delta", min_delta, low=0.0)
    if clip_norm is not None:
        clip_norm = validation.check_real("clip_norm", clip_norm, low=0.0, low_open=True)
    optimizer = Adam([model], lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    history = History(f"{'train' if validation_loss is None else 'val'}_{loss_name}", "min")
    bar = _progress_bar(epochs * n_samples, desc or type(model).__name__, progress)
    best_state, waited = None, 0
    try:
        with one_blas_thread():
            for epoch in range(1, epochs + 1):
                start_time = time.perf_counter()
                model.train()
                order = rng.permutation(n_samples) if shuffle else np.arange(n_samples)
                total = 0.0
                for start in range(0, n_samples, batch_size):
                    rows = order[start:start + batch_size]
                    optimizer.zero_grad()
                    value = step(rows)
                    if not math.isfinite(value):
                        raise FloatingPointError(f"training diverged: the loss is {value} at epoch {epoch}; "
                                                 "lower the learning rate or pass clip_norm")
                    if clip_norm is not None:
                        clip_grad_norm([model], clip_norm)
                    optimizer.step()
                    total += value * len(rows)
                    if bar is not None:
                        bar.update(len(rows))
                        bar.set_postfix_str(f"epoch {epoch}/{epochs} loss {value:.4g}", refresh=False)
                train_seconds = time.perf_counter() - start_time
                epoch_loss = total / n_samples
                val_loss = None if validation_loss is None else float(validation_loss())
                monitored = epoch_loss if val_loss is None else val_loss
                history.epochs.append(epoch)
                history.loss.append(epoch_loss)
                history.val_loss.append(val_loss)
                history.val_metric.append(monitored)
                history.seconds.append(time.perf_counter() - start_time)
                history.samples_per_s.append(n_samples / train_seconds if train_seconds > 0 else float("inf"))
                if history.best_metric is None or monitored < history.best_metric - min_delta:
                    history.best_metric, history.best_epoch = monitored, epoch
                    best_state, waited = model.state_dict() if restore_best else None, 0
                else:
                    waited += 1
                if bar is not None:
                    bar.set_postfix_str(f"epoch {epoch}/{epochs} loss {epoch_loss:.4g} "
                                        f"{history.metric_name} {monitored:.4g}")
                if patience is not None and waited >= patience and epoch < epochs:
                    history.stopped_early = True
                    break
    finally:
        if bar is not None:
            bar.close()
        model.drop_cache()
    if restore_best and history.best_epoch != history.epochs[-1]:
        model.load_state_dict(best_state)
        history.restored_best = True
    return history
