"""Tasks that ship with numgru: no downloads, deterministic under a seed, NumPy arrays out.

Every generator returns a ``Task`` with train/validation/test splits in the
batch-first layout numgru's ``GRUModel`` and ``fit`` use:

    ==============  =========================  ==============================  ========  ==================
    task            x                          y                               output    metric (baseline)
    ==============  =========================  ==============================  ========  ==================
    pattern         (1, 5, 1)                  (1, 5, 1)                       all       MSE (predict the mean)
    adding          (N, T, 2)                  (N, 1)                          last      MSE (predict the mean, ~0.167)
    copy            (N, delay+2*length, S+2)   (N, delay+2*length) int labels  all       recall accuracy (guess, 1/S)
    mackey-glass    (N, window, 1)             (N, 1)                          last      MSE (persistence)
    sunspots        (N, window, 1)             (N, 1)                          last      MSE (persistence)
    waveforms       (N, max_len, 1) + lengths  (N,) int labels in 0..3        last      accuracy (majority class)
    ==============  =========================  ==============================  ========  ==================

    >>> import numgru
    >>> task = numgru.tasks.load("adding", T=50, n_train=1000, seed=0)
    >>> task.x_train.shape, task.y_train.shape, round(task.baseline, 2)
    ((1000, 50, 2), (1000, 1), 0.17)

Forecasting series are split chronologically (train, then validation, then
test, never overlapping) and standardised with the training segment's mean
and standard deviation; ``task.scaling`` holds them, so predictions can be
mapped back with ``pred * scaling["std"] + scaling["mean"]``.
"""
import lzma
import os
from dataclasses import dataclass, field

import numpy as np

from . import validation

__all__ = ["Task", "TASKS", "load", "pattern", "adding", "copy_memory", "mackey_glass", "sunspots", "waveforms",
           "mackey_glass_series", "sunspots_series", "shakespeare_text", "sentiment_sentences", "tatoeba_pairs",
           "TextTask", "TEXT_TASKS", "shakespeare", "TextClassificationTask", "TEXT_CLASSIFICATION_TASKS", "sentiment",
           "TranslationTask", "translate", "TRANSLATION_TASKS", "FSDD_SPEAKERS", "Recordings", "fsdd_recordings",
           "SpeechTask", "digits", "digit_strings", "SPEECH_TASKS"]

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


@dataclass
class Task:
    """A supervised sequence task, split three ways. Arrays are float32 inputs, float32 or int64 targets."""

    name: str
    description: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    output: str                       # "last" (many-to-one) or "all" (many-to-many), for GRUModel(output=...)
    loss: str                         # "mse" or "cross_entropy", for fit(loss=...)
    metric: object                    # a name in numgru.training.METRICS or a callable (pred, target) -> float
    metric_name: str
    mode: str                         # "min" or "max": which way the metric improves
    baseline: float                   # the trivial baseline's metric on the test split
    baseline_name: str
    num_outputs: int                  # output_size of the head (classes for classification)
    lengths_train: np.ndarray = None
    lengths_val: np.ndarray = None
    lengths_test: np.ndarray = None
    scaling: dict = None              # {"mean": m, "std": s} of a standardised series, else None
    classes: list = None              # class names of a classification task
    recipe: dict = field(default_factory=dict)   # settings that train it well: hidden, layers, epochs, lr, batch, ...
    params: dict = field(default_factory=dict)   # the generator's arguments (to regenerate it)

    @property
    def input_size(self):
        return self.x_train.shape[-1]

    @property
    def kind(self):
        return "classification" if self.loss == "cross_entropy" else "regression"

    def __repr__(self):
        return (f"Task({self.name!r}: x_train {self.x_train.shape}, y_train {self.y_train.shape}, "
                f"val {len(self.x_val)}, test {len(self.x_test)}, {self.metric_name} baseline {self.baseline:.4g})")


def _sizes(**sizes):
    return {name: validation.check_positive_int(name, value) for name, value in sizes.items()}


# ---------------------------------------------------------------- tutorial pattern

def pattern(seed=None):
    """The tutorials' toy: input [0, 1, 0, 1, 0] -> target [1, 0, 1, 0, 1], one sequence of 5 steps.

    A memorisation exercise: validation and test hold the same sequence.
    Baseline: predicting the targets' mean (0.6) everywhere, MSE 0.24.
    ``seed`` is accepted for a uniform interface; the data never changes.
    """
    x = np.array([0, 1, 0, 1, 0], np.float32).reshape(1, 5, 1)
    y = 1 - x
    baseline = float(np.mean((y - y.mean()) ** 2))
    return Task("pattern", "tutorial pattern [0,1,0,1,0] -> [1,0,1,0,1]", x, y, x.copy(), y.copy(), x.copy(),
                y.copy(), output="all", loss="mse", metric="mse", metric_name="MSE", mode="min", baseline=baseline,
                baseline_name="predict the mean", num_outputs=1,
                recipe=dict(hidden=8, layers=1, epochs=300, lr=0.01, batch=1, clip=None, patience=None))


