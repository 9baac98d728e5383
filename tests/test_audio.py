"""numgru.audio: librosa's feature definitions, WAV reading, batching helpers, streaming, the shipped FSDD file."""
import io
import json
import lzma
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.io import wavfile

from numgru import audio

from reference import assert_close as close    # max|a - b| <= tol * max(1, max|b|)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FSDD = os.path.join(ROOT, os.pardir, "shared", "datasets", "fsdd", "recordings")
needs_fsdd = pytest.mark.skipif(not os.path.isdir(FSDD), reason="../shared/datasets/fsdd is not here")
DATA = os.path.join(ROOT, "numgru", "data", "fsdd_logmel.npz.xz")
TOL = {np.float32: 1e-4, np.float64: 1e-10}


def speech_like(n=4000, rate=8000, seed=0):
    """A voiced-sounding test signal: harmonics of a wandering pitch, noise, a silent gap (exact zeros)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    pitch = 120 + 30 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * 0.2 + 0.01 * rng.standard_normal(n)
    x[n // 2:n // 2 + 600] = 0.0
    return x


def librosa_log_mel(x, settings, dtype):
    librosa = pytest.importorskip("librosa")
    s = dict(settings)
    mel = librosa.feature.melspectrogram(y=x.astype(dtype), sr=s["sample_rate"], n_fft=s["n_fft"],
                                         hop_length=s["hop_length"], win_length=s["win_length"],
                                         window=s["window"], center=s["center"], pad_mode="constant",
                                         n_mels=s["n_mels"], fmin=s["fmin"], fmax=s["fmax"], dtype=dtype)
    return librosa.power_to_db(mel, ref=1.0, amin=s["amin"], top_db=None).T


def write_wav(path, rate, data):
    wavfile.write(str(path), rate, data)
    return str(path)


# ------------------------------------------------------------------------------------------ librosa agreement

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("n_fft, win_length, hop", [(256, 200, 80), (512, 512, 128), (255, 101, 37)])
def test_power_spectrogram_is_librosa_stft_squared(dtype, center, n_fft, win_length, hop):
    librosa = pytest.importorskip("librosa")
    x = speech_like().astype(dtype)
    ref = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop, win_length=win_length, center=center,
                              pad_mode="constant")) ** 2
    got = audio.power_spectrogram(x, n_fft, hop, win_length, "hann", center, dtype=dtype)
    assert got.dtype == dtype and got.shape == ref.T.shape
    assert np.abs(got - ref.T).max() <= TOL[dtype] * np.abs(ref).max()


@pytest.mark.parametrize("rate, n_fft, n_mels, fmin, fmax", [
    (8000, 256, 40, 0.0, None), (16000, 512, 80, 20.0, 7600.0), (22050, 2048, 128, 0.0, None),
    (8000, 200, 23, 300.0, 3400.0)])
def test_mel_filterbank_is_librosa(rate, n_fft, n_mels, fmin, fmax):
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, dtype=np.float64)
    got = audio.mel_filterbank(rate, n_fft, n_mels, fmin, fmax, dtype=np.float64)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-12 * ref.max()
    assert audio.mel_filterbank(rate, n_fft, n_mels, fmin, fmax).dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("center", [False, True])
def test_log_mel_is_librosa_power_to_db(dtype, center):
    settings = dict(audio.FSDD_SETTINGS, center=center)
    x = speech_like()
    got = audio.log_mel(x, **settings, dtype=dtype)
    ref = librosa_log_mel(x, settings, dtype)
    assert got.dtype == dtype and got.shape == ref.shape
    close(got, ref, TOL[dtype])
    assert got.min() == pytest.approx(-100.0)           # the silent gap sits on the amin floor


def test_log_mel_other_settings_and_float32_against_float64():
    settings = dict(sample_rate=16000, n_fft=400, win_length=400, hop_length=160, n_mels=64, fmin=50.0,
                    fmax=7000.0, window="hamming", center=True, amin=1e-8)
    x = speech_like(16000, 16000)
    close(audio.log_mel(x, **settings, dtype=np.float64), librosa_log_mel(x, settings, np.float64), 1e-10)
    close(audio.log_mel(x, **settings), audio.log_mel(x, **settings, dtype=np.float64), 1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mfcc_is_librosa(dtype):
    librosa = pytest.importorskip("librosa")
    db = audio.log_mel(speech_like(), dtype=dtype)
    for n in (13, 20, 40):
        got = audio.mfcc(db, n)
        assert got.dtype == dtype and got.shape == (db.shape[0], n)
        close(got, librosa.feature.mfcc(S=db.T, n_mfcc=n).T, TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order, width", [(1, 9), (2, 9), (1, 5), (2, 3)])
def test_deltas_are_librosa(dtype, order, width):
    librosa = pytest.importorskip("librosa")
    db = audio.log_mel(speech_like(), dtype=dtype)
    got = audio.deltas(db, order=order, width=width)
    assert got.dtype == dtype
    close(got, librosa.feature.delta(db.T, width=width, order=order, mode="interp").T, TOL[dtype])


@pytest.mark.parametrize("frames", [1, 2, 3, 4, 7, 8])
@pytest.mark.parametrize("order", [1, 2])
def test_deltas_of_short_utterances(frames, order):
    x = np.random.default_rng(frames).standard_normal((frames, 5))
    got = audio.deltas(x, order=order)
    assert got.shape == x.shape and np.isfinite(got).all()
    if frames >= 3:           # the largest odd width that fits, as librosa would with that width
        librosa = pytest.importorskip("librosa")
        width = frames if frames % 2 else frames - 1
        close(got, librosa.feature.delta(x.T, width=width, order=order, mode="interp").T, 1e-10)
    if frames == 1:
        close(got, np.zeros_like(got), 1e-12)


# ------------------------------------------------------------------------------------------ reading files

def test_load_scales_pcm_as_soundfile(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    rng = np.random.default_rng(1)
    cases = {"int16": rng.integers(-2 ** 15, 2 ** 15, 500).astype(np.int16),
             "int32": rng.integers(-2 ** 31, 2 ** 31, 500).astype(np.int32),
             "uint8": rng.integers(0, 256, 500).astype(np.uint8),
             "float32": rng.uniform(-1, 1, 500).astype(np.float32)}
    for name, data in cases.items():
        path = write_wav(tmp_path / f"{name}.wav", 8000, data)
        got, rate = audio.load(path)
        ref, ref_rate = soundfile.read(path, dtype="float64")
        assert rate == ref_rate == 8000 and got.dtype == np.float32
        np.testing.assert_allclose(got, ref.astype(np.float32), rtol=0, atol=0, err_msg=name)
        assert got.min() >= -1 and got.max() < 1 or name == "float32"


def test_load_fsdd_matches_librosa():
    librosa = pytest.importorskip("librosa")
    if not os.path.isdir(FSDD):
        pytest.skip("../shared/datasets/fsdd is not here")
    path = os.path.join(FSDD, "3_theo_7.wav")
    x, rate = audio.load(path, 8000, resample=False)
    ref, ref_rate = librosa.load(path, sr=None)
    assert rate == ref_rate == 8000 and np.array_equal(x, ref)


def test_resampling_keeps_the_frequency(tmp_path):
    t = np.arange(16000) / 16000
    path = write_wav(tmp_path / "tone16k.wav", 16000, (0.5 * np.sin(2 * np.pi * 1000 * t) * 32767).astype(np.int16))
    x, rate = audio.load(path, 8000)
    assert rate == 8000 and x.shape == (8000,) and x.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    assert np.fft.rfftfreq(x.size, 1 / 8000)[spectrum.argmax()] == pytest.approx(1000, abs=2)
    assert np.abs(x[100:-100]).max() == pytest.approx(0.5, abs=0.01)
    same, rate = audio.load(path)                 # sample_rate None keeps the file's rate
    assert rate == 16000 and same.shape == (16000,)


def test_load_mixes_channels_when_asked(tmp_path):
    stereo = np.stack([np.full(300, 8192, np.int16), np.full(300, -16384, np.int16)], axis=1)
    path = write_wav(tmp_path / "stereo.wav", 8000, stereo)
    with pytest.raises(ValueError, match=r"stereo\.wav has 2 channels.*mix=\"mean\""):
        audio.load(path)
    x, _ = audio.load(path, mix="mean")
    np.testing.assert_array_equal(x, np.full(300, -0.125, np.float32))


def test_load_reads_other_formats_through_soundfile(tmp_path, monkeypatch):
    soundfile = pytest.importorskip("soundfile")
    data = (0.3 * np.sin(np.arange(2000) / 5)).astype(np.float32)
    path = str(tmp_path / "clip.flac")
    soundfile.write(path, data, 8000, subtype="PCM_16")
    x, rate = audio.load(path)
    assert rate == 8000 and np.abs(x - data).max() < 1e-4
    monkeypatch.setitem(sys.modules, "soundfile", None)          # as if the [audio] extra were missing
    with pytest.raises(ImportError, match=r"clip\.flac.*numgru\[audio\]"):
        audio.load(path)


def test_bad_files_raise_naming_the_file(tmp_path):
    def raises(exc, path, pattern, **kwargs):
        with pytest.raises(exc, match=pattern) as info:
            audio.load(str(path), **kwargs)
        assert os.path.basename(str(path)) in str(info.value)

    raises(FileNotFoundError, tmp_path / "missing.wav", "no such audio file")
    (tmp_path / "garbage.wav").write_bytes(b"RIFF\x00\x01\x02 this is not a wave file at all")
    raises(ValueError, tmp_path / "garbage.wav", "not a readable WAV file")
    good = write_wav(tmp_path / "good.wav", 8000, (1000 * np.sin(np.arange(4000))).astype(np.int16))
    with open(good, "rb") as f:
        (tmp_path / "truncated.wav").write_bytes(f.read()[:30])
    raises(ValueError, tmp_path / "truncated.wav", "not a readable WAV file")
    (tmp_path / "notes.txt").write_bytes(b"hello, not audio")
    pytest.importorskip("soundfile")
    raises(ValueError, tmp_path / "notes.txt", "not a readable audio file")
    raises(ValueError, write_wav(tmp_path / "empty.wav", 8000, np.zeros(0, np.int16)), "no samples")
    raises(ValueError, write_wav(tmp_path / "silent.wav", 8000, np.zeros(4000, np.int16)), "silent")
    raises(ValueError, good, "16000 Hz|8000 Hz, expected 16000 Hz", sample_rate=16000, resample=False)
    raises(ValueError, good, "4000 samples, fewer than min_samples=5000", min_samples=5000)
    short = write_wav(tmp_path / "short.wav", 8000, np.ones(100, np.int16))
    with pytest.raises(ValueError, match=r"short\.wav has 100 samples, fewer than min_samples=256"):
        audio.features([short])
    with pytest.raises(ValueError, match="mix must be one of"):
        audio.load(good, mix="left")


# ------------------------------------------------------------------------------------------ batching helpers

def batch_with_garbage_padding(seed=0):
    rng = np.random.default_rng(seed)
    utterances = [rng.standard_normal((n, 6)) * 3 + 1 for n in (12, 5, 2, 1, 9)]
    x, lengths = audio.pad(utterances, dtype=np.float64)
    dirty = x.copy()
    for b, n in enumerate(lengths):
        dirty[b, n:] = rng.standard_normal(dirty[b, n:].shape) * 1e6
    return utterances, x, dirty, lengths


def test_pad():
    utterances, x, _, lengths = batch_with_garbage_padding()
    assert x.shape == (5, 12, 6) and x.dtype == np.float64
    assert lengths.dtype == np.int64 and lengths.tolist() == [12, 5, 2, 1, 9]
    for b, u in enumerate(utterances):
        assert np.array_equal(x[b, :len(u)], u) and not x[b, len(u):].any()
    assert audio.pad(utterances)[0].dtype == np.float32
    with pytest.raises(ValueError, match="empty list"):
        audio.pad([])
    with pytest.raises(ValueError, match=r"arrays\[1\] must be 2-D"):
        audio.pad([np.zeros((3, 4)), np.zeros((3, 5))])
    with pytest.raises(TypeError, match="list of"):
        audio.pad(np.zeros((2, 3, 4)))


@pytest.mark.parametrize("transform", [lambda x, n: audio.normalize(x, n),
                                       lambda x, n: audio.deltas(x, n, order=1),
                                       lambda x, n: audio.deltas(x, n, order=2),
                                       lambda x, n: audio.normalize(x, n, mean=np.arange(6.0), std=np.full(6, 2.0))])
def test_transforms_never_read_padding(transform):
    utterances, x, dirty, lengths = batch_with_garbage_padding()
    before = dirty.copy()
    got = transform(dirty, lengths)
    assert np.array_equal(dirty, before)                              # the input is not written to
    assert np.array_equal(got, transform(x, lengths))
    for b, (u, n) in enumerate(zip(utterances, lengths)):
        assert not got[b, n:].any()                                   # padding is exactly 0
        close(got[b, :n], transform(u, None), 1e-12)                  # each utterance on its own


def test_normalize_statistics():
    x = np.random.default_rng(3).standard_normal((50, 4)) * [1, 10, 100, 0.1] + [5, -3, 0, 7]
    z = audio.normalize(x, eps=0.0)
    close(z.mean(axis=0), np.zeros(4), 1e-12)
    close(z.std(axis=0), np.ones(4), 1e-12)
    assert audio.normalize(x.astype(np.float32)).dtype == np.float32
    mean, std = x.mean(axis=0), x.std(axis=0)
    close(audio.normalize(x, mean=mean, std=std), (x - mean) / (std + 1e-5), 1e-12)
    assert np.all(audio.normalize(np.ones((4, 3))) == 0)              # constant features: 0, not NaN


def test_stack_frames():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 7, 2))
    lengths = np.array([7, 4, 1])
    x[1, 4:] = 99.0                                                   # padding must not leak in
    x[2, 1:] = 99.0
    for stride in (1, 2, 3, 7, 8):
        got, new = audio.stack_frames(x, lengths, stride)
        steps = -(-7 // stride)
        assert got.shape == (3, steps, 2 * stride)
        assert new.tolist() == [-(-n // stride) for n in lengths]
        for b, n in enumerate(lengths):
            flat = np.zeros(steps * stride * 2)
            flat[:n * 2] = x[b, :n].ravel()
            assert np.array_equal(got[b].ravel(), flat)
    same, _ = audio.stack_frames(x, None, 1)
    assert np.array_equal(same[0], x[0]) and same is not x
    with pytest.raises(ValueError, match="3-D"):
        audio.stack_frames(x[0], None, 2)
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        audio.stack_frames(x, lengths, 0)


def test_features(tmp_path):
    paths = [write_wav(tmp_path / f"u{i}.wav", 8000, (speech_like(n, seed=i) * 20000).astype(np.int16))
             for i, n in enumerate((4000, 2500, 256))]
    x, lengths = audio.features(paths, normalize="none")
    assert x.dtype == np.float32 and x.shape == (3, 47, 40) and lengths.tolist() == [47, 29, 1]
    close(x[1, :29], audio.log_mel(audio.load(paths[1])[0]), 1e-6)
    for kind, base in (("logmel", 40), ("mfcc", 13)):
        for k in (0, 1, 2):
            y, _ = audio.features(paths, kind=kind, deltas=k)
            assert y.shape == (3, 47, base * (k + 1)) and not y[1, 29:].any()
    y, _ = audio.features(paths, kind="mfcc", deltas=2, normalize="none")
    mf = audio.mfcc(x[0])
    close(y[0], np.concatenate([mf, audio.deltas(mf), audio.deltas(mf, order=2)], axis=1), 1e-5)
    z, n = audio.features(paths[:1], settings=dict(audio.FSDD_SETTINGS, center=True))
    assert n.tolist() == [51]
    y, _ = audio.features(paths[0])                                   # one path
    assert y.shape == (1, 47, 40)
    resampled = write_wav(tmp_path / "u16k.wav", 16000, (speech_like(8000, 16000) * 20000).astype(np.int16))
    assert audio.features([resampled])[1].tolist() == [47]
    with pytest.raises(ValueError, match="kind must be one of"):
        audio.features(paths, kind="spectrum")
    with pytest.raises(ValueError, match="deltas must be one of"):
        audio.features(paths, deltas=3)
    with pytest.raises(ValueError, match=r"unknown keys \['nfft'\]"):
        audio.features(paths, settings={"nfft": 512})
    assert audio.features(paths, settings={"n_mels": 20, "db_step": 0.5})[0].shape == (3, 47, 20)


# ------------------------------------------------------------------------------------------ streaming

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_streaming_equals_whole_signal(dtype):
    x = speech_like(8000).astype(dtype)
    whole = audio.log_mel(x, **audio.FSDD_SETTINGS, dtype=dtype)
    stream = audio.StreamingLogMel(**audio.FSDD_SETTINGS, dtype=dtype)
    rng = np.random.default_rng(6)
    cuts = [np.arange(800, x.size, 800), np.sort(rng.choice(x.size, 40, replace=False)),
            np.array([1, 2, 3, 255, 256, 257, 336, 4000, 4000, 7999])]
    for points in cuts:
        stream.reset()
        pieces = [stream.push(piece) for piece in np.split(x, points)]
        assert all(p.dtype == dtype and p.shape[1] == 40 for p in pieces)
        got = np.concatenate(pieces)
        assert got.shape == whole.shape
        close(got, whole, 1e-5 if dtype == np.float32 else 1e-12)
    assert stream.push(np.zeros(0, dtype)).shape == (0, 40)


def test_streaming_reset_and_errors():
    stream = audio.StreamingLogMel()
    assert stream.push(np.ones(255, np.float32)).shape == (0, 40)      # not one window yet
    stream.reset()
    x = speech_like(1000).astype(np.float32)
    close(stream.push(x), audio.log_mel(x), 1e-6)
    with pytest.raises(ValueError, match="center must be False"):
        audio.StreamingLogMel(center=True)
    with pytest.raises(ValueError, match="samples must be a 1-D"):
        stream.push(np.zeros((10, 2), np.float32))
    with pytest.raises(TypeError, match="samples must be an array of float32 or float64"):
        stream.push(np.zeros(10, np.int16))


# ------------------------------------------------------------------------------------------ argument checks

def test_bad_arguments():
    x = speech_like(2000).astype(np.float32)
    with pytest.raises(TypeError, match="signal must be an array of float32 or float64, got dtype int16"):
        audio.log_mel(np.zeros(1000, np.int16))
    with pytest.raises(ValueError, match=r"signal must be a 1-D array.*\(2, 1000\)"):
        audio.log_mel(np.zeros((2, 1000), np.float32))
    with pytest.raises(ValueError, match="signal has 100 samples, fewer than n_fft=256"):
        audio.log_mel(x[:100])
    assert audio.log_mel(x[:100], center=True).shape == (2, 40)         # centred frames need fewer
    with pytest.raises(ValueError, match="win_length must be at most n_fft=256, got 300"):
        audio.log_mel(x, win_length=300)
    with pytest.raises(ValueError, match=r"fmax must lie in \(0.0, 4000.0\]"):
        audio.log_mel(x, fmax=5000.0)
    with pytest.raises(ValueError, match="fmin must lie in"):
        audio.mel_filterbank(fmin=4000.0)
    with pytest.raises(ValueError, match="window must be a window scipy"):
        audio.log_mel(x, window="no-such-window")
    with pytest.raises(ValueError, match="window must be a name or an array of win_length=200"):
        audio.log_mel(x, window=np.ones(256))
    with pytest.raises(ValueError, match="amin must lie in"):
        audio.log_mel(x, amin=0.0)
    with pytest.raises(TypeError, match="hop_length must be a positive integer"):
        audio.power_spectrogram(x, hop_length=8.0)
    with pytest.raises(TypeError, match="dtype must be"):
        audio.log_mel(x, dtype=np.float16)
    with pytest.raises(ValueError, match="n_mfcc must be at most n_mels=40"):
        audio.mfcc(audio.log_mel(x), 41)
    with pytest.raises(ValueError, match="width must be an odd integer"):
        audio.deltas(np.zeros((10, 3)), width=4)
    with pytest.raises(ValueError, match="width must be an odd integer"):
        audio.deltas(np.zeros((10, 3)), order=3, width=3)
    with pytest.raises(ValueError, match="lengths must lie in"):
        audio.deltas(np.zeros((2, 10, 3)), lengths=[3, 11])
    with pytest.raises(ValueError, match="lengths is for padded 3-D"):
        audio.normalize(np.zeros((10, 3)), lengths=[10])
    with pytest.raises(ValueError, match="mean and std must be given together"):
        audio.normalize(np.zeros((10, 3)), mean=np.zeros(3))
    with pytest.raises(ValueError, match=r"mean must have shape \(\.\.\., 3\)"):
        audio.normalize(np.zeros((10, 3)), mean=np.zeros(4), std=np.ones(4))
    with pytest.raises(TypeError, match="features must be an array of float32 or float64"):
        audio.normalize(np.zeros((10, 3), np.int64))
    with pytest.raises(TypeError, match="q must be an array of uint8"):
        audio.dequantize(np.zeros(3, np.int16), {"db_step": 0.5, "db_floor": -100})
    with pytest.raises(ValueError, match="db_step and db_floor"):
        audio.dequantize(np.zeros(3, np.uint8), {"db_step": 0.5})


def test_inputs_are_not_modified_and_layouts_agree():
    x = speech_like(3000)
    frozen = x.copy()
    frozen.flags.writeable = False
    db = audio.log_mel(frozen, dtype=np.float64)
    assert np.array_equal(frozen, x)
    assert np.array_equal(audio.log_mel(np.repeat(x, 2)[::2], dtype=np.float64), db)    # strided input
    f = np.asfortranarray(np.stack([db, db]))
    assert np.array_equal(audio.deltas(f, [db.shape[0]] * 2)[1], audio.deltas(db))


def test_import_is_light():
    code = ("import sys, numgru.audio; bad = {'librosa', 'soundfile', 'torch'} & set(sys.modules); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ------------------------------------------------------------------------------------------ the shipped data

@pytest.fixture(scope="module")
def shipped():
    with lzma.open(DATA) as f:
        with np.load(io.BytesIO(f.read())) as data:
            return {key: data[key] for key in data.files}


def test_shipped_file_layout(shipped):
    assert set(shipped) == {"logmel_q", "offsets", "digit", "speaker", "index", "settings"}
    q, offsets = shipped["logmel_q"], shipped["offsets"]
    assert q.dtype == np.uint8 and q.ndim == 2 and q.shape[1] == 40
    assert offsets.dtype == np.int64 and offsets.shape == (3001,) and offsets[0] == 0 and offsets[-1] == len(q)
    assert np.all(np.diff(offsets) >= 1)
    digit, speaker, index = shipped["digit"], shipped["speaker"], shipped["index"]
    assert (digit.dtype, speaker.dtype, index.dtype) == (np.int8, np.dtype("<U8"), np.int16)
    assert sorted(set(speaker)) == ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    keys = list(zip(speaker.tolist(), digit.tolist(), index.tolist()))
    assert keys == sorted(keys) and len(set(keys)) == 3000
    assert np.bincount(digit).tolist() == [300] * 10 and set(index.tolist()) == set(range(50))
    test = index < 5
    assert test.sum() == 300 and (~test).sum() == 2700
    assert np.bincount(digit[test]).tolist() == [30] * 10
    settings = json.loads(shipped["settings"].item())
    assert settings == dict(audio.FSDD_SETTINGS, db_floor=-100.0, db_step=0.5)
    db = audio.dequantize(q, shipped["settings"])
    assert db.dtype == np.float32 and db.min() == -100.0 and db.max() < 27.5


@needs_fsdd
def test_shipped_frames_are_log_mel_of_the_recordings(shipped):
    settings = json.loads(shipped["settings"].item())
    for i in (0, 1234, 2999):
        path = os.path.join(FSDD, f"{shipped['digit'][i]}_{shipped['speaker'][i]}_{shipped['index'][i]}.wav")
        signal, _ = audio.load(path, settings["sample_rate"], resample=False)
        frames = audio.log_mel(signal, **audio.FSDD_SETTINGS)
        stored = audio.dequantize(shipped["logmel_q"][shipped["offsets"][i]:shipped["offsets"][i + 1]], settings)
        assert stored.shape == frames.shape
        assert np.abs(stored - frames).max() <= 0.25 + 1e-3
