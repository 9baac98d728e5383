"""Speech: GRU acoustic models over audio features, from WAV files to labels.

Two models share one front end (how a recording becomes the model's input
frames) and one body (a GRU stack over each utterance's own frames):

- ``SpeechClassifierModel``: one label per utterance (spoken-digit
  recognition): pooling over the frames, then a Linear head. Trained with
  ``numgru.fit(model, x, labels, loss="cross_entropy", lengths=...)``.
- ``CTCModel``: a label sequence per utterance (connected digits): a Linear
  head on every frame, log-softmax, and the CTC loss; decoded by best path or
  prefix beam search (``numgru.ctc``). Trained with
  ``numgru.fit(model, x, targets, loss=numgru.speech.ctc_objective, lengths=...)``,
  targets padded with -1.

Inputs are batch-first padded frames ``x (B, T, F)`` with ``lengths (B,)``;
frames past a length are never read, so padding never changes a result.
Inside, the GRU runs time-major over the batch's own longest utterance.

The front end is a plain dict stored in the model file (``front_end()``
builds and checks one): the log-mel settings of ``numgru.audio``, MFCC or
log-mel, deltas, per-utterance or global normalisation, frame stacking. A
saved model therefore transcribes WAV files by itself (``transcribe``). It
runs on the CPU.
"""
import numpy as np

from . import audio, ctc, losses, validation
from .grad_mode import grad_enabled, no_grad
from .gru import GRU
from .kernels import cpu
from .linear import Linear
from .module import Module
from .streaming import GRUStream
from .text_classifier import POOLINGS, _check_classes
from .threads import one_blas_thread, threads_for

__all__ = ["front_end", "prepare", "global_statistics", "SpeechClassifierModel", "CTCModel", "SpeechStream",
           "ctc_objective", "label_error_rate", "summary_features", "summary_logistic_regression", "energy_segments",
           "segment_and_classify", "FEATURE_KINDS",
           "NORMALIZATIONS"]

FEATURE_KINDS = ("logmel", "mfcc")
NORMALIZATIONS = audio.NORMALIZATIONS


def front_end(kind="logmel", n_mfcc=13, deltas=0, normalize="utterance", mean=None, std=None, stride=1,
              settings=None):
    """A checked front-end description (a JSON-able dict) for ``prepare`` and the models.

    kind: "logmel" (the log-mel dB frames) or "mfcc" (``n_mfcc`` cepstra of them);
    deltas: 0, 1 or 2 (append first, and second, differences over +-4 frames);
    normalize: "utterance" (each utterance to zero mean, unit variance over its
    own frames), "global" (with ``mean``/``std`` of the training frames, as
    ``global_statistics`` gives: what streaming needs, since an utterance's
    future is unknown) or "none"; stride: stack this many consecutive frames
    into one (Deep Speech 2's frame stacking: fewer, wider steps);
    settings: the log-mel settings (default ``numgru.audio.FSDD_SETTINGS``).
    """
    kind = validation.check_choice("kind", kind, FEATURE_KINDS)
    normalize = validation.check_choice("normalize", normalize, NORMALIZATIONS)
    deltas = validation.check_nonnegative_int("deltas", deltas)
    if deltas > 2:
        raise ValueError(f"deltas must be 0, 1 or 2, got {deltas}")
    settings = dict(audio.FSDD_SETTINGS if settings is None else settings)
    n_mels = validation.check_positive_int("settings['n_mels']", settings["n_mels"])
    n_mfcc = validation.check_positive_int("n_mfcc", n_mfcc) if kind == "mfcc" else None    # log-mel: unused
    if kind == "mfcc" and n_mfcc > n_mels:
        raise ValueError(f"n_mfcc must be at most n_mels={n_mels}, got {n_mfcc}")
    base = n_mfcc if kind == "mfcc" else n_mels
    size = base * (1 + deltas)
    if normalize == "global":
        if mean is None or std is None:
            raise ValueError("normalize='global' needs mean and std (numgru.speech.global_statistics gives them)")
        mean = validation.as_float_array("mean", mean, np.float64).reshape(-1)
        std = validation.as_float_array("std", std, np.float64).reshape(-1)
        for name, value in (("mean", mean), ("std", std)):
            if value.shape != (size,):
                raise ValueError(f"{name} must hold one value per feature, shape ({size},), got {value.shape}")
        if not (std > 0).all():
            raise ValueError("std must be positive everywhere")
        mean, std = mean.tolist(), std.tolist()
    elif mean is not None or std is not None:
        raise ValueError(f"mean and std apply to normalize='global', not {normalize!r}")
    stride = validation.check_positive_int("stride", stride)
    return dict(kind=kind, n_mfcc=n_mfcc, deltas=deltas, normalize=normalize,
                mean=mean, std=std, stride=stride, settings=settings, size=size * stride)