# ---------------------------------------------------------------- adding problem

def adding(T=50, n_train=10000, n_val=1000, n_test=1000, seed=0):
    """The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015): long-range memory.

    x[:, t, 0] ~ U(0, 1); x[:, t, 1] marks two steps, one in the first half
    and one in the second; y = the sum of the two marked values, (N, 1).
    Predicting the mean (1) scores MSE ≈ 1/6 ≈ 0.167.
    """
    T = validation.check_positive_int("T", T)
    if T < 2:
        raise ValueError(f"T must be at least 2 (one marker per half), got {T}")
    sizes = _sizes(n_train=n_train, n_val=n_val, n_test=n_test)
    rng = np.random.default_rng(seed)

    def make(n):
        values = rng.random((n, T), dtype=np.float64)
        half = T // 2
        first = rng.integers(0, half, n)
        second = rng.integers(half, T, n)
        markers = np.zeros((n, T))
        rows = np.arange(n)
        markers[rows, first] = 1
        markers[rows, second] = 1
        x = np.stack([values, markers], axis=-1).astype(np.float32)
        y = (values[rows, first] + values[rows, second]).astype(np.float32)[:, None]
        return x, y

    (xtr, ytr), (xva, yva), (xte, yte) = (make(sizes[k]) for k in ("n_train", "n_val", "n_test"))
    baseline = float(np.mean((yte - ytr.mean()) ** 2))
    return Task("adding", f"adding problem, T={T}", xtr, ytr, xva, yva, xte, yte, output="last", loss="mse",
                metric="mse", metric_name="MSE", mode="min", baseline=baseline, baseline_name="predict the mean",
                num_outputs=1, recipe=dict(hidden=32, layers=1, epochs=10, lr=5e-3, batch=64, clip=1.0, patience=4),
                params=dict(T=T, seed=seed, **sizes))


# ---------------------------------------------------------------- copy memory

def copy_memory(delay=20, length=10, n_symbols=8, n_train=10000, n_val=1000, n_test=1000, seed=0):
    """The copy-memory task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016).

    Input: ``length`` random symbols from 1..n_symbols, then ``delay - 1``
    blanks (0), a delimiter (n_symbols + 1), and ``length`` blanks; one-hot,
    (N, delay + 2*length, n_symbols + 2). Target: blanks, then the symbols
    again over the last ``length`` steps, as integer labels (N, delay + 2*length).
    Metric: accuracy over the recalled symbols; guessing scores 1/n_symbols.
    """
    delay = validation.check_positive_int("delay", delay)
    length = validation.check_positive_int("length", length)
    n_symbols = validation.check_positive_int("n_symbols", n_symbols)
    sizes = _sizes(n_train=n_train, n_val=n_val, n_test=n_test)
    rng = np.random.default_rng(seed)
    steps = delay + 2 * length
    classes = n_symbols + 2

    def make(n):
        symbols = rng.integers(1, n_symbols + 1, (n, length))
        tokens = np.zeros((n, steps), np.int64)
        tokens[:, :length] = symbols
        tokens[:, length + delay - 1] = n_symbols + 1
        y = np.zeros((n, steps), np.int64)
        y[:, -length:] = symbols
        x = np.eye(classes, dtype=np.float32)[tokens]
        return x, y

    (xtr, ytr), (xva, yva), (xte, yte) = (make(sizes[k]) for k in ("n_train", "n_val", "n_test"))

    def recall_accuracy(logits, labels, mask=None):
        """Share of the recalled symbols (the last ``length`` steps) predicted exactly."""
        logits = np.asarray(logits)
        return float((logits[:, -length:].argmax(axis=-1) == np.asarray(labels)[:, -length:]).mean())

    return Task("copy", f"copy memory, {length} symbols of {n_symbols} after a delay of {delay}", xtr, ytr, xva, yva,
                xte, yte, output="all", loss="cross_entropy", metric=recall_accuracy, metric_name="recall accuracy",
                mode="max", baseline=1.0 / n_symbols, baseline_name="guess a symbol", num_outputs=classes,
                recipe=dict(hidden=128, layers=1, epochs=40, lr=5e-3, batch=64, clip=1.0, patience=10),
                params=dict(delay=delay, length=length, n_symbols=n_symbols, seed=seed, **sizes))


# ---------------------------------------------------------------- chaotic and real series

