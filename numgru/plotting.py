"""PNG plots of a training run: the loss curve, and predictions against the truth.

Matplotlib is an optional extra (``pip install 'numgru[plot]'``); without it
every function here raises ``ImportError`` with that advice. Figures are
drawn on matplotlib's Agg canvas directly, so no pyplot backend is switched
and no window opens.
"""
import numpy as np

__all__ = ["plot_run", "plot_history", "plot_language_model", "plot_text_classifier", "plot_ctc", "plot_translation",
           "MATPLOTLIB_ADVICE"]

MATPLOTLIB_ADVICE = "matplotlib is not installed (pip install 'numgru[plot]' or pip install matplotlib)"


def _figure(ncols):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        missing = isinstance(err, ModuleNotFoundError) and (err.name or "").startswith("matplotlib")
        raise ImportError(MATPLOTLIB_ADVICE if missing else f"matplotlib cannot be imported: {err}") from None
    fig = Figure(figsize=(5.5 * ncols, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def _draw_history(ax, history):
    epochs = history.epochs
    ax.plot(epochs, history.loss, marker=".", label="training loss")
    if any(v is not None for v in history.val_loss):
        ax.plot(epochs, history.val_loss, marker=".", label="validation loss")
    if all(v is not None and v > 0 for v in history.loss + [v for v in history.val_loss if v is not None]):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if history.best_epoch is not None:
        ax.axvline(history.best_epoch, color="gray", linestyle=":", label=f"best epoch ({history.best_epoch})")
    ax.set_title("loss per epoch")
    ax.legend()


def plot_history(path, history):
    """The loss curve of a ``fit`` history, written to ``path`` (PNG). Returns the path."""
    fig, (ax,) = _figure(1)
    _draw_history(ax, history)
    fig.savefig(path, dpi=110)
    return path


def _confusion(ax, true, pred, names, title):
    k = len(names)
    matrix = np.zeros((k, k), np.int64)
    np.add.at(matrix, (true.ravel(), pred.ravel()), 1)
    ax.imshow(matrix, cmap="Blues")
    for i in range(k):
        for j in range(k):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_xticks(range(k), names, rotation=45 if max(len(str(n)) for n in names) > 2 else 0)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)


def _draw_predictions(ax, task, pred, metric_value):
    y = task.y_test
    label = f"test {task.metric_name} {metric_value:.4g} (baseline {task.baseline:.4g})"
    if task.kind == "classification":
        if task.output == "all":       # copy memory: the recalled symbols
            length = task.params.get("length", y.shape[1])
            true, guess = y[:, -length:], pred[:, -length:].argmax(-1)
            names = list(range(1, task.params.get("n_symbols", task.num_outputs - 2) + 1))
            _confusion(ax, true - 1, np.clip(guess - 1, 0, len(names) - 1), names, "recalled symbols\n" + label)
        else:
            names = task.classes or list(range(task.num_outputs))
            _confusion(ax, y, pred.argmax(-1), names, label)
        return
    if task.output == "all":            # one sequence, step by step
        ax.plot(range(y.shape[1]), y[0, :, 0], "s-", label="truth", linewidth=3, alpha=0.5)
        ax.plot(range(y.shape[1]), pred[0, :, 0], "o--", label="prediction")
        ax.set_xlabel("time step")
    elif task.scaling is not None:      # a forecast: the test period in the series' own units
        mean, std = task.scaling["mean"], task.scaling["std"]
        n = min(len(y), 150)            # enough cycles to see, few enough to tell the lines apart
        ax.plot(y[:n, 0] * std + mean, label="truth")
        ax.plot(pred[:n, 0] * std + mean, label="prediction")
        ax.plot(task.x_test[:n, -1, 0] * std + mean, ":", color="gray", label="persistence baseline")
        ax.set_xlabel("test window" if n == len(y) else f"test window (first {n} of {len(y)})")
    else:                               # many-to-one regression: predicted against true
        ax.scatter(y[:, 0], pred[:, 0], s=6, alpha=0.5)
        lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], color="gray", linestyle=":", label="perfect")
        ax.set_xlabel("true")
        ax.set_ylabel("predicted")
    ax.set_title("prediction vs truth\n" + label)
    ax.legend()