_TRANSFORM_KEYS = ("kind", "n_mfcc", "deltas", "normalize", "mean", "std", "stride")


def _transform_options(front):
    """The ``numgru.audio.transform`` arguments of a front end."""
    options = {key: front[key] for key in _TRANSFORM_KEYS}
    options["n_mfcc"] = options["n_mfcc"] or 13          # log-mel: unused
    return options


def global_statistics(log_mels, front):
    """(mean, std) of every real frame of ``log_mels`` under ``front`` without normalisation (for "global")."""
    x, lengths = audio.transform(log_mels, **dict(_transform_options(front), normalize="none", mean=None, std=None,
                                                  stride=1))
    real = x[np.arange(x.shape[1]) < lengths[:, None]]
    return real.mean(axis=0, dtype=np.float64), real.std(axis=0, dtype=np.float64)


def prepare(log_mels, front):
    """A list of log-mel dB arrays (T_i, n_mels) (``numgru.audio.log_mel``) -> (x (B, T, F) float32, lengths)."""
    return audio.transform(log_mels, **_transform_options(front))


class _AcousticModel(Module):
    """What both models share: the front end, the GRU body over time-major frames, files in."""

    devices = ("cpu",)

    def __init__(self, front, hidden_size, num_layers, bidirectional, dropout, num_outputs, dtype, device, seed):
        super().__init__(dtype, device, seed)
        if not isinstance(front, dict):
            raise TypeError(f"front must be a dict from numgru.speech.front_end(), got {type(front).__name__}")
        self.front = front_end(**{k: v for k, v in front.items() if k != "size"})
        self.dropout = validation.check_dropout(dropout)
        num_layers = validation.check_positive_int("num_layers", num_layers)
        gru_seed, head_seed = (None, None) if seed is None else (
            int(s) for s in np.random.SeedSequence(seed).generate_state(2))
        self.gru = GRU(self.front["size"], hidden_size, num_layers, dropout=self.dropout if num_layers > 1 else 0.0,
                       bidirectional=bidirectional, dtype=self.dtype, device=self.device, seed=gru_seed)
        self.head = Linear(self.gru.num_directions * self.gru.hidden_size, num_outputs, dtype=self.dtype,
                           device=self.device, seed=head_seed)
        self._adopt_layers("gru", "head")
        self._cache = None

    input_size = property(lambda self: self.gru.input_size)
    hidden_size = property(lambda self: self.gru.hidden_size)
    num_layers = property(lambda self: self.gru.num_layers)
    bidirectional = property(lambda self: self.gru.bidirectional)
    sample_rate = property(lambda self: self.front["settings"]["sample_rate"])

    def _body(self, x, lengths):
        """Batch-first (B, T, F) -> the GRU's time-major out (T_b, B, D*H) over the batch's longest utterance."""
        x = validation.as_float_array("x", x, self.dtype)
        if x.ndim != 3 or x.shape[-1] != self.input_size or 0 in x.shape[:2]:
            raise ValueError(f"x must be (B, T, {self.input_size}) frames with B, T >= 1 (batch-first, as "
                             f"numgru.speech.prepare gives), got shape {x.shape}")
        B, T, _ = x.shape
        lengths = validation.check_lengths(lengths, B, T)
        steps = int(lengths.max())
        out, hn = self.gru(np.ascontiguousarray(x[:, :steps].transpose(1, 0, 2)), lengths=lengths)
        return out, hn, lengths, T

    def features(self, paths, *, resample=True, mix="error"):
        """WAV (or soundfile-readable) files -> this model's input (x, lengths), read at its sample rate.

        Errors name the file. resample: read a file of another rate resampled
        to the model's (False: such a file raises ValueError). mix: "error"
        refuses multi-channel files, "mean" averages their channels.
        """
        return audio.features(paths, self.front["settings"], resample=resample, mix=mix,
                              **_transform_options(self.front))

    def _predict(self, x, lengths, batch_size):
        """``forward`` in eval mode, ``batch_size`` utterances at a time, the results concatenated."""
        batch_size = validation.check_positive_int("batch_size", batch_size)
        x = validation.as_float_array("x", x, self.dtype)
        if x.ndim != 3:
            raise ValueError(f"x must be (B, T, {self.input_size}) frames, got shape {x.shape}")
        lengths = validation.check_lengths(lengths, x.shape[0], x.shape[1])
        with self._inference(), one_blas_thread():
            return np.concatenate([self.forward(x[i:i + batch_size], lengths[i:i + batch_size])
                                   for i in range(0, len(x), batch_size)])

    def _common_config(self):
        return dict(front=self.front, hidden_size=self.hidden_size, num_layers=self.num_layers,
                    bidirectional=self.bidirectional, dropout=self.dropout, dtype=self.dtype.name)