def mackey_glass_series(n, tau=17.0, beta=0.2, gamma=0.1, power=10, dt=0.1, sample_every=1.0, discard=500.0,
                        seed=0):
    """``n`` samples of the Mackey-Glass delay equation dx/dt = beta x(t-tau) / (1 + x(t-tau)^power) - gamma x(t).

    Fourth-order Runge-Kutta with step ``dt`` (the delayed value at half steps
    is interpolated with a cubic), sampled every ``sample_every`` time units after
    ``discard`` time units of transient. The initial history is constant,
    drawn from U(0.5, 1.5) by ``seed``. tau=17 gives the classic chaotic regime.
    """
    n = validation.check_positive_int("n", n)
    tau = validation.check_real("tau", tau, low=0.0, low_open=True)
    dt = validation.check_real("dt", dt, low=0.0, low_open=True)
    sample_every = validation.check_real("sample_every", sample_every, low=0.0, low_open=True)
    delay_steps = int(round(tau / dt))
    stride = int(round(sample_every / dt))
    if abs(delay_steps * dt - tau) > 1e-9 * tau or abs(stride * dt - sample_every) > 1e-9 * sample_every:
        raise ValueError(f"tau={tau} and sample_every={sample_every} must be multiples of dt={dt}")
    skip = int(round(discard / dt))
    total = skip + n * stride
    rng = np.random.default_rng(seed)
    x = np.empty(delay_steps + total + 1)
    x[:delay_steps + 1] = rng.uniform(0.5, 1.5)

    def f(state, delayed):
        return beta * delayed / (1.0 + delayed ** power) - gamma * state

    for i in range(delay_steps, delay_steps + total):
        j = i - delay_steps
        d0, d1 = x[j], x[j + 1]
        # x(t - tau + dt/2) by cubic interpolation (4th order, as RK4): x[j-1] is the constant history at j=0
        dh = (9.0 * (d0 + d1) - x[max(j - 1, 0)] - x[j + 2]) / 16.0
        s = x[i]
        k1 = f(s, d0)
        k2 = f(s + 0.5 * dt * k1, dh)
        k3 = f(s + 0.5 * dt * k2, dh)
        k4 = f(s + dt * k3, d1)
        x[i + 1] = s + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    start = delay_steps + skip + stride
    return x[start:start + n * stride:stride].copy()


def sunspots_series():
    """(years, yearly mean sunspot numbers) for 1700-2008, 309 values, from numgru/data/ (see its README)."""
    path = os.path.join(DATA_DIR, "sunspots_yearly.csv")
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return data[:, 0].astype(np.int64), data[:, 1]


def _read_xz(name):
    """A UTF-8 text file of numgru/data/ compressed with lzma (made by scripts/make_text_data.py)."""
    with lzma.open(os.path.join(DATA_DIR, name)) as f:
        return f.read().decode("utf-8")


def shakespeare_text():
    """Tiny Shakespeare (char-rnn's corpus): one str of 1,115,394 characters, from numgru/data/ (see its README)."""
    return _read_xz("tinyshakespeare.txt.xz")


def sentiment_sentences():
    """Kotzias et al.'s 3,000 review sentences -> (sentences, labels int64 (3000,), sources).

    Labels are 1 (positive) and 0 (negative), 500 of each per source; sources are
    "amazon", "imdb", "yelp", 1,000 sentences each, in that order. Sentences are
    exactly as published (imdb's end in two spaces). From numgru/data/ (see its README).
    """
    lines = _read_xz("sentiment_sentences.tsv.xz").split("\n")   # "\n" only: sentences hold U+0085 (NEL)
    rows = [line.split("\t", 2) for line in lines[1:-1]]            # header first, a final line feed last
    sources, labels, sentences = zip(*rows)
    return list(sentences), np.array(labels, np.int64), list(sources)


def tatoeba_pairs():
    """Tatoeba's 5,000 English-French sentence pairs -> (english, french, attributions), lists of str.

    In the published order (by the English sentence's length, then code points); 2,597
    English sentences, several with more than one French translation. Each attribution
    is the pair's CC-BY 2.0 (France) credit, "CC-BY 2.0 (France) Attribution: tatoeba.org
    #<English id> (<author>) & #<French id> (<author>)", which the licence asks to keep
    with the sentences. From numgru/data/ (see its README).
    """
    lines = _read_xz("tatoeba_eng_fra.tsv.xz").split("\n")
    english, french, attributions = zip(*(line.split("\t") for line in lines[:-1]))   # a final line feed last
    return list(english), list(french), list(attributions)


def _forecast_task(name, description, series, window, horizon, fractions, recipe, params):
    """Chronological split of a series, standardised by the training part, windowed into (x, y)."""
    window = validation.check_positive_int("window", window)
    horizon = validation.check_positive_int("horizon", horizon)
    n = len(series)
    cut1, cut2 = int(n * fractions[0]), int(n * (fractions[0] + fractions[1]))
    segments = series[:cut1], series[cut1:cut2], series[cut2:]
    for part, seg in zip(("train", "validation", "test"), segments):
        if len(seg) < window + horizon:
            raise ValueError(f"the {part} part of the {name} series has {len(seg)} values, fewer than "
                             f"window + horizon = {window + horizon}; use a smaller window or more points")
    mean, std = float(segments[0].mean()), float(segments[0].std())
    out = []
    for seg in segments:
        z = (seg - mean) / std
        count = len(z) - window - horizon + 1
        idx = np.arange(window)[None, :] + np.arange(count)[:, None]
        x = z[idx][..., None].astype(np.float32)
        y = z[np.arange(count) + window + horizon - 1][:, None].astype(np.float32)
        out += [x, y]
    xtr, ytr, xva, yva, xte, yte = out
    baseline = float(np.mean((yte - xte[:, -1]) ** 2))
    return Task(name, description, xtr, ytr, xva, yva, xte, yte, output="last", loss="mse", metric="mse",
                metric_name="MSE", mode="min", baseline=baseline,
                baseline_name="persistence (repeat the last value)", num_outputs=1,
                scaling=dict(mean=mean, std=std), recipe=recipe, params=params)


