"""Speech features: reading WAV files, log-mel spectrograms, MFCCs, deltas, normalisation, batching.

NumPy and SciPy only (``soundfile``, the ``[audio]`` extra, is imported inside
:func:`load` for formats other than WAV). The spectral features follow librosa's
definitions, which the tests compare against:

- :func:`power_spectrogram` is ``abs(librosa.stft(...)) ** 2`` transposed to (frames, bins):
  a periodic window of ``win_length`` samples zero-padded to ``n_fft`` in the middle,
  frames ``hop_length`` apart; ``center=True`` pads ``n_fft // 2`` zeros on both sides
  (librosa's ``pad_mode="constant"``), ``center=False`` frames only whole windows, so
  that a frame depends on its own samples only (what :class:`StreamingLogMel` needs).
- :func:`mel_filterbank` is ``librosa.filters.mel`` (Slaney mel scale, Slaney area norm).
- :func:`log_mel` is ``librosa.power_to_db(librosa.feature.melspectrogram(...), ref=1.0,
  amin=amin, top_db=None).T``: 10 log10 of the mel power, floored at ``amin``, in dB.
- :func:`mfcc` is ``librosa.feature.mfcc(S=log_mel_db.T, n_mfcc=n_mfcc).T`` (orthonormal DCT-II).
- :func:`deltas` is ``librosa.feature.delta(..., mode="interp")`` per utterance.

Feature arrays are (frames, features), time first, and batches (B, T, F) with
``lengths`` (B,): what numgru's layers take with ``batch_first=True``. Spectra are
computed in the precision of the result, float32 unless ``dtype="float64"`` is asked
for: as librosa does, because a float32 FFT takes half the time of a float64 one,
and float32 log-mel frames lie within 1e-6 (relative to their scale) of float64 ones.

:data:`FSDD_SETTINGS` are the settings of the shipped Free Spoken Digit Dataset
features (``numgru/data/fsdd_logmel.npz.xz``, made by ``scripts/make_speech_data.py``).

>>> import numpy as np
>>> from numgru import audio
>>> tone = np.sin(2 * np.pi * 440 * np.arange(8000) / 8000).astype(np.float32)   # 1 s at 8 kHz
>>> frames = audio.log_mel(tone, **audio.FSDD_SETTINGS)          # 25 ms windows every 10 ms
>>> frames.shape, frames.dtype
((97, 40), dtype('float32'))
>>> audio.mfcc(frames).shape
(97, 13)
"""
import json
import math
import os

import numpy as np

from . import threads, validation

__all__ = ["FSDD_SETTINGS", "NORMALIZATIONS", "load", "power_spectrogram", "mel_filterbank", "log_mel", "mfcc",
           "deltas", "normalize", "pad", "stack_frames", "transform", "features", "dequantize", "StreamingLogMel"]

FSDD_SETTINGS = dict(sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=40, fmin=0.0,
                     fmax=None, window="hann", center=False, amin=1e-10)
"""Settings of the shipped FSDD log-mel features: 25 ms Hann windows every 10 ms at 8 kHz, 40 mel bands."""

_WAV_MAGIC = (b"RIFF", b"RIFX", b"RF64")
_KINDS = ("logmel", "mfcc")


# ------------------------------------------------------------------------------------------ reading audio