class SpeechClassifierModel(_AcousticModel):
    """GRU(front size, hidden_size, num_layers) over each utterance's frames -> pooling -> Linear(num_classes).

    pooling: "mean" or "max" over the utterance's own frames, or "last" (the
    top layer's final states). dropout: on the pooled features, and between
    GRU layers. classes: the label of each output (stored in the model file).

        >>> import numpy as np, numgru
        >>> front = numgru.speech.front_end()
        >>> model = numgru.SpeechClassifierModel(front, 3, hidden_size=8, seed=0)
        >>> model(np.zeros((2, 5, front["size"]), np.float32), lengths=[5, 3]).shape
        (2, 3)
    """

    def __init__(self, front, num_classes, hidden_size=128, num_layers=1, bidirectional=True, pooling="mean",
                 dropout=0.3, classes=None, dtype="float32", device="auto", seed=None):
        self.num_classes = validation.check_positive_int("num_classes", num_classes)
        super().__init__(front, hidden_size, num_layers, bidirectional, dropout, self.num_classes, dtype, device,
                         seed)
        self.pooling = validation.check_choice("pooling", pooling, POOLINGS)
        self.classes = _check_classes(classes, self.num_classes)

    def forward(self, x, lengths=None):
        """x (B, T, F), lengths (B,) -> logits (B, num_classes)."""
        out, hn, lengths, _ = self._body(x, lengths)
        if self.pooling == "last":
            features, argmax = (hn[-1] if self.gru.num_directions == 1 else
                                np.concatenate([hn[-2], hn[-1]], axis=-1)), None
        elif self.pooling == "mean":
            features, argmax = cpu.mean_pool(out, lengths, threads_for(out.size)), None
        else:
            features, argmax = cpu.max_pool(out, lengths, threads_for(out.size))
        mask = None
        if self.training and self.dropout > 0:
            mask = self._dropout_mask(features.shape, self.dropout)
            features = features * mask
        logits = self.head(features)
        self._cache = dict(lengths=lengths, out_shape=out.shape, hn_shape=hn.shape, argmax=argmax,
                           mask=mask) if grad_enabled() else None
        return logits

    def backward(self, dlogits):
        """Gradient with respect to the last forward's logits; adds into every parameter's grad. Returns None."""
        if self._cache is None:
            raise RuntimeError("backward needs a forward first: call model(x, lengths) before model.backward(dlogits)")
        cache = self._cache
        dfeatures = self.head.backward(dlogits)
        if cache["mask"] is not None:
            dfeatures = dfeatures * cache["mask"]
        steps = cache["out_shape"][0]
        dhn = None
        if self.pooling == "last":
            dout = np.zeros(cache["out_shape"], self.dtype)
            dhn = np.zeros(cache["hn_shape"], self.dtype)
            H = self.hidden_size
            if self.gru.num_directions == 1:
                dhn[-1] = dfeatures
            else:
                dhn[-2], dhn[-1] = dfeatures[:, :H], dfeatures[:, H:]
        elif self.pooling == "mean":
            dout = cpu.mean_pool_backward(cache["lengths"], dfeatures, steps, threads_for(dfeatures.size * steps))
        else:
            dout = cpu.max_pool_backward(cache["argmax"], dfeatures, steps, threads_for(dfeatures.size * steps))
        self.gru.backward(dout, dhn)

    def predict_logits(self, x, lengths=None, batch_size=256):
        """Logits (B, C) in eval mode, ``batch_size`` utterances at a time."""
        return self._predict(x, lengths, batch_size)

    def predict_labels(self, x, lengths=None):
        """The most probable class of each utterance: ``classes`` entries (or ints 0..C-1 without them)."""
        best = self.predict_logits(x, lengths).argmax(axis=1)
        return [int(i) for i in best] if self.classes is None else [self.classes[i] for i in best]

    def transcribe(self, paths, **read_options):
        """Files -> what was said in each: a list of one-label lists (the same form as ``CTCModel``'s)."""
        return [[label] for label in self.predict_labels(*self.features(paths, **read_options))]

    def config(self):
        """The constructor arguments that rebuild this model (used by ``numgru.save``), JSON-able."""
        return dict(self._common_config(), num_classes=self.num_classes, pooling=self.pooling, classes=self.classes)

    def __repr__(self):
        return (f"SpeechClassifierModel({self.input_size} features, {self.num_classes} classes, hidden_size="
                f"{self.hidden_size}, num_layers={self.num_layers}, bidirectional={self.bidirectional}, "
                f"pooling='{self.pooling}')")