def mackey_glass(n_points=4000, window=48, horizon=1, sample_every=3.0, tau=17.0, seed=0):
    """Forecast the Mackey-Glass (tau=17) chaotic series ``horizon`` samples ahead from ``window`` samples.

    The series is sampled every ``sample_every`` time units; split 70/15/15 in
    time; x (N, window, 1), y (N, 1), standardised. Baseline: persistence.
    """
    n_points = validation.check_positive_int("n_points", n_points)
    series = mackey_glass_series(n_points, tau=tau, sample_every=sample_every, seed=seed)
    return _forecast_task("mackey-glass", f"Mackey-Glass tau={tau:g}, {horizon} step(s) of {sample_every:g} ahead",
                          series, window, horizon, (0.7, 0.15),
                          recipe=dict(hidden=32, layers=1, epochs=25, lr=3e-3, batch=32, clip=1.0, patience=6),
                          params=dict(n_points=n_points, window=window, horizon=horizon, sample_every=sample_every,
                                      tau=tau, seed=seed))


def sunspots(window=20, horizon=1, seed=None):
    """Forecast yearly sunspot numbers (1700-2008, shipped with numgru) ``horizon`` years ahead.

    Split in time 70/15/15 (train 1700-1915, validation, test ~1962-2008);
    x (N, window, 1), y (N, 1), standardised with the training years' mean and
    std (``task.scaling``). Baseline: persistence. ``seed`` is accepted for a
    uniform interface; the data never changes.
    """
    _, values = sunspots_series()
    return _forecast_task("sunspots", f"yearly sunspot numbers, {horizon} year(s) ahead from {window}",
                          values, window, horizon, (0.7, 0.15),
                          recipe=dict(hidden=16, layers=1, epochs=200, lr=3e-3, batch=16, clip=1.0, patience=40),
                          params=dict(window=window, horizon=horizon))


# ---------------------------------------------------------------- sequence classification

WAVEFORMS = ("sine", "square", "triangle", "sawtooth")


def waveforms(min_len=30, max_len=60, noise=0.3, n_train=4000, n_val=500, n_test=500, seed=0):
    """Gesture-like sequence classification: which of sine, square, triangle, sawtooth is this noisy signal?

    Each sequence has its own length in [min_len, max_len] (zero-padded to
    max_len; ``lengths_*`` hold the lengths), period 8..20 steps, random phase,
    amplitude 0.5..1.5, offset ±0.3 and Gaussian noise of std ``noise``.
    x (N, max_len, 1), y (N,) labels 0..3. Baseline: the most frequent training class.
    """
    min_len = validation.check_positive_int("min_len", min_len)
    max_len = validation.check_positive_int("max_len", max_len)
    if min_len > max_len:
        raise ValueError(f"min_len must not exceed max_len, got {min_len} > {max_len}")
    noise = validation.check_real("noise", noise, low=0.0)
    sizes = _sizes(n_train=n_train, n_val=n_val, n_test=n_test)
    rng = np.random.default_rng(seed)

    def make(n):
        labels = rng.integers(0, len(WAVEFORMS), n)
        lengths = rng.integers(min_len, max_len + 1, n)
        period = rng.uniform(8, 20, (n, 1))
        phase = rng.random((n, 1))
        amplitude = rng.uniform(0.5, 1.5, (n, 1))
        offset = rng.uniform(-0.3, 0.3, (n, 1))
        u = (np.arange(max_len)[None, :] / period + phase) % 1.0          # position within the cycle
        shapes = np.stack([np.sin(2 * np.pi * u), np.where(u < 0.5, 1.0, -1.0),
                           4 * np.abs(u - 0.5) - 1, 2 * u - 1])             # (4, n, T)
        signal = shapes[labels, np.arange(n)] * amplitude + offset + noise * rng.standard_normal((n, max_len))
        signal[np.arange(max_len)[None, :] >= lengths[:, None]] = 0.0
        return signal[..., None].astype(np.float32), labels.astype(np.int64), lengths.astype(np.int64)

    (xtr, ytr, ltr), (xva, yva, lva), (xte, yte, lte) = (make(sizes[k]) for k in ("n_train", "n_val", "n_test"))
    majority = np.bincount(ytr, minlength=len(WAVEFORMS)).argmax()
    baseline = float(np.mean(yte == majority))
    return Task("waveforms", f"waveform classification (4 classes, lengths {min_len}-{max_len}, noise {noise:g})",
                xtr, ytr, xva, yva, xte, yte, output="last", loss="cross_entropy", metric="accuracy",
                metric_name="accuracy", mode="max", baseline=baseline, baseline_name="predict the majority class",
                num_outputs=len(WAVEFORMS), lengths_train=ltr, lengths_val=lva, lengths_test=lte,
                classes=list(WAVEFORMS),
                recipe=dict(hidden=32, layers=1, epochs=20, lr=5e-3, batch=32, clip=1.0, patience=6),
                params=dict(min_len=min_len, max_len=max_len, noise=noise, seed=seed, **sizes))


