"""numgru.speech: the front end, SpeechClassifierModel, CTCModel, SpeechStream, and the speech tasks."""
import numpy as np
import pytest

import numgru
from numgru import audio, speech, tasks

from reference import assert_close

RNG = np.random.default_rng(0)


def _log_mels(count, n_mels=40, low=5, high=30, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(-50, 10, (int(rng.integers(low, high)), n_mels)).astype(np.float32) for _ in range(count)]


# ------------------------------------------------------------------ front end

def test_front_end_sizes_and_prepare():
    logmel = speech.front_end()
    assert logmel["size"] == 40
    mfcc = speech.front_end(kind="mfcc", n_mfcc=13, deltas=2, stride=3)
    assert mfcc["size"] == 13 * 3 * 3
    log_mels = _log_mels(4)
    x, lengths = speech.prepare(log_mels, mfcc)
    assert x.shape == (4, -(-max(len(m) for m in log_mels) // 3), mfcc["size"])
    assert lengths.tolist() == [-(-len(m) // 3) for m in log_mels]
    one, one_len = speech.prepare(log_mels[1], mfcc)          # one (T, n_mels) array is one utterance
    assert_close(one[0, :one_len[0]], x[1, :lengths[1]], 1e-6)


def test_front_end_global_normalisation_uses_training_statistics():
    log_mels = _log_mels(6)
    front = speech.front_end(kind="logmel", normalize="none")
    mean, std = speech.global_statistics(log_mels, front)
    glob = speech.front_end(kind="logmel", normalize="global", mean=mean, std=std)
    x, lengths = speech.prepare(log_mels, glob)
    real = x[np.arange(x.shape[1]) < lengths[:, None]]
    assert_close(real.mean(axis=0), np.zeros(40), 1e-4)
    assert_close(real.std(axis=0), np.ones(40), 1e-3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="wave"), "kind"), (dict(deltas=3), "deltas"), (dict(normalize="batch"), "normalize"),
    (dict(normalize="global"), "mean and std"), (dict(stride=0), "stride"), (dict(kind="mfcc", n_mfcc=41), "n_mfcc"),
    (dict(mean=[0.0] * 40, std=[1.0] * 40), "mean and std apply"),
    (dict(normalize="global", mean=[0.0] * 3, std=[1.0] * 3), "mean must hold"),
    (dict(normalize="global", mean=[0.0] * 40, std=[0.0] * 40), "std must be positive"),
])
def test_front_end_bad_arguments(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        speech.front_end(**kwargs)


# ------------------------------------------------------------------ models: padding, gradients

def _classifier(pooling="mean", dtype="float64", bidirectional=True, layers=1):
    front = speech.front_end(kind="mfcc", n_mfcc=4, deltas=1)
    return speech.SpeechClassifierModel(front, 3, hidden_size=5, num_layers=layers, bidirectional=bidirectional,
                                        pooling=pooling, dropout=0.0, dtype=dtype, seed=1)


def _ctc_model(dtype="float64", bidirectional=True, layers=2, **front):
    front = speech.front_end(**dict(dict(kind="mfcc", n_mfcc=4), **front))
    return speech.CTCModel(front, ["a", "b", "c"], hidden_size=5, num_layers=layers, bidirectional=bidirectional,
                           dropout=0.0, dtype=dtype, seed=2)


@pytest.mark.parametrize("pooling", ["mean", "max", "last"])
def test_classifier_padding_never_changes_a_result(pooling):
    model = _classifier(pooling, "float32").eval()
    x = RNG.standard_normal((3, 9, model.input_size)).astype(np.float32)
    lengths = np.array([9, 4, 6])
    logits = model(x, lengths)
    garbage = x.copy()
    for b, n in enumerate(lengths):
        garbage[b, n:] = 1e3
    longer = np.concatenate([garbage, np.full((3, 5, model.input_size), -7, np.float32)], axis=1)
    assert np.array_equal(model(longer, lengths), logits)
    alone = model(x[1:2, :4], [4])
    assert_close(alone, logits[1:2], 1e-6)


def _finite_difference(model, loss_of, name, index, eps=1e-6):
    param = model.parameters()[name]
    old = param[index]
    param[index] = old + eps
    up = loss_of()
    param[index] = old - eps
    down = loss_of()
    param[index] = old
    return (up - down) / (2 * eps)


@pytest.mark.parametrize("pooling", ["mean", "max", "last"])
def test_classifier_gradient_matches_finite_differences(pooling):
    model = _classifier(pooling)
    x = RNG.standard_normal((3, 7, model.input_size))
    lengths = np.array([7, 3, 5])
    labels = np.array([0, 2, 1])

    def loss_of():
        return numgru.losses.cross_entropy(model(x, lengths), labels)[0]

    model.zero_grad()
    loss, dlogits = numgru.losses.cross_entropy(model(x, lengths), labels)
    model.backward(dlogits)
    for name in ("gru.weight_ih_l0", "gru.weight_hh_l0_reverse", "head.weight", "head.bias"):
        index = tuple(int(i) for i in np.unravel_index(2, model.parameters()[name].shape))
        assert abs(model.grads[name][index] - _finite_difference(model, loss_of, name, index)) <= 1e-8


def test_ctc_model_gradient_matches_finite_differences():
    model = _ctc_model()
    x = RNG.standard_normal((3, 8, model.input_size))
    lengths = np.array([8, 5, 7])
    targets = np.array([[1, 2, 2], [3, -1, -1], [1, 3, -1]])
    mask = np.arange(8) < lengths[:, None]

    def loss_of():
        return speech.ctc_objective(model(x, lengths), targets, mask)[0]

    model.zero_grad()
    log_probs = model(x, lengths)
    assert np.all(log_probs[1, 5:] == 0) and np.all(log_probs[2, 7:] == 0)
    assert_close(np.exp(log_probs[0]).sum(axis=-1), np.ones(8), 1e-12)
    model.backward(speech.ctc_objective(log_probs, targets, mask)[1])
    for name in ("gru.weight_ih_l0", "gru.weight_hh_l1", "gru.bias_hh_l1_reverse", "head.weight", "head.bias"):
        for flat in (0, 3):
            index = tuple(int(i) for i in np.unravel_index(flat, model.parameters()[name].shape))
            assert abs(model.grads[name][index] - _finite_difference(model, loss_of, name, index)) <= 1e-8


def test_ctc_model_matches_torch():
    torch = pytest.importorskip("torch")
    model = _ctc_model()
    B, T = 3, 9
    x = RNG.standard_normal((B, T, model.input_size))
    lengths = np.array([9, 6, 8])
    targets = np.array([[1, 1, 2], [3, 2, -1], [2, -1, -1]])
    target_lengths = (targets >= 0).sum(axis=1)
    mask = np.arange(T) < lengths[:, None]
    model.zero_grad()
    log_probs = model(x, lengths)
    loss, dlog_probs = speech.ctc_objective(log_probs, targets, mask)
    model.backward(dlog_probs)

    gru = torch.nn.GRU(model.input_size, 5, 2, bidirectional=True, dtype=torch.float64)
    head = torch.nn.Linear(10, 4, dtype=torch.float64)
    params = {f"gru.{k}": v for k, v in gru.named_parameters()} | {f"head.{k}": v for k, v in head.named_parameters()}
    with torch.no_grad():
        for name, value in model.state_dict().items():
            params[name].copy_(torch.from_numpy(value))
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths), batch_first=True,
                                                     enforce_sorted=False)
    out, _ = gru(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
    torch_log_probs = head(out).log_softmax(-1)
    torch_loss = torch.nn.functional.ctc_loss(torch_log_probs.transpose(0, 1), torch.from_numpy(np.maximum(targets, 0)),
                                              torch.from_numpy(lengths), torch.from_numpy(target_lengths))
    torch_loss.backward()
    assert abs(loss - torch_loss.item()) <= 1e-10 * abs(torch_loss.item())
    assert_close(log_probs * mask[..., None], torch_log_probs.detach().numpy() * mask[..., None], 1e-10)
    for name, value in params.items():
        assert_close(model.grads[name], value.grad.numpy(), 1e-10)


def test_ctc_model_decodes_labels_and_padding_is_never_read():
    model = _ctc_model("float32").eval()
    x = RNG.standard_normal((2, 12, model.input_size)).astype(np.float32)
    lengths = np.array([12, 7])
    padded = x.copy()
    padded[1, 7:] = 99.0
    decoded = model.decode(x, lengths)
    assert decoded == model.decode(padded, lengths)
    assert all(set(labels) <= {"a", "b", "c"} for labels in decoded)
    assert model.decode(x, lengths, beam_width=4) == model.decode(padded, lengths, beam_width=4)


def test_models_save_and_load_with_their_front_end(tmp_path):
    for model in (_classifier("max", "float32"), _ctc_model("float32", stride=2)):
        path = numgru.save(tmp_path / "model.npz", model)
        again = numgru.load(path)
        assert type(again) is type(model) and again.front == model.front
        x = RNG.standard_normal((2, 6, model.input_size)).astype(np.float32)
        model.eval()
        again.eval()
        assert np.array_equal(again(x, [6, 4]), model(x, [6, 4]))


def test_model_bad_inputs():
    model = _classifier("mean", "float32")
    with pytest.raises(ValueError, match=r"x must be \(B, T, 8\)"):
        model(np.zeros((2, 5, 3), np.float32), [5, 5])
    with pytest.raises(ValueError, match="lengths"):
        model(np.zeros((2, 5, 8), np.float32), [6, 5])
    with pytest.raises(TypeError, match="front"):
        speech.SpeechClassifierModel("mfcc", 3)
    with pytest.raises(TypeError, match="labels"):
        speech.CTCModel(speech.front_end(), "abc")
    with pytest.raises(ValueError, match="distinct"):
        speech.CTCModel(speech.front_end(), ["a", "a"])
    with pytest.raises(RuntimeError, match="backward needs a forward"):
        _ctc_model().backward(np.zeros((1, 2, 4)))


# ------------------------------------------------------------------ training, files in

def _tone(freq, seconds=0.4, rate=8000, seed=0):
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(0, 0.01, t.size)
    return (0.5 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def _write_wav(path, signal, rate=8000):
    from scipy.io import wavfile
    wavfile.write(path, rate, (signal * 32767).astype(np.int16))
    return str(path)


def test_classifier_learns_tones_and_transcribes_wav_files(tmp_path):
    settings = audio.FSDD_SETTINGS
    freqs = {"low": 300.0, "high": 1500.0}
    signals = [_tone(f, seed=i) for i in range(20) for f in freqs.values()]
    labels = np.array([0, 1] * 20)
    front = speech.front_end(kind="logmel")
    x, lengths = speech.prepare([audio.log_mel(s, **settings) for s in signals], front)
    model = speech.SpeechClassifierModel(front, 2, hidden_size=8, classes=list(freqs), seed=0)
    numgru.fit(model, x, labels, loss="cross_entropy", epochs=8, lr=0.02, batch_size=8, lengths=lengths, seed=0,
               progress=False)
    paths = [_write_wav(tmp_path / "low.wav", _tone(300.0, seed=99)),
             _write_wav(tmp_path / "high.wav", _tone(1500.0, seed=98))]
    assert model.transcribe(paths) == [["low"], ["high"]]
    resampled = _write_wav(tmp_path / "high16k.wav", _tone(1500.0, rate=16000, seed=97), rate=16000)
    assert model.transcribe([resampled]) == [["high"]]
    with pytest.raises(ValueError, match="high16k.wav"):
        model.transcribe([resampled], resample=False)


def test_stream_equals_the_whole_utterance():
    rng = np.random.default_rng(3)
    settings = audio.FSDD_SETTINGS
    signal = (0.1 * rng.standard_normal(8000 + 333)).astype(np.float32)
    front = speech.front_end(kind="logmel", normalize="none", stride=2)
    mean, std = speech.global_statistics([audio.log_mel(signal, **settings)], front)
    front = speech.front_end(kind="logmel", normalize="global", mean=mean, std=std, stride=2)
    model = speech.CTCModel(front, list("0123456789"), hidden_size=16, num_layers=2, bidirectional=False,
                            seed=0).eval()
    x, lengths = speech.prepare([audio.log_mel(signal, **settings)], front)
    whole = model.decode(x, lengths)[0]
    whole_log_probs = model.predict_log_probs(x, lengths)[0]
    stream = model.stream()
    heard, frames = [], []
    original = stream._run
    stream._run = lambda stacked: (frames.append(stacked), original(stacked))[1]
    for start in range(0, len(signal), 800):            # 100 ms at a time
        heard += stream.push(signal[start:start + 800])
    heard += stream.finish()
    assert heard == whole
    assert_close(np.concatenate(frames), x[0, :lengths[0]], 1e-5)
    with pytest.raises(ValueError, match="cannot stream"):
        _ctc_model("float32", bidirectional=False).stream()
    with pytest.raises(ValueError, match="bidirectional"):
        speech.CTCModel(front, ["a"], hidden_size=4, seed=0).stream()
    assert whole_log_probs.shape == (lengths[0], 11)


# ------------------------------------------------------------------ tasks

def test_fsdd_recordings_and_the_official_split():
    rec = tasks.fsdd_recordings()
    assert len(rec) == 3000 and rec.settings["sample_rate"] == 8000
    assert sorted(set(rec.speaker)) == list(tasks.FSDD_SPEAKERS)
    assert np.bincount(rec.digit).tolist() == [300] * 10
    task = tasks.digits()
    assert (len(task.x_train), len(task.x_val), len(task.x_test)) == (2430, 270, 300)
    assert np.bincount(task.y_test).tolist() == [30] * 10
    held_out = tasks.digits(test_speaker="theo")
    assert (len(held_out.x_train) + len(held_out.x_val), len(held_out.x_test)) == (2500, 500)
    with pytest.raises(ValueError, match="test_speaker"):
        tasks.digits(test_speaker="nobody")


def test_digit_strings_are_deterministic_and_drawn_from_their_own_split():
    a = tasks.digit_strings(n_train=20, n_val=5, n_test=10, seed=3)
    b = tasks.digit_strings(n_train=20, n_val=5, n_test=10, seed=3)
    assert all(np.array_equal(u, v) for u, v in zip(a.x_train + a.x_test, b.x_train + b.x_test))
    assert all(1 <= len(y) <= 7 for y in a.y_train + a.y_test)
    rec = tasks.fsdd_recordings()
    first_frames = {m[:3].tobytes(): i for i, m in enumerate(rec.log_mels)}
    for strings, labels, test in ((a.x_train, a.y_train, False), (a.x_test, a.y_test, True)):
        for string, digits in zip(strings[:4], labels[:4]):
            found = [first_frames[string[t:t + 3].tobytes()] for t in range(len(string) - 2)
                     if string[t:t + 3].tobytes() in first_frames]
            assert [rec.digit[i] for i in found] == list(digits)
            assert all((rec.take[i] < 5) == test for i in found)


@pytest.mark.parametrize("make", [lambda: speech.SpeechClassifierModel(speech.front_end(), 3, device="cuda"),
                                  lambda: speech.CTCModel(speech.front_end(), ["a"], device="cuda")])
def test_cuda_is_refused_naming_the_layer(make):
    with pytest.raises(RuntimeError, match=r"device='cuda' is not available for (SpeechClassifierModel|CTCModel)"):
        make()


def test_energy_segments_find_the_loud_stretches():
    db = np.full((100, 40), -60.0, np.float32)
    db[10:30] = -20.0
    db[34:40] = -25.0              # 4 quiet frames inside a word: joined (min_gap 10)
    db[60:80] = -22.0
    db[90:92] = -20.0              # a click of 2 frames: dropped (min_frames 5)
    assert speech.energy_segments(db) == [(10, 40), (60, 80)]
    assert speech.energy_segments(np.full((20, 40), -60.0)) == []