class CTCModel(_AcousticModel):
    """GRU(front size, hidden_size, num_layers) -> Linear(1 + len(labels)) on every frame -> log-softmax, for CTC.

    Output 0 is the CTC blank; output k (1..len(labels)) is ``labels[k-1]``.
    ``forward`` gives batch-first log-probabilities (B, T, C) (frames past a
    length hold 0 and get no gradient), so ``numgru.fit`` trains it with
    ``loss=ctc_objective`` and ``metric=label_error_rate`` (they read the
    lengths from the frame mask that fit passes for ``output="all"`` models).
    """

    output = "all"
    blank = 0

    def __init__(self, front, labels, hidden_size=128, num_layers=2, bidirectional=True, dropout=0.2,
                 dtype="float32", device="auto", seed=None):
        if isinstance(labels, (str, bytes)) or not hasattr(labels, "__len__") or len(labels) == 0:
            raise TypeError(f"labels must be a non-empty list of labels (output k >= 1 is labels[k-1]), "
                            f"got {labels!r}")
        self.labels = _check_classes(labels, len(labels))
        super().__init__(front, hidden_size, num_layers, bidirectional, dropout, 1 + len(self.labels), dtype,
                         device, seed)

    num_classes = property(lambda self: 1 + len(self.labels))

    def forward(self, x, lengths=None):
        """x (B, T, F), lengths (B,) -> log-probabilities (B, T, 1 + len(labels)); 0 past each length."""
        out, _, lengths, T = self._body(x, lengths)
        logits = self.head(out)                                             # (T_b, B, C)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        valid = (np.arange(out.shape[0])[:, None] < lengths)[..., None]   # (T_b, B, 1)
        log_probs = np.where(valid, log_probs, 0).astype(self.dtype, copy=False)
        result = np.zeros((len(lengths), T, self.num_classes), self.dtype)
        result[:, :out.shape[0]] = log_probs.transpose(1, 0, 2)
        self._cache = dict(probs=np.exp(log_probs) * valid, valid=valid) if grad_enabled() else None
        return result

    def backward(self, dlog_probs):
        """Gradient with respect to the last forward's log-probabilities (B, T, C); adds into every grad."""
        if self._cache is None:
            raise RuntimeError("backward needs a forward first: call model(x, lengths) before "
                               "model.backward(dlog_probs)")
        probs, valid = self._cache["probs"], self._cache["valid"]
        steps = probs.shape[0]
        dlog_probs = validation.as_float_array("dlog_probs", dlog_probs, self.dtype)
        d = np.ascontiguousarray(dlog_probs[:, :steps].transpose(1, 0, 2)) * valid
        dlogits = d - probs * d.sum(axis=-1, keepdims=True)               # log-softmax's backward
        self.gru.backward(self.head.backward(dlogits))

    def predict_log_probs(self, x, lengths=None, batch_size=256):
        """Log-probabilities (B, T, C) in eval mode, ``batch_size`` utterances at a time."""
        return self._predict(x, lengths, batch_size)

    def decode(self, x, lengths=None, beam_width=None):
        """Label sequences heard in each utterance: greedy (best path), or prefix beam search of ``beam_width``."""
        log_probs = self.predict_log_probs(x, lengths)
        lengths = validation.check_lengths(lengths, x.shape[0], x.shape[1])
        if beam_width is None:
            paths = ctc.greedy_decode(log_probs, lengths, blank=self.blank, batch_first=True)
        else:
            paths = ctc.beam_search(log_probs, lengths, beam_width=beam_width, blank=self.blank, batch_first=True)
        return [[self.labels[k - 1] for k in path] for path in paths]

    def transcribe(self, paths, beam_width=None, **read_options):
        """Files -> the label sequence heard in each (a list of lists)."""
        return self.decode(*self.features(paths, **read_options), beam_width=beam_width)

    def stream(self):
        """A ``SpeechStream`` that recognises audio fed to it chunk by chunk (unidirectional models only)."""
        return SpeechStream(self)

    def config(self):
        """The constructor arguments that rebuild this model (used by ``numgru.save``), JSON-able."""
        return dict(self._common_config(), labels=self.labels)

    def __repr__(self):
        return (f"CTCModel({self.input_size} features, labels {self.labels}, hidden_size={self.hidden_size}, "
                f"num_layers={self.num_layers}, bidirectional={self.bidirectional})")