TASKS = {
    "adding": adding,
    "pattern": pattern,
    "copy": copy_memory,
    "mackey-glass": mackey_glass,
    "sunspots": sunspots,
    "waveforms": waveforms,
}


def load(name, **kwargs):
    """A task by name (one of ``TASKS``), with the generator's keyword arguments."""
    validation.check_choice("task", name, tuple(TASKS))
    return TASKS[name](**kwargs)


def size_arguments(name):
    """The size arguments (n_train, n_val, n_test, n_points, ...) a task's generator takes."""
    import inspect
    params = inspect.signature(TASKS[name]).parameters
    return [p for p in params if p.startswith("n_") and p != "n_symbols"]


# ---------------------------------------------------------------- language modelling

@dataclass
class TextTask:
    """A language-modelling task: one text to train on, one to validate on, and a recipe for ``LanguageModel``."""

    name: str
    description: str
    train_text: str
    val_text: str
    tokenizer: str                    # "char" or "word", for LanguageModel(tokenizer=...)
    lower: bool
    prompt: str                       # what a sample of the trained model's writing starts from
    recipe: dict = field(default_factory=dict)   # LanguageModel and LanguageModel.fit settings
    params: dict = field(default_factory=dict)

    def __repr__(self):
        return (f"TextTask({self.name!r}: {len(self.train_text)} training and {len(self.val_text)} validation "
                f"characters, {self.tokenizer}-level)")


def shakespeare(n_train=None, n_val=None):
    """Tiny Shakespeare, character-level: the first 90 % of the characters train, the last 10 % validate.

    1,003,854 and 111,540 characters, 65 distinct, all of the validation's
    seen in training (the split nanoGPT's char-level Shakespeare uses).
    n_train, n_val: keep only the first n characters of each part (small
    runs and tests). The recipe: a 2-layer GRU of 384 units (64-dimensional
    embedding), 32 streams x 100 steps a window, Adam with the learning rate
    falling linearly from 3e-3 to 3e-4 over 10 minutes of training. In short
    runs on the shared 2-core machine (0.25-0.55 s a window) it reached
    1.544 nats/char on the validation text after 580 windows at a constant
    3e-3, and 1.457 after 1,509 windows (the last 271 annealed to 3e-4).
    """
    corpus = shakespeare_text()
    cut = int(0.9 * len(corpus))
    train, val = corpus[:cut], corpus[cut:]
    for name, size in (("n_train", n_train), ("n_val", n_val)):
        if size is not None:
            validation.check_positive_int(name, size)
    train, val = train[:n_train], val[:n_val]
    return TextTask("shakespeare", "tiny Shakespeare, next character (90 % train / 10 % validation)", train, val,
                    tokenizer="char", lower=False, prompt="ROMEO:",
                    recipe=dict(embedding_dim=64, hidden=384, layers=2, dropout=0.0, batch=32, bptt=100, lr=3e-3,
                                lr_end=3e-4, clip=5.0, epochs=None, time_limit=600.0, eval_every=100),
                    params=dict(n_train=n_train, n_val=n_val))


TEXT_TASKS = {"shakespeare": shakespeare}


# ---------------------------------------------------------------- text classification

@dataclass
class TextClassificationTask:
    """Labelled texts split three ways (lists of str, int64 labels indexing ``classes``), for ``TextClassifierModel``."""

    name: str
    description: str
    texts_train: list
    y_train: np.ndarray
    texts_val: list
    y_val: np.ndarray
    texts_test: list
    y_test: np.ndarray
    classes: list
    tokenizer: str                    # "word" or "char", for TextClassifierModel(tokenizer=...)
    lower: bool
    params: dict = field(default_factory=dict)

    def __repr__(self):
        return (f"TextClassificationTask({self.name!r}: {len(self.texts_train)} train / {len(self.texts_val)} "
                f"validation / {len(self.texts_test)} test texts, classes {self.classes})")