def plot_run(path, history, task, pred, metric_value):
    """Two panels, written to ``path`` (PNG): the loss curve, and test predictions against the truth.

    history: from ``fit``; task: a ``numgru.tasks.Task``; pred: the model's
    predictions on ``task.x_test``; metric_value: the test metric. Returns the path.
    """
    fig, (ax_loss, ax_pred) = _figure(2)
    _draw_history(ax_loss, history)
    if task.loss == "mse" and task.metric == "mse":       # the baseline is in the loss's own units
        ax_loss.axhline(task.baseline, color="red", linestyle="--", label=f"baseline ({task.baseline_name})")
        ax_loss.legend()
    _draw_predictions(ax_pred, task, np.asarray(pred), metric_value)
    fig.suptitle(f"numgru: {task.description}")
    fig.savefig(path, dpi=110)
    return path


def plot_language_model(path, history, title):
    """Training and validation nats per token of a ``LanguageModel.fit`` history, against training seconds
    and against epochs, written to ``path`` (PNG). Returns the path.
    """
    fig, axes = _figure(2)
    unit = history.unit
    for ax, x, label in zip(axes, (history.seconds, history.epochs), ("training seconds (evaluation excluded)",
                                                                      "epochs")):
        ax.plot(x, history.train_loss, marker=".", label="training (mean since the previous point)")
        if any(v is not None for v in history.val_nats):
            ax.plot(x, history.val_nats, marker=".", label="validation")
        ax.set_xlabel(label)
        ax.set_ylabel(f"nats per {unit}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return path


def plot_text_classifier(path, history, true, pred, classes, label, title):
    """Two panels, written to ``path`` (PNG): the loss curve of a ``TextClassifierModel.fit`` history, and the
    confusion matrix of the test labels ``true`` against ``pred`` (class indices), titled ``label``. Returns the path.
    """
    fig, (ax_loss, ax_confusion) = _figure(2)
    _draw_history(ax_loss, history)
    _confusion(ax_confusion, np.asarray(true), np.asarray(pred), classes, label)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return path


def plot_ctc(path, history, log_probs, names, said, title):
    """Two panels, written to ``path`` (PNG): the loss curve of a CTC model's ``fit`` history, and one test
    utterance's frame posteriors (``log_probs`` (T, C), classes ``names`` with the blank first), whose
    spikes are the labels heard; ``said`` is its reference. Returns the path.
    """
    fig, (ax_loss, ax_frames) = _figure(2)
    _draw_history(ax_loss, history)
    probs = np.exp(np.asarray(log_probs, np.float64)).T
    ax_frames.imshow(probs, aspect="auto", cmap="magma", origin="lower", interpolation="nearest")
    ax_frames.set_yticks(range(len(names)), names)
    ax_frames.set_xlabel("step")
    ax_frames.set_ylabel("output")
    ax_frames.set_title(f"frame posteriors of a test string (said: {said})")
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return path


def plot_translation(path, history, baseline_history, source_tokens, target_tokens, weights, title):
    """Seq2Seq training: the validation loss with and without attention, and one sentence's attention
    weights (rows: the target tokens produced, columns: the source tokens) as a heat map."""
    fig, (ax_loss, ax_map) = _figure(2)
    for label, run in (("attention", history), ("no attention", baseline_history)):
        line, = ax_loss.plot(run.epochs, run.loss, marker=".", label=f"{label}: training")
        ax_loss.plot(run.epochs, run.val_loss, marker=".", linestyle="--", color=line.get_color(),
                     label=f"{label}: validation (best epoch {run.best_epoch})")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy (nats per target token)")
    ax_loss.set_title("loss per epoch")
    ax_loss.legend(fontsize=8)
    image = ax_map.imshow(np.asarray(weights), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax_map.set_xticks(range(len(source_tokens)), source_tokens, rotation=45, ha="right")
    ax_map.set_yticks(range(len(target_tokens)), target_tokens)
    ax_map.set_xlabel("source")
    ax_map.set_ylabel("translation")
    ax_map.set_title("attention weights")
    fig.colorbar(image, ax=ax_map)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return path