def _split_targets(targets, mask):
    """fit's padded targets (B, S) (-1 past each end) and frame mask (B, T)
    -> (targets, target_lengths, input_lengths)."""
    if mask is None:
        raise ValueError("ctc_objective needs the frame mask: train with numgru.fit(..., lengths=lengths)")
    targets = np.asarray(targets)
    if targets.ndim == 1:
        targets = targets[:, None]
    target_lengths = (targets >= 0).sum(axis=1)
    return targets, target_lengths, np.asarray(mask).sum(axis=1)


def ctc_objective(log_probs, targets, mask=None):
    """``numgru.fit``'s loss for a ``CTCModel``: CTC (mean reduction) over batch-first log_probs (B, T, C).

    targets: (B, S) label ids in 1..C-1, padded with -1 after each sequence's
    end; mask: (B, T) real frames (fit passes it from ``lengths``).
    Returns (loss, dlog_probs (B, T, C)).
    """
    targets, target_lengths, input_lengths = _split_targets(targets, mask)
    loss, grad = losses.ctc(np.ascontiguousarray(log_probs.transpose(1, 0, 2)), np.maximum(targets, 0),
                            input_lengths, target_lengths, blank=CTCModel.blank)
    return loss, grad.transpose(1, 0, 2)


def label_error_rate(log_probs, targets, mask=None):
    """``numgru.fit``'s metric for a ``CTCModel``: greedy decoding's edit distance / reference labels."""
    targets, target_lengths, input_lengths = _split_targets(targets, mask)
    hyps = ctc.greedy_decode(log_probs, input_lengths, blank=CTCModel.blank, batch_first=True)
    refs = [row[:n] for row, n in zip(targets, target_lengths)]
    return ctc.error_rate(refs, hyps)