def sentiment(seed=0, n_train=None, n_val=None, n_test=None):
    """Kotzias et al.'s 3,000 review sentences, positive or negative, word-level: 80 / 10 / 10 % split under ``seed``.

    Stratified by source and label (each of the six groups of 500 gives 400 /
    50 / 50), so every split holds the three sites and both labels in equal
    shares: 2,400 / 300 / 300 sentences. n_train, n_val, n_test keep only the
    first n of a (shuffled) split, for small runs and tests.
    """
    sentences, labels, sources = sentiment_sentences()
    for name, size in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if size is not None:
            validation.check_positive_int(name, size)
    rng = np.random.default_rng(seed)
    parts = ([], [], [])
    groups = {}
    for i, key in enumerate(zip(sources, labels.tolist())):
        groups.setdefault(key, []).append(i)
    for key in sorted(groups):
        members = rng.permutation(groups[key])
        cut1, cut2 = int(0.8 * len(members)), int(0.9 * len(members))
        for part, chosen in zip(parts, (members[:cut1], members[cut1:cut2], members[cut2:])):
            part.extend(chosen.tolist())
    splits = []
    for part, size in zip(parts, (n_train, n_val, n_test)):
        rows = rng.permutation(part)[:size]
        splits += [[sentences[i] for i in rows], labels[rows]]
    return TextClassificationTask("sentiment", "review sentence sentiment (Kotzias et al. 2015: amazon, imdb, yelp), "
                                  "80/10/10 split", *splits, classes=["negative", "positive"], tokenizer="word",
                                  lower=True, params=dict(seed=seed, n_train=n_train, n_val=n_val, n_test=n_test))


TEXT_CLASSIFICATION_TASKS = {"sentiment": sentiment}


# ---------------------------------------------------------------- translation

@dataclass
class TranslationTask:
    """Sentence pairs to train and validate on, and test sentences with every reference translation, for ``Seq2Seq``.

    sources_test[i] has the references references_test[i] (a list of str), all
    the translations the data holds for it; no test sentence is a training or
    validation source.
    """

    name: str
    description: str
    sources_train: list
    targets_train: list
    sources_val: list
    targets_val: list
    sources_test: list
    references_test: list
    tokenizer: str                    # for Seq2Seq(tokenizer=...)
    source_lower: bool
    target_lower: bool
    recipe: dict = field(default_factory=dict)   # Seq2Seq and Seq2Seq.fit settings, decoding
    params: dict = field(default_factory=dict)

    def __repr__(self):
        return (f"TranslationTask({self.name!r}: {len(self.sources_train)} train / {len(self.sources_val)} "
                f"validation pairs, {len(self.sources_test)} test sentences)")


def translate(seed=0, n_train=None, n_test=None, test_fraction=0.1, val_fraction=0.1):
    """English -> French on the Tatoeba pairs, split by English sentence under ``seed``.

    The 2,597 distinct English sentences are shuffled; ``test_fraction`` of
    them (260) are the test sentences, each with all its French translations
    as references (BLEU's multi-reference form), and ``val_fraction`` of the
    rest (234) give the validation pairs; the training pairs are those of the
    other English sentences. So a sentence and its paraphrases in French never
    straddle two splits. n_train, n_test: keep only the first n training pairs
    (in shuffled order) or test sentences, for small runs and tests.
    Tokens: words (``numgru.text.word_tokenize``), English lower-cased, French
    keeping its case, so translations come out cased.
    """
    english, french, _ = tatoeba_pairs()
    for name, size in (("n_train", n_train), ("n_test", n_test)):
        if size is not None:
            validation.check_positive_int(name, size)
    for name, fraction in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):
        validation.check_real(name, fraction, low=0.0, high=1.0, low_open=True, high_open=True)
    translations = {}
    for source, target in zip(english, french):
        translations.setdefault(source, []).append(target)
    rng = np.random.default_rng(seed)
    sentences = [list(translations)[i] for i in rng.permutation(len(translations))]
    n_test_sentences = round(test_fraction * len(sentences))
    n_val_sentences = round(val_fraction * (len(sentences) - n_test_sentences))
    test = sentences[:n_test_sentences][:n_test]
    val = sentences[n_test_sentences:n_test_sentences + n_val_sentences]
    train = sentences[n_test_sentences + n_val_sentences:]

    def pairs(group):
        return [(source, target) for source in group for target in translations[source]]

    train_pairs = [pairs(train)[i] for i in rng.permutation(len(pairs(train)))][:n_train]
    val_pairs = pairs(val)
    return TranslationTask("translate", f"Tatoeba English -> French, split by English sentence ({len(train)} / "
                           f"{len(val)} / {n_test_sentences} sentences)",
                           [p[0] for p in train_pairs], [p[1] for p in train_pairs],
                           [p[0] for p in val_pairs], [p[1] for p in val_pairs],
                           test, [translations[source] for source in test], tokenizer="word", source_lower=True,
                           target_lower=False,
                           recipe=dict(embedding_dim=128, hidden=256, layers=1, attention="general", dropout=0.3,
                                       batch=32, lr=2e-3, clip=5.0, epochs=40, patience=5, beam=5,
                                       length_penalty=1.0, max_len=30),
                           params=dict(seed=seed, n_train=n_train, n_test=n_test, test_fraction=test_fraction,
                                       val_fraction=val_fraction))


