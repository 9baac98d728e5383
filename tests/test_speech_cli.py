"""python -m numgru train --task digits|digit-strings and transcribe: tiny budgets, the output format, bad files."""
import json

import numpy as np
import pytest
from scipy.io import wavfile

import numgru
from numgru.__main__ import main

TINY = ["--epochs", "1", "--hidden", "8", "--quiet", "--seed", "0"]


def _wav(path, signal, rate=8000, channels=1):
    data = (np.asarray(signal) * 20000).astype(np.int16)
    wavfile.write(path, rate, np.stack([data] * channels, axis=1) if channels > 1 else data)
    return str(path)


def _speech(seconds=0.5, rate=8000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return 0.5 * np.sin(2 * np.pi * (300 + 400 * t) * t) * np.hanning(t.size) + 0.01 * rng.standard_normal(t.size)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A digits classifier and a streaming digit-strings recogniser, trained for one epoch on a few recordings."""
    out = tmp_path_factory.mktemp("speech-run")
    logs = {}
    for task, extra in (("digits", ["--n-train", "60", "--n-test", "20"]),
                        ("digit-strings", ["--n-train", "24", "--n-val", "8", "--n-test", "10", "--task-arg",
                                           "streaming=true"])):
        import io
        buffer = io.StringIO()
        from numgru.__main__ import build_parser, cmd_train
        args = build_parser().parse_args(["train", "--task", task, *TINY, *extra, "--out", str(out)])
        assert cmd_train(args, out=buffer) == 0
        logs[task] = buffer.getvalue()
    return out, logs


def test_train_digits_reports_accuracy_and_baselines(trained):
    out, logs = trained
    log = logs["digits"]
    assert "task: spoken digits (FSDD), official split" in log
    assert "test accuracy:" in log and "logistic regression on MFCC + deltas mean/std" in log
    assert "majority class:" in log
    model, meta = numgru.load(out / "digits.npz", return_metadata=True)
    assert isinstance(model, numgru.SpeechClassifierModel) and model.classes == [str(d) for d in range(10)]
    assert 0.0 <= meta["test_accuracy"] <= 1.0
    history = json.loads((out / "digits-history.json").read_text())
    assert history["epochs"] == [1]


def test_train_digit_strings_reports_error_rates_and_streaming(trained):
    out, logs = trained
    log = logs["digit-strings"]
    assert "test digit error rate: greedy" in log and "beam 8" in log and "energy segmentation" in log
    assert "streamed 100 ms at a time (SpeechStream): 10/10 test strings heard as in one call" in log
    model = numgru.load(out / "digit-strings.npz")
    assert isinstance(model, numgru.CTCModel) and not model.bidirectional
    assert model.front["normalize"] == "global"


def test_transcribe_prints_path_tab_digits(trained, tmp_path, capsys):
    out, _ = trained
    files = [_wav(tmp_path / "a.wav", _speech(seed=1)), _wav(tmp_path / "b.wav", _speech(0.8, seed=2))]
    for name in ("digits.npz", "digit-strings.npz"):
        assert main(["transcribe", str(out / name), *files]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split("\t")[0] for line in lines] == files
        for line in lines:
            heard = line.split("\t")[1]
            assert all(word in [str(d) for d in range(10)] for word in heard.split())
        if name == "digits.npz":
            assert all(len(line.split("\t")[1].split()) == 1 for line in lines)
    assert main(["transcribe", str(out / "digit-strings.npz"), files[0], "--beam", "4"]) == 0
    assert capsys.readouterr().out.startswith(files[0] + "\t")


def test_transcribe_bad_files_are_named_and_the_rest_still_run(trained, tmp_path, capsys):
    out, _ = trained
    good = _wav(tmp_path / "good.wav", _speech())
    stereo = _wav(tmp_path / "stereo.wav", _speech(), channels=2)
    silent = _wav(tmp_path / "silent.wav", np.zeros(4000))
    empty = _wav(tmp_path / "empty.wav", np.zeros(0))
    short = _wav(tmp_path / "short.wav", _speech(0.01))
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00not a wav at all")
    other_rate = _wav(tmp_path / "rate.wav", _speech(rate=16000), rate=16000)
    files = [good, stereo, silent, empty, short, str(broken), str(tmp_path / "missing.wav")]
    assert main(["transcribe", str(out / "digits.npz"), *files]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].startswith(good + "\t") and len(captured.out.splitlines()) == 1
    for path, reason in ((stereo, "2 channels"), (silent, "silent"), (empty, "no samples"), (short, "too short"),
                         (broken, "not a readable WAV"), (tmp_path / "missing.wav", "no such audio file")):
        assert any(str(path) in line and reason in line for line in captured.err.splitlines()), (path, captured.err)
    assert main(["transcribe", str(out / "digits.npz"), stereo, "--mix", "mean"]) == 0
    assert main(["transcribe", str(out / "digits.npz"), other_rate, "--no-resample"]) == 1
    assert "16000 Hz, expected 8000 Hz" in capsys.readouterr().err
    assert main(["transcribe", str(out / "digits.npz"), other_rate]) == 0       # resampled by default


def test_transcribe_refuses_other_models_and_bad_options(trained, tmp_path, capsys):
    out, _ = trained
    wav = _wav(tmp_path / "x.wav", _speech())
    gru_path = numgru.save(tmp_path / "gru.npz", numgru.GRUModel(2, 4, 1, seed=0))
    assert main(["transcribe", str(gru_path), wav]) == 2
    assert "transcribe runs a SpeechClassifierModel or a CTCModel" in capsys.readouterr().err
    assert main(["transcribe", str(out / "digits.npz"), wav, "--beam", "3"]) == 2
    assert "--beam applies to CTC models" in capsys.readouterr().err
    assert main(["transcribe", str(out / "digit-strings.npz"), wav, "--beam", "0"]) == 2
    assert "--beam must be at least 1" in capsys.readouterr().err
    assert main(["transcribe", str(tmp_path / "nothing.npz"), wav]) == 2