class SpeechStream:
    """Recognition while the audio arrives: samples in, labels out, for a unidirectional ``CTCModel``.

    Each ``push(samples)`` (any number of samples, e.g. 100 ms) runs the
    log-mel frames that the samples complete (``numgru.audio.StreamingLogMel``),
    the front end's global normalisation, frame stacking, the GRU stream
    (``numgru.GRUStream``), the head and greedy CTC decoding carried across
    chunks (``numgru.ctc.GreedyStreamDecoder``), and returns the labels newly
    heard. The frame outputs are those of the whole utterance in one call to
    rounding, and the labels the same as ``model.decode``'s greedy ones;
    ``finish()`` runs the last, zero-padded stack of frames (stride > 1)
    and resets the stream for the next utterance. One stream at a time.
    """

    def __init__(self, model):
        if not isinstance(model, CTCModel):
            raise TypeError(f"model must be a numgru.CTCModel, got {type(model).__name__}")
        front = model.front
        if front["normalize"] == "utterance" or front["deltas"]:
            raise ValueError("model's front end looks ahead (normalize='utterance' or deltas > 0), so it cannot "
                             "stream: train it with normalize='global' (or 'none') and deltas=0")
        self.model = model
        self.front = front
        self._extractor = audio.StreamingLogMel(**front["settings"])
        self._gru = GRUStream(model.gru, batch_size=1)
        self._decoder = ctc.GreedyStreamDecoder(batch_size=1, blank=model.blank)
        self._pending = np.zeros((0, front["size"] // front["stride"]), np.float32)

    def push(self, samples):
        """New samples (1-D, at the model's sample rate, in [-1, 1)) -> the labels newly heard (a list)."""
        return self.push_frames(self._extractor.push(samples))

    def push_frames(self, db):
        """New log-mel dB frames (k, n_mels) (what ``push`` computes from samples) -> the labels newly heard."""
        db = np.asarray(db, np.float32).reshape(-1, self.front["settings"]["n_mels"])
        if len(db):
            frames = audio.transform(db, **dict(_transform_options(self.front), stride=1))[0][0]
            self._pending = np.concatenate([self._pending, frames])
        stride = self.front["stride"]
        whole = len(self._pending) // stride * stride
        ready, self._pending = self._pending[:whole], self._pending[whole:]
        return self._run(ready.reshape(-1, self.front["size"]))

    def finish(self):
        """The labels heard in the last frames (zero-padded to a whole stack); then starts afresh."""
        stride = self.front["stride"]
        labels = []
        if len(self._pending):
            stack = np.zeros((stride, self._pending.shape[1]), np.float32)
            stack[:len(self._pending)] = self._pending
            labels = self._run(stack.reshape(1, -1))
        self.reset()
        return labels

    def reset(self):
        """Forget the utterance so far: extractor buffer, GRU state, decoder."""
        self._extractor.reset()
        self._gru.reset()
        self._decoder.reset()
        self._pending = self._pending[:0]

    def _run(self, frames):
        if not len(frames):
            return []
        out, _ = self._gru(frames.astype(self.model.dtype, copy=False))            # (T, H)
        with no_grad():
            logits = self.model.head(out)
        log_probs = logits - logits.max(axis=-1, keepdims=True)
        log_probs -= np.log(np.exp(log_probs).sum(axis=-1, keepdims=True))
        new = self._decoder.push(log_probs)[0]
        return [self.model.labels[k - 1] for k in new]


# ------------------------------------------------------------------ a standard baseline

SUMMARY_FRONT = dict(kind="mfcc", n_mfcc=13, deltas=2, normalize="none")


def summary_features(log_mels, settings=None):
    """Each utterance as one vector: the mean and standard deviation of its MFCC + deltas frames (78 numbers)."""
    front = front_end(settings=settings, **SUMMARY_FRONT)
    x, lengths = prepare(log_mels, front)
    real = (np.arange(x.shape[1]) < lengths[:, None])[..., None]
    count = lengths[:, None].astype(np.float64)
    mean = (x * real).sum(axis=1, dtype=np.float64) / count
    var = (((x - mean[:, None]) * real) ** 2).sum(axis=1, dtype=np.float64) / count
    return np.concatenate([mean, np.sqrt(var)], axis=1)


def summary_logistic_regression(train_log_mels, train_labels, test_log_mels, num_classes, settings=None,
                                steps=400, lr=0.05, seed=0):
    """Test predictions of multinomial logistic regression on ``summary_features`` (standardised by the
    training set's), trained full-batch with Adam: the classic fixed-length baseline for isolated words."""
    from .optim import Adam
    train = summary_features(train_log_mels, settings)
    test = summary_features(test_log_mels, settings)
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-8
    train, test = (((part - mean) / std).astype(np.float32) for part in (train, test))
    model = Linear(train.shape[1], num_classes, seed=seed)
    optimizer = Adam([model], lr=lr)
    labels = np.asarray(train_labels, np.int64)
    for _ in range(steps):
        optimizer.zero_grad()
        model.backward(losses.cross_entropy(model(train), labels)[1])
        optimizer.step()
    with no_grad():
        return model(test).argmax(axis=1)


def energy_segments(log_mel_db, threshold=0.4, min_gap=10, min_frames=5):
    """Word segments of an utterance by frame energy: a list of (start, stop) frame ranges.

    A frame is active when its mean dB lies above floor + threshold * (peak - floor), with
    floor the utterance's 5th percentile of frame energies and peak its loudest; active frames
    closer than ``min_gap`` frames join one segment; segments shorter than ``min_frames`` are
    dropped. The classic end-point detector of isolated-word recognisers (threshold and
    min_gap chosen on the digit-strings validation strings).
    """
    energy = np.asarray(log_mel_db, np.float64).mean(axis=1)
    floor, peak = np.percentile(energy, 5), energy.max()
    active = np.flatnonzero(energy > floor + threshold * (peak - floor))
    if not active.size:
        return []
    breaks = np.flatnonzero(np.diff(active) > min_gap)
    starts = np.concatenate([[active[0]], active[breaks + 1]])
    stops = np.concatenate([active[breaks], [active[-1]]]) + 1
    return [(int(a), int(b)) for a, b in zip(starts, stops) if b - a >= min_frames]


def segment_and_classify(train_log_mels, train_labels, test_log_mels, num_classes, settings=None, seed=0):
    """A standard pipeline for connected words: ``energy_segments`` cuts each utterance into words and
    ``summary_logistic_regression`` names each one. Trained on the segments of the training utterances
    whose segment count equals their label count (labelled in order). Returns a label array per test utterance."""
    pieces, labels = [], []
    for log_mel, words in zip(train_log_mels, train_labels):
        segments = energy_segments(log_mel)
        if len(segments) == len(words):
            pieces += [log_mel[a:b] for a, b in segments]
            labels += list(words)
    test_segments = [energy_segments(log_mel) for log_mel in test_log_mels]
    test_pieces = [log_mel[a:b] for log_mel, segments in zip(test_log_mels, test_segments) for a, b in segments]
    if not pieces or not test_pieces:
        return [np.zeros(0, np.int64) for _ in test_log_mels]
    predicted = summary_logistic_regression(pieces, labels, test_pieces, num_classes, settings, seed=seed)
    cuts = np.cumsum([len(segments) for segments in test_segments])[:-1]
    return [part.astype(np.int64) for part in np.split(predicted, cuts)]