TRANSLATION_TASKS = {"translate": translate}



# ---------------------------------------------------------------- speech

FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
DIGITS = [str(d) for d in range(10)]


@dataclass
class Recordings:
    """Recordings as log-mel frames: ``log_mels[i]`` (T_i, n_mels) float32 dB, with what was said and by whom."""

    log_mels: list
    digit: np.ndarray                 # int64 (N,)
    speaker: np.ndarray               # str (N,)
    take: np.ndarray                  # int64 (N,): FSDD's recording number; 0-4 are the official test set
    settings: dict                    # numgru.audio's log-mel settings that made the frames

    def __len__(self):
        return len(self.log_mels)


def fsdd_recordings():
    """The Free Spoken Digit Dataset's 3,000 recordings as log-mel dB frames, from numgru/data/ (see its README).

    6 speakers x 10 digits x 50 takes, sorted by (speaker, digit, take); the
    frames are ``numgru.audio.log_mel`` with ``settings`` (8 kHz, 25 ms windows
    every 10 ms, 40 mel bands), stored to 0.5 dB (scripts/make_speech_data.py).
    """
    import io
    import json
    from . import audio
    with lzma.open(os.path.join(DATA_DIR, "fsdd_logmel.npz.xz")) as f:
        data = np.load(io.BytesIO(f.read()))
        settings = json.loads(str(data["settings"]))
        frames = audio.dequantize(data["logmel_q"], settings)
        offsets = data["offsets"]
        digit, speaker, take = data["digit"], data["speaker"], data["index"]
    return Recordings([frames[a:b] for a, b in zip(offsets[:-1], offsets[1:])], digit.astype(np.int64),
                      speaker.astype(str), take.astype(np.int64),
                      {k: v for k, v in settings.items() if k not in ("db_floor", "db_step")})


@dataclass
class SpeechTask:
    """Utterances as log-mel frames split three ways, with labels (``digits``) or label sequences (``digit-strings``).

    ``x_*`` are lists of (T_i, n_mels) float32 dB arrays (``numgru.speech.prepare``
    turns them into a model's input); ``y_*`` are int64 class indices (N,) for
    a classifier, or lists of int64 arrays (indices into ``classes``) for CTC.
    """

    name: str
    description: str
    x_train: list
    y_train: object
    x_val: list
    y_val: object
    x_test: list
    y_test: object
    classes: list
    kind: str                         # "classify" (SpeechClassifierModel) or "ctc" (CTCModel)
    settings: dict                    # the log-mel settings of the frames (what a WAV must be turned into)
    recipe: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)

    def __repr__(self):
        return (f"SpeechTask({self.name!r}: {len(self.x_train)} train / {len(self.x_val)} validation / "
                f"{len(self.x_test)} test utterances, {self.kind})")


def _validation_rows(rows, fraction, rng):
    """Split ``rows`` into (train, validation) with ``fraction`` of them (at least one) for validation."""
    rows = rng.permutation(rows)
    cut = max(1, int(round(fraction * len(rows))))
    return np.sort(rows[cut:]), np.sort(rows[:cut])


def _every_kth(rows, n):
    """About ``n`` of ``rows``, evenly spread (rows are sorted by speaker and digit, so every group keeps some)."""
    return rows if n is None or n >= len(rows) else rows[::int(np.ceil(len(rows) / n))]


def digits(test_speaker=None, seed=0, n_train=None, n_test=None):
    """Spoken digits (FSDD): one label 0-9 per recording.

    test_speaker=None: the official split, takes 0-4 of every speaker and
    digit test (300), takes 5-49 train (2,700). A speaker's name instead
    (one of ``FSDD_SPEAKERS``): speaker-independent, the other five speakers'
    2,500 recordings train and that speaker's 500 test. 10 % of the training
    recordings (under ``seed``) validate, for early stopping. The recipe: a
    bidirectional GRU of 128 units over 13 MFCCs + deltas (utterance-
    normalised), max pooling (validation accuracy over three seeds 0.989
    against mean pooling's 0.978), early stop after 4 epochs. n_train,
    n_test: keep only every k-th recording of a split, about n of them (small
    runs and tests; all digits and speakers stay in).
    """
    for name, size in (("n_train", n_train), ("n_test", n_test)):
        if size is not None:
            validation.check_positive_int(name, size)
    rec = fsdd_recordings()
    if test_speaker is None:
        test = rec.take < 5
        description = "spoken digits (FSDD), official split: takes 0-4 test, 5-49 train"
    else:
        test_speaker = validation.check_choice("test_speaker", test_speaker, FSDD_SPEAKERS)
        test = rec.speaker == test_speaker
        description = f"spoken digits (FSDD), speaker-independent: {test_speaker} held out"
    train, val = _validation_rows(np.flatnonzero(~test), 0.1, np.random.default_rng(seed))
    test = np.flatnonzero(test)
    train, test = _every_kth(train, n_train), _every_kth(test, n_test)
    pick = lambda rows: [rec.log_mels[i] for i in rows]       # noqa: E731
    return SpeechTask("digits", description, pick(train), rec.digit[train], pick(val), rec.digit[val], pick(test),
                      rec.digit[test], classes=list(DIGITS), kind="classify", settings=rec.settings,
                      recipe=dict(kind="mfcc", n_mfcc=13, deltas=2, normalize="utterance", stride=1, hidden=128,
                                  layers=1, pooling="max", dropout=0.3, epochs=12, batch=32, lr=3e-3,
                                  patience=4),
                      params=dict(test_speaker=test_speaker, seed=seed, n_train=n_train, n_test=n_test))