def load(path, sample_rate=None, *, resample=True, mix="error", min_samples=1):
    """Read an audio file -> (signal float32 (n,), rate).

    WAV files are read with ``scipy.io.wavfile``; other formats (FLAC, OGG, ...) with
    ``soundfile`` (``pip install 'numgru[audio]'``). Integer PCM is scaled as soundfile
    and librosa scale it: int16 / 2**15, int32 / 2**31 (24-bit WAV included), uint8
    (x - 128) / 128, so that values lie in [-1, 1); float files are kept as they are.

    ``sample_rate``: None keeps the file's rate; otherwise a file at another rate is
    resampled with ``scipy.signal.resample_poly`` (``resample=False`` refuses it instead).
    ``mix``: "error" refuses files of more than one channel; "mean" averages the channels.
    ``min_samples``: the fewest samples (after resampling) that the caller can use, e.g.
    one analysis window, ``n_fft`` (:func:`features` asks for that).

    Every error names the file: missing (FileNotFoundError), unreadable or corrupt, empty,
    all zeros (silent), shorter than ``min_samples``, multi-channel, wrong rate.
    """
    name = os.fspath(path)
    if sample_rate is not None:
        sample_rate = validation.check_positive_int("sample_rate", sample_rate)
    validation.check_choice("mix", mix, ("error", "mean"))
    min_samples = validation.check_positive_int("min_samples", min_samples)
    if not os.path.exists(name):
        raise FileNotFoundError(f"{name}: no such audio file")
    data, rate = _read(name)
    if data.ndim == 2:
        if data.shape[1] > 1 and mix == "error":
            raise ValueError(f"{name} has {data.shape[1]} channels; numgru reads mono audio: "
                             "pass mix=\"mean\" to average the channels")
        data = data.mean(axis=1)
    if data.size == 0:
        raise ValueError(f"{name} holds no samples (an empty recording)")
    if not np.any(data):
        raise ValueError(f"{name} is silent (every sample is 0): nothing to transcribe")
    if sample_rate is not None and rate != sample_rate:
        if not resample:
            raise ValueError(f"{name} is sampled at {rate} Hz, expected {sample_rate} Hz "
                             "(resample=False; pass resample=True to convert it)")
        from scipy.signal import resample_poly
        g = math.gcd(rate, sample_rate)
        data = resample_poly(data, sample_rate // g, rate // g)
        rate = sample_rate
    if data.shape[0] < min_samples:
        raise ValueError(f"{name} has {data.shape[0]} samples, fewer than min_samples={min_samples} "
                         "(one analysis window): too short to analyse")
    return np.ascontiguousarray(data, dtype=np.float32), int(rate)


def _read(name):
    """(samples as float64 (n,) or (n, channels), rate) of a file, WAV or (through soundfile) anything else."""
    try:
        with open(name, "rb") as f:
            magic = f.read(4)
    except OSError as err:
        raise ValueError(f"{name}: cannot read the file ({err})") from None
    if magic not in _WAV_MAGIC:
        return _read_soundfile(name)
    from scipy.io import wavfile
    try:
        rate, data = wavfile.read(name)
    except Exception as err:      # scipy raises ValueError, EOFError, struct.error... on corrupt files
        raise ValueError(f"{name}: not a readable WAV file ({type(err).__name__}: {err})") from None
    kind = data.dtype.kind
    if kind == "u":
        data = (data.astype(np.float64) - 128.0) / 128.0
    elif kind == "i":
        data = data.astype(np.float64) / 2.0 ** (8 * data.dtype.itemsize - 1)
    elif kind == "f":
        data = data.astype(np.float64)
    else:
        raise ValueError(f"{name}: WAV samples of dtype {data.dtype.name} are not audio numgru can read")
    return data, int(rate)


def _read_soundfile(name):
    try:
        import soundfile
    except ImportError:
        raise ImportError(f"{name} is not a WAV file: reading other formats (FLAC, OGG, ...) needs soundfile, "
                          "pip install 'numgru[audio]'") from None
    try:
        data, rate = soundfile.read(name, dtype="float64", always_2d=False)
    except Exception as err:      # soundfile.LibsndfileError and friends
        raise ValueError(f"{name}: not a readable audio file ({type(err).__name__}: {err})") from None
    return data, int(rate)


# ------------------------------------------------------------------------------------------ spectra

def power_spectrogram(signal, n_fft=256, hop_length=80, win_length=None, window="hann", center=False,
                      dtype=np.float32):
    """|STFT|^2 of a 1-D float signal -> (frames, n_fft // 2 + 1), as ``abs(librosa.stft(...)).T ** 2``.

    ``window``: a name or tuple for ``scipy.signal.get_window`` (periodic, as librosa's)
    or an array of ``win_length`` values; it is zero-padded to ``n_fft`` in the middle.
    ``win_length`` None means ``n_fft``. ``center=False``: frame k covers samples
    [k hop, k hop + n_fft), and the signal must hold at least ``n_fft`` samples;
    ``center=True`` pads ``n_fft // 2`` zeros on both ends first (1 + n // hop frames).
    Computed in ``dtype``, the result's (float32 or float64).
    """
    dtype = validation.check_dtype(dtype)
    x = _check_signal("signal", signal, dtype)
    n_fft, hop_length, win = _check_stft(n_fft, hop_length, win_length, window)
    if center:
        x = np.pad(x, n_fft // 2)
    _check_long_enough("signal", x.shape[0], n_fft, center)
    win = win.astype(dtype)
    frames = _frames(x, n_fft, hop_length)
    out = np.empty((frames.shape[0], n_fft // 2 + 1), dtype)
    for start, stop in _blocks(frames.shape[0], n_fft, dtype):
        out[start:stop] = _block_power(frames[start:stop], win)
    return out


# Frames are transformed a block at a time: a block's windowed frames, spectrum and power
# stay in cache and their memory is reused, where whole-signal temporaries (6 MB for a
# minute at 8 kHz) cost a page fault per 4 KB. Measured on 60 s at 8 kHz, float32:
# 3.5 ms for the log-mel frames in blocks of 256 KB against 8.4 ms in one piece, with
# BLAS held to one thread for the blocks' small products: two OpenBLAS threads made it
# 19 ms on the loaded 2-core machine (5x), one thread 3.8 ms.
_BLOCK_BYTES = 1 << 18


def _frames(x, n_fft, hop_length):
    """Frame k of x is x[k hop : k hop + n_fft] (a strided view, no copy)."""
    return np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop_length]


def _blocks(n_frames, n_fft, dtype):
    """(start, stop) of consecutive blocks of about _BLOCK_BYTES of frames."""
    step = max(1, _BLOCK_BYTES // (n_fft * np.dtype(dtype).itemsize))
    return [(start, min(start + step, n_frames)) for start in range(0, n_frames, step)]


def _block_power(frames, win):
    """|rfft(frames * win)|^2 over the last axis, in the precision of frames and win."""
    from scipy.fft import rfft
    spectrum = rfft(frames * win, axis=1, overwrite_x=True)
    power = spectrum.real * spectrum.real
    power += spectrum.imag * spectrum.imag
    return power


def mel_filterbank(sample_rate=8000, n_fft=256, n_mels=40, fmin=0.0, fmax=None, dtype=np.float32):
    """Mel filter weights (n_mels, n_fft // 2 + 1) = ``librosa.filters.mel`` with its defaults.

    Triangular filters on the Slaney mel scale (linear below 1 kHz, logarithmic above;
    ``htk=False``), each scaled to unit area (``norm="slaney"``). ``fmax`` None is
    ``sample_rate / 2``. Computed in float64, returned as ``dtype``.
    """
    sample_rate, n_fft, n_mels, fmin, fmax = _check_mel(sample_rate, n_fft, n_mels, fmin, fmax)
    dtype = validation.check_dtype(dtype)
    return _filterbank(sample_rate, n_fft, n_mels, fmin, fmax).astype(dtype, copy=False)


def _filterbank(sample_rate, n_fft, n_mels, fmin, fmax):
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    mel_freqs = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (mel_freqs[2:] - mel_freqs[:-2]))[:, None]


_MEL_STEP_HZ = 200.0 / 3          # Slaney: 3 mels per 200 Hz below 1 kHz
_MEL_BREAK_HZ = 1000.0
_MEL_BREAK = _MEL_BREAK_HZ / _MEL_STEP_HZ
_MEL_LOG_STEP = math.log(6.4) / 27.0


def _hz_to_mel(hz):
    hz = np.asarray(hz, np.float64)
    linear = hz / _MEL_STEP_HZ
    logarithmic = _MEL_BREAK + np.log(np.maximum(hz, _MEL_BREAK_HZ) / _MEL_BREAK_HZ) / _MEL_LOG_STEP
    return np.where(hz >= _MEL_BREAK_HZ, logarithmic, linear)


def _mel_to_hz(mel):
    mel = np.asarray(mel, np.float64)
    linear = mel * _MEL_STEP_HZ
    logarithmic = _MEL_BREAK_HZ * np.exp(_MEL_LOG_STEP * (np.maximum(mel, _MEL_BREAK) - _MEL_BREAK))
    return np.where(mel >= _MEL_BREAK, logarithmic, linear)


def log_mel(signal, *, sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=40, fmin=0.0,
            fmax=None, window="hann", center=False, amin=1e-10, dtype=np.float32):
    """Log-mel spectrogram in dB -> (frames, n_mels), ``dtype`` (float32 by default).

    ``10 * log10(max(mel_power, amin))`` where mel_power = power_spectrogram @ mel_filterbank.T;
    equal to ``librosa.power_to_db(librosa.feature.melspectrogram(y=signal, sr=sample_rate,
    n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window, center=center,
    pad_mode="constant", n_mels=n_mels, fmin=fmin, fmax=fmax), ref=1.0, amin=amin, top_db=None).T``.
    The defaults are :data:`FSDD_SETTINGS` (``log_mel(x, **FSDD_SETTINGS)``). The floor,
    ``10 log10(amin)``, is -100 dB for the default amin. Computed in ``dtype``.
    """
    extractor = _LogMel(sample_rate, n_fft, win_length, hop_length, n_mels, fmin, fmax, window, amin, dtype)
    x = _check_signal("signal", signal, extractor.dtype)
    if center:
        x = np.pad(x, extractor.n_fft // 2)
    _check_long_enough("signal", x.shape[0], extractor.n_fft, center)
    return extractor(x)


class _LogMel:
    """Checked settings, window and filterbank of a log-mel extractor; calling it maps padded samples to dB."""

    def __init__(self, sample_rate, n_fft, win_length, hop_length, n_mels, fmin, fmax, window, amin, dtype):
        self.dtype = validation.check_dtype(dtype)
        self.n_fft, self.hop_length, window = _check_stft(n_fft, hop_length, win_length, window)
        self.window = window.astype(self.dtype)
        filterbank = _filterbank(*_check_mel(sample_rate, n_fft, n_mels, fmin, fmax))
        self.filterbank_t = np.ascontiguousarray(filterbank.T, dtype=self.dtype)
        self.amin = self.dtype.type(validation.check_real("amin", amin, low=0.0, low_open=True))

    def __call__(self, x):
        """Samples of ``self.dtype`` (n >= n_fft) -> dB frames (frames, n_mels) of ``self.dtype``."""
        frames = _frames(x, self.n_fft, self.hop_length)
        db = np.empty((frames.shape[0], self.filterbank_t.shape[1]), self.dtype)
        with threads.one_blas_thread():     # a block's (frames, bins) @ (bins, n_mels): threads only wait
            for start, stop in _blocks(frames.shape[0], self.n_fft, self.dtype):
                np.matmul(_block_power(frames[start:stop], self.window), self.filterbank_t, out=db[start:stop])
        np.maximum(db, self.amin, out=db)       # the mel power, floored,
        np.log10(db, out=db)                    # in dB, in place
        db *= self.dtype.type(10.0)
        return db


def _check_signal(name, signal, dtype):
    x = validation.as_float_array(name, signal, dtype)
    if x.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of samples (mono audio), got shape {x.shape}")
    return x


def _check_long_enough(name, n, n_fft, center):
    if n < n_fft:
        padded = " (after center padding)" if center else ""
        raise ValueError(f"{name} has {n} samples{padded}, fewer than n_fft={n_fft} (one analysis window)")


def _check_stft(n_fft, hop_length, win_length, window):
    """-> (n_fft, hop_length, window float64 (n_fft,) zero-padded in the middle as librosa pads it)."""
    n_fft = validation.check_positive_int("n_fft", n_fft)
    hop_length = validation.check_positive_int("hop_length", hop_length)
    win_length = n_fft if win_length is None else validation.check_positive_int("win_length", win_length)
    if win_length > n_fft:
        raise ValueError(f"win_length must be at most n_fft={n_fft}, got {win_length}")
    if isinstance(window, (str, tuple)):
        from scipy.signal import get_window
        try:
            win = get_window(window, win_length, fftbins=True)
        except ValueError as err:
            raise ValueError(f"window must be a window scipy.signal.get_window knows, got {window!r} ({err})") from None
    else:
        win = validation.as_float_array("window", window, np.float64)
        if win.shape != (win_length,):
            raise ValueError(f"window must be a name or an array of win_length={win_length} values, "
                             f"got shape {win.shape}")
    left = (n_fft - win_length) // 2
    return n_fft, hop_length, np.pad(np.asarray(win, np.float64), (left, n_fft - win_length - left))


def _check_mel(sample_rate, n_fft, n_mels, fmin, fmax):
    sample_rate = validation.check_positive_int("sample_rate", sample_rate)
    n_fft = validation.check_positive_int("n_fft", n_fft)
    n_mels = validation.check_positive_int("n_mels", n_mels)
    nyquist = sample_rate / 2.0
    fmax = nyquist if fmax is None else validation.check_real("fmax", fmax, low=0.0, high=nyquist, low_open=True)
    fmin = validation.check_real("fmin", fmin, low=0.0, high=fmax, high_open=True)
    return sample_rate, n_fft, n_mels, fmin, fmax


# ------------------------------------------------------------------------------------------ feature transforms

def mfcc(log_mel_db, n_mfcc=13):
    """MFCCs of log-mel frames (..., n_mels) in dB -> (..., n_mfcc): the orthonormal DCT-II over the mel bands.

    Equal to ``librosa.feature.mfcc(S=log_mel_db.T, n_mfcc=n_mfcc).T`` (dct_type=2, norm="ortho",
    no liftering). Keeps the input's float dtype; padding frames (all 0) stay 0.
    """
    from scipy.fft import dct
    arr = validation.as_float_array("log_mel_db", log_mel_db, _float_dtype("log_mel_db", log_mel_db))
    if arr.ndim == 0:
        raise ValueError("log_mel_db must have shape (..., n_mels), got a scalar")
    n_mfcc = validation.check_positive_int("n_mfcc", n_mfcc)
    if n_mfcc > arr.shape[-1]:
        raise ValueError(f"n_mfcc must be at most n_mels={arr.shape[-1]} (the last dimension), got {n_mfcc}")
    return dct(arr, type=2, norm="ortho", axis=-1)[..., :n_mfcc]


def deltas(features, lengths=None, order=1, width=9):
    """Time derivatives of features (T, F), or of padded (B, T, F) with ``lengths``, -> the same shape.

    ``librosa.feature.delta(features.T, width=width, order=order, mode="interp").T``, i.e.
    ``scipy.signal.savgol_filter(..., window_length=width, polyorder=order, deriv=order,
    mode="interp")`` over each utterance's own frames; padding frames are neither read nor
    written (they are 0 in the result). An utterance shorter than ``width`` frames uses the
    largest odd width that fits (3 at least); one of 1 or 2 frames uses width 3 with its
    edge frames repeated (``mode="nearest"``), which gives 0 (to rounding) for a single frame.
    """
    arr, lengths, batched = _check_batch("features", features, lengths)
    order = validation.check_positive_int("order", order)
    width = validation.check_positive_int("width", width)
    if width < 3 or width % 2 == 0 or width <= order:
        raise ValueError(f"width must be an odd integer of at least 3 and greater than order={order}, got {width}")
    out = np.zeros_like(arr)
    for b, n in enumerate(lengths):
        out[b, :n] = _delta(arr[b, :n], order, width)
    return out if batched else out[0]


def _delta(x, order, width):
    """savgol derivative of one utterance (T, F) along time, with the width shrunk to fit."""
    from scipy.signal import savgol_filter
    n = x.shape[0]
    if n >= width:
        return savgol_filter(x, width, order, deriv=order, axis=0, mode="interp")
    fit = n if n % 2 else n - 1
    if fit >= 3 and fit > order:
        return savgol_filter(x, fit, order, deriv=order, axis=0, mode="interp")
    return savgol_filter(x, 3, min(order, 2), deriv=order, axis=0, mode="nearest")


def normalize(features, lengths=None, mean=None, std=None, eps=1e-5):
    """Mean and variance normalisation: (x - mean) / (std + eps), per feature.

    Without ``mean``/``std``: per utterance, over each utterance's own frames (cepstral
    mean and variance normalisation); padding frames are not read and stay exactly 0.
    With both (arrays of F values, e.g. computed over a training set): that global
    normalisation, for streaming, where an utterance's future frames are unknown.
    ``features`` is (T, F) or padded (B, T, F) with ``lengths``. Returns a new array.
    """
    arr, lengths, batched = _check_batch("features", features, lengths)
    eps = validation.check_real("eps", eps, low=0.0)
    if (mean is None) != (std is None):
        raise ValueError("mean and std must be given together (a global normalisation) or both left None "
                         f"(per utterance), got mean={'None' if mean is None else 'an array'} and "
                         f"std={'None' if std is None else 'an array'}")
    n_features = arr.shape[-1]
    if mean is not None:
        mean = validation.check_features("mean", mean, n_features, arr.dtype)
        std = validation.check_features("std", std, n_features, arr.dtype)
        if mean.ndim != 1 or std.ndim != 1:
            raise ValueError(f"mean and std must be 1-D ({n_features},), got shapes {mean.shape} and {std.shape}")
    out = np.zeros_like(arr)
    for b, n in enumerate(lengths):
        frames = arr[b, :n]
        if mean is None:
            out[b, :n] = (frames - frames.mean(axis=0)) / (frames.std(axis=0) + eps)
        else:
            out[b, :n] = (frames - mean) / (std + eps)
    return out if batched else out[0]


def pad(arrays, dtype=np.float32):
    """A list of (T_i, F) arrays -> (x (B, T_max, F) zero-padded, lengths int64 (B,))."""
    dtype = validation.check_dtype(dtype)
    if isinstance(arrays, np.ndarray) or not hasattr(arrays, "__len__"):
        raise TypeError(f"arrays must be a list of (T_i, F) arrays, got {type(arrays).__name__}")
    if len(arrays) == 0:
        raise ValueError("arrays must hold at least one (T_i, F) array, got an empty list")
    checked = [validation.as_float_array(f"arrays[{i}]", a, dtype) for i, a in enumerate(arrays)]
    for i, a in enumerate(checked):
        if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] != checked[0].shape[-1]:
            raise ValueError(f"arrays[{i}] must be 2-D (T_i, F) with T_i >= 1 and the F of arrays[0], "
                             f"got shape {a.shape}")
    lengths = np.array([a.shape[0] for a in checked], np.int64)
    x = np.zeros((len(checked), int(lengths.max()), checked[0].shape[1]), dtype)
    for b, a in enumerate(checked):
        x[b, :a.shape[0]] = a
    return x, lengths


def stack_frames(x, lengths, stride):
    """Deep Speech frame stacking: (B, T, F) -> (B, ceil(T / stride), stride * F), new lengths.

    Output frame j of an utterance is its frames j*stride ... j*stride + stride - 1 side by
    side; frames at or past its length count as 0 (so the last stacked frame is zero-padded
    and padding never leaks in). New lengths = ceil(lengths / stride). ``lengths`` None
    means every utterance has T frames. stride=1 returns a copy.
    """
    arr, lengths, batched = _check_batch("x", x, lengths)
    if not batched:
        raise ValueError(f"x must be 3-D (B, T, F), got shape {arr.shape}")
    stride = validation.check_positive_int("stride", stride)
    batch, steps, n_features = arr.shape
    new_steps = -(-steps // stride)
    padded = np.zeros((batch, new_steps * stride, n_features), arr.dtype)
    for b, n in enumerate(lengths):
        padded[b, :n] = arr[b, :n]
    return padded.reshape(batch, new_steps, stride * n_features), -(-lengths // stride)


def _float_dtype(name, value):
    return validation.check_float_dtype(name, np.asarray(value).dtype)


def _check_batch(name, value, lengths):
    """(T, F) or (B, T, F) features with optional lengths -> (arr (B, T, F), lengths int64, batched)."""
    arr = validation.as_float_array(name, value, _float_dtype(name, value))
    if arr.ndim not in (2, 3):
        raise ValueError(f"{name} must be 2-D (T, F) or padded 3-D (B, T, F), got shape {arr.shape}")
    batched = arr.ndim == 3
    if not batched:
        if lengths is not None:
            raise ValueError(f"lengths is for padded 3-D (B, T, F) {name}; got 2-D {name} of shape {arr.shape}")
        arr = arr[None]
    if 0 in arr.shape[:2]:
        raise ValueError(f"{name} must hold at least one frame of one utterance, got shape {arr.shape}")
    return arr, validation.check_lengths(lengths, arr.shape[0], arr.shape[1]), batched


# ------------------------------------------------------------------------------------------ datasets

NORMALIZATIONS = ("utterance", "global", "none")


def _check_settings(settings):
    """A settings dict -> FSDD_SETTINGS updated with it; unknown keys (typos) refused."""
    if not isinstance(settings, dict):
        raise TypeError(f"settings must be a dict like FSDD_SETTINGS, got {type(settings).__name__}")
    unknown = sorted(set(settings) - set(FSDD_SETTINGS) - {"db_floor", "db_step"})
    if unknown:
        raise ValueError(f"settings has unknown keys {unknown}; the keys are those of FSDD_SETTINGS: "
                         f"{sorted(FSDD_SETTINGS)}")
    return dict(FSDD_SETTINGS, **settings)


def transform(log_mels, kind="logmel", n_mfcc=13, deltas=0, normalize="utterance", mean=None, std=None, stride=1):
    """Utterances' log-mel dB frames -> a model's input (x (B, T, F) float32, lengths int64 (B,)).

    ``log_mels``: a list of (T_i, n_mels) arrays (:func:`log_mel`), or one. In order:
    ``kind="mfcc"`` keeps ``n_mfcc`` cepstra (:func:`mfcc`; "logmel" keeps the frames);
    ``deltas`` = 1 or 2 appends the first (and second) order :func:`deltas`;
    ``normalize`` (:func:`normalize`): "utterance" over each utterance's own frames,
    "global" with ``mean`` and ``std`` (F values, e.g. a training set's: what streaming
    needs), or "none"; :func:`pad`; then ``stride`` frames stacked into one
    (:func:`stack_frames`). F = (n_mfcc or n_mels) * (1 + deltas) * stride.
    """
    if isinstance(log_mels, np.ndarray) and log_mels.ndim == 2:
        log_mels = [log_mels]
    validation.check_choice("kind", kind, _KINDS)
    n_deltas = validation.check_nonnegative_int("deltas", deltas)
    validation.check_choice("deltas", n_deltas, (0, 1, 2))
    validation.check_choice("normalize", normalize, NORMALIZATIONS)
    if (normalize == "global") != (mean is not None and std is not None):
        raise ValueError(f"mean and std go with normalize='global' (both of them), got normalize={normalize!r}, "
                         f"mean {'None' if mean is None else 'given'}, std {'None' if std is None else 'given'}")
    x, lengths = pad(list(log_mels))
    if kind == "mfcc":
        x = mfcc(x, n_mfcc)
    x = np.concatenate([x] + [_deltas_of(x, lengths, order=order) for order in range(1, n_deltas + 1)], axis=-1)
    if normalize != "none":
        x = _normalize(x, lengths, mean=mean, std=std)
    return stack_frames(x, lengths, stride)


_deltas_of, _normalize = deltas, normalize     # transform() has arguments of these names


def features(paths, settings=FSDD_SETTINGS, *, resample=True, mix="error", **options):
    """Features of audio files -> (x (B, T_max, F) float32, lengths int64 (B,)).

    Each file is read with :func:`load` at ``settings["sample_rate"]`` (resampled when it
    differs, unless ``resample=False``; ``mix`` as :func:`load`'s; errors name the file),
    turned into :func:`log_mel` frames with ``settings`` (:data:`FSDD_SETTINGS` by default:
    keys missing from it take those values; ``db_floor`` and ``db_step``, stored with the
    shipped data, are allowed and ignored), then into a model's input by :func:`transform`
    with ``options`` (kind, n_mfcc, deltas, normalize, mean, std, stride).
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise ValueError("paths must name at least one audio file, got none")
    settings = _check_settings(settings)
    extractor = _LogMel(*(settings[k] for k in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels",
                                                "fmin", "fmax", "window", "amin")), np.float32)
    center = bool(settings["center"])
    log_mels = []
    for path in paths:
        signal, _ = load(path, settings["sample_rate"], resample=resample, mix=mix,
                         min_samples=1 if center else extractor.n_fft)
        log_mels.append(extractor(np.pad(signal, extractor.n_fft // 2) if center else signal))
    return transform(log_mels, **options)


def dequantize(q, settings):
    """Shipped uint8 log-mel codes -> dB, float32: ``q * settings["db_step"] + settings["db_floor"]``.

    ``settings`` is the dict stored with the data (or its JSON text, the file's ``settings``
    entry); the FSDD file has db_floor = -100 (code 0 = the amin floor) and db_step = 0.5.
    """
    if isinstance(settings, np.ndarray) and settings.ndim == 0:
        settings = settings.item()
    if isinstance(settings, str):
        settings = json.loads(settings)
    try:
        step, floor = float(settings["db_step"]), float(settings["db_floor"])
    except (KeyError, TypeError):
        raise ValueError("settings must hold db_step and db_floor (the dict or JSON stored with the data), "
                         f"got {settings!r}") from None
    q = np.asarray(q)
    if q.dtype != np.uint8:
        raise TypeError(f"q must be an array of uint8 codes, got dtype {q.dtype.name}")
    return (q.astype(np.float32) * np.float32(step) + np.float32(floor)).astype(np.float32)


# ------------------------------------------------------------------------------------------ streaming

class StreamingLogMel:
    """Log-mel frames of a signal that arrives in pieces: ``push`` returns the frames each piece completes.

    Takes :func:`log_mel`'s keyword settings (``StreamingLogMel(**FSDD_SETTINGS)``); only
    ``center=False`` streams (a centred first frame would need samples before the start).
    Concatenating what successive ``push`` calls return equals ``log_mel`` of the whole
    signal (to float rounding). The samples not yet in a complete frame are buffered;
    ``reset()`` drops them, to start a new utterance.
    """

    def __init__(self, *, sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=40, fmin=0.0,
                 fmax=None, window="hann", center=False, amin=1e-10, dtype=np.float32):
        if center:
            raise ValueError("center must be False for streaming (a centred frame needs samples before the "
                             "start and after the end), got center=True")
        self._extractor = _LogMel(sample_rate, n_fft, win_length, hop_length, n_mels, fmin, fmax, window,
                                  amin, dtype)
        self.n_mels = self._extractor.filterbank_t.shape[1]
        self.reset()

    def reset(self):
        """Forget the buffered samples (a new utterance starts)."""
        self._buffer = np.zeros(0, self._extractor.dtype)

    def push(self, samples):
        """Append 1-D float samples -> the newly completed log-mel frames (k, n_mels), k >= 0."""
        x = _check_signal("samples", samples, self._extractor.dtype)
        buffer = np.concatenate([self._buffer, x])
        n_fft, hop = self._extractor.n_fft, self._extractor.hop_length
        if buffer.shape[0] < n_fft:
            self._buffer = buffer
            return np.zeros((0, self.n_mels), self._extractor.dtype)
        count = 1 + (buffer.shape[0] - n_fft) // hop
        frames = self._extractor(buffer[:(count - 1) * hop + n_fft])
        self._buffer = buffer[count * hop:].copy()
        return frames