def _noise_log_mel(settings, seconds, rng):
    """The log-mel dB frames of unit-variance white noise (a level of L dB is these + L: power scales as the square)."""
    from . import audio
    signal = rng.standard_normal(int(seconds * settings["sample_rate"])).astype(np.float32)
    return audio.log_mel(signal, **settings)


def _join_digits(log_mels, rows, count, noise_db, rng, max_digits, pause_frames, edge_frames, noise_levels):
    """``count`` strings of 1..max_digits recordings drawn from ``rows``, joined by pauses of background noise."""
    strings, labels = [], []
    for _ in range(count):
        chosen = rng.choice(rows, size=int(rng.integers(1, max_digits + 1)))
        level = rng.uniform(*noise_levels)
        gaps = np.concatenate([[rng.integers(*edge_frames)], rng.integers(*pause_frames, size=len(chosen) - 1),
                               [rng.integers(*edge_frames)]])
        parts = []
        for k, gap in enumerate(gaps):
            start = int(rng.integers(0, len(noise_db) - gap))
            parts.append(noise_db[start:start + gap] + np.float32(level))
            if k < len(chosen):
                parts.append(log_mels[chosen[k]])
        strings.append(np.concatenate(parts).astype(np.float32))
        labels.append(chosen)
    return strings, labels


def digit_strings(n_train=3000, n_val=300, n_test=500, max_digits=7, streaming=False, seed=0):
    """Connected digits: 1 to ``max_digits`` FSDD recordings joined by short pauses, labelled by their digit sequence.

    Built deterministically under ``seed`` at the level of the log-mel frames:
    each string draws its digits' recordings, with repetition, from one pool
    only (training strings from the official training takes 5-49 less a
    validation tenth, validation strings from that tenth, test strings from
    the test takes 0-4), and joins them with pauses of 100-300 ms (5-15
    frames before the first digit and after the last) of white background
    noise at -70 to -50 dB (the quietest frames of the FSDD recordings lie at
    -74 to -42 dB, median -58). y holds each string's digits (int64 arrays).

    The recipe: a 2-layer bidirectional GRU of 96 units over 3 stacked
    log-mel frames a step (30 ms), utterance-normalised. streaming=True: the
    recipe of a streaming recogniser instead, a unidirectional GRU of 128
    units over globally normalised frames (nothing looks ahead).
    """
    for name, size in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test), ("max_digits", max_digits)):
        validation.check_positive_int(name, size)
    if not isinstance(streaming, (bool, np.bool_)):
        raise TypeError(f"streaming must be True or False, got {streaming!r}")
    rec = fsdd_recordings()
    rng = np.random.default_rng(seed)
    train, val = _validation_rows(np.flatnonzero(rec.take >= 5), 0.1, rng)
    test = np.flatnonzero(rec.take < 5)
    noise_db = _noise_log_mel(rec.settings, 20.0, rng)
    splits = []
    for rows, count in ((train, n_train), (val, n_val), (test, n_test)):
        strings, chosen = _join_digits(rec.log_mels, rows, count, noise_db, rng, max_digits, pause_frames=(10, 31),
                                       edge_frames=(5, 16), noise_levels=(-70.0, -50.0))
        splits += [strings, [rec.digit[c] for c in chosen]]
    return SpeechTask("digit-strings", f"connected digits (FSDD recordings, 1-{max_digits} a string, joined by "
                      "pauses)", *splits, classes=list(DIGITS), kind="ctc", settings=rec.settings,
                      recipe=dict(kind="logmel", deltas=0, normalize="global" if streaming else "utterance", stride=3,
                                  hidden=128 if streaming else 96, layers=2, bidirectional=not streaming, dropout=0.2,
                                  epochs=12, batch=16, lr=3e-3, patience=4, beam_width=8),
                      params=dict(n_train=n_train, n_val=n_val, n_test=n_test, max_digits=max_digits,
                                  streaming=streaming, seed=seed))


SPEECH_TASKS = {"digits": digits, "digit-strings": digit_strings}
