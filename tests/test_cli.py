"""python -m numgru train / predict / info: end to end in a subprocess on a tiny budget, and the error paths."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import numgru
from numgru.__main__ import main

TINY = ["--task", "adding", "--task-arg", "T=10", "--n-train", "96", "--n-val", "32", "--n-test", "32",
        "--epochs", "2", "--hidden", "8", "--batch", "32", "--seed", "1"]


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "numgru", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def has_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_train_then_predict_end_to_end(tmp_path):
    out = tmp_path / "run"
    done = cli("train", *TINY, "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    stdout = done.stdout
    assert "task: adding problem, T=10" in stdout
    assert "test MSE:" in stdout and "baseline (predict the mean):" in stdout
    assert "samples/s" in done.stderr and "epoch 2/2" in done.stderr          # the progress bar
    model_path = out / "adding.npz"
    assert f"model:   {model_path}" in stdout
    model, meta = numgru.load(model_path, return_metadata=True)
    assert isinstance(model, numgru.GRUModel) and model.hidden_size == 8
    assert meta["task"] == "adding" and meta["task_params"]["T"] == 10 and meta["task_params"]["n_train"] == 96
    history = json.loads((out / "adding-history.json").read_text())
    assert history["epochs"] == [1, 2] and history["test_metric"] == meta["test_metric"]
    if has_matplotlib():
        png = out / "adding.png"
        assert f"plot:    {png}" in stdout
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "plot:    skipped: matplotlib is not installed" in stdout

    inputs = out / "adding-inputs.npy"
    preds = tmp_path / "preds.npy"
    done = cli("predict", str(model_path), str(inputs), "--out", str(preds), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "16 sequence(s) of 10 steps -> predictions of shape (16, 1)" in done.stdout
    expected = model.predict(np.load(inputs))
    np.testing.assert_allclose(np.load(preds), expected, rtol=1e-6)


def test_train_without_matplotlib_skips_the_plot(tmp_path, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)          # every `import matplotlib...` now fails
    assert main(["train", *TINY, "--epochs", "1", "--quiet", "--out", str(tmp_path)]) == 0
    stdout = capsys.readouterr().out
    assert "plot:    skipped: matplotlib is not installed (pip install 'numgru[plot]'" in stdout
    assert "test MSE:" in stdout
    assert (tmp_path / "adding.npz").exists() and not (tmp_path / "adding.png").exists()


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    import numba
    assert f"numba         {numba.__version__}" in out
    assert "threading layer: " in out and f"threads: numba {numba.get_num_threads()}" in out
    assert "llvmlite" in out and "scipy" in out
    assert "cpu   works" in out
    assert "cuda  " in out


def save_univariate(tmp_path, loss="mse", outputs=1, classes=None):
    model = numgru.GRUModel(1, 4, outputs, seed=0)
    meta = dict(task="unit", loss=loss, classes=classes)
    if loss == "mse":
        meta["scaling"] = {"mean": 10.0, "std": 4.0}
    return model, numgru.save(tmp_path / "m.npz", model, metadata=meta)


def test_predict_input_layouts_and_scaling(tmp_path, capsys):
    model, path = save_univariate(tmp_path)
    windows = np.random.default_rng(0).uniform(0, 20, (5, 7))       # (B, T) raw values, input_size 1
    np.save(tmp_path / "w.npy", windows)
    assert main(["predict", path, str(tmp_path / "w.npy"), "--out", str(tmp_path / "p.npy")]) == 0
    expected = model.predict(((windows - 10.0) / 4.0)[..., None].astype(np.float32)) * 4.0 + 10.0
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, rtol=1e-5)
    np.save(tmp_path / "one.npy", windows[0].astype(np.int64).astype(np.float64))  # one sequence (T,)
    assert main(["predict", path, str(tmp_path / "one.npy")]) == 0
    assert "1 sequence(s) of 7 steps -> predictions of shape (1,)" in capsys.readouterr().out
    np.save(tmp_path / "lengths.npy", np.array([7, 3, 1, 7, 5]))
    assert main(["predict", path, str(tmp_path / "w.npy"), "--lengths", str(tmp_path / "lengths.npy"),
                 "--out", str(tmp_path / "pl.npy")]) == 0
    short = model.predict(((windows[1:2, :3] - 10.0) / 4.0)[..., None].astype(np.float32)) * 4.0 + 10.0
    np.testing.assert_allclose(np.load(tmp_path / "pl.npy")[1], short[0], rtol=1e-5)
    np.save(tmp_path / "lengths.npy", np.array([7.0, 3.0, 1.0, 7.0, 5.0]))
    assert main(["predict", path, str(tmp_path / "w.npy"), "--lengths", str(tmp_path / "lengths.npy")]) == 2
    assert "lengths must be an array of integers" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.ones((2, 3, 4)))
    assert main(["predict", path, str(tmp_path / "bad.npy")]) == 2
    err = capsys.readouterr().err
    assert "cannot run the model on" in err and "bad.npy" in err
    assert "must have input_size=1 features in its last dimension, got shape (2, 3, 4)" in err
    np.save(tmp_path / "bad.npy", np.ones((2, 3, 4, 1)))
    assert main(["predict", path, str(tmp_path / "bad.npy")]) == 2
    assert "has shape (2, 3, 4, 1); the model expects (B, T, 1), (B, T) or (T,)" in capsys.readouterr().err


def test_predict_classification_prints_classes(tmp_path, capsys):
    model, path = save_univariate(tmp_path, loss="cross_entropy", outputs=3, classes=["a", "b", "c"])
    x = np.random.default_rng(1).standard_normal((4, 6, 1))
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", path, str(tmp_path / "x.npy"), "--out", str(tmp_path / "labels.npy")]) == 0
    labels = np.load(tmp_path / "labels.npy")
    assert np.array_equal(labels, model.predict(x.astype(np.float32)).argmax(-1))
    assert "classes: " + " ".join("abc"[i] for i in labels) in capsys.readouterr().out


def test_cli_errors_name_what_is_wrong(tmp_path, capsys):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    np.save(tmp_path / "x.npy", np.ones((1, 3, 2), np.float32))
    assert main(["predict", str(bad), str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr().err
    assert "numgru predict: error: cannot load numgru model from" in err and str(bad) in err
    assert main(["predict", str(tmp_path / "absent.npz"), str(tmp_path / "x.npy")]) == 2
    assert "absent.npz" in capsys.readouterr().err
    assert main(["train", "--task", "sunspots", "--n-train", "10", "--out", str(tmp_path)]) == 2
    assert "--n-train does not apply to task 'sunspots'" in capsys.readouterr().err
    assert main(["train", "--epochs", "0", "--out", str(tmp_path)]) == 2
    assert "--epochs must be at least 1, got 0" in capsys.readouterr().err
    assert main(["train", "--task-arg", "T", "--out", str(tmp_path)]) == 2
    assert "--task-arg takes KEY=VALUE" in capsys.readouterr().err
    assert main(["train", "--task-arg", "colour=blue", "--out", str(tmp_path)]) == 2
    assert "colour" in capsys.readouterr().err
    # GRUModel (GRU + a NumPy head and optimiser) runs on the CPU: asking for CUDA is a one-line error
    assert main(["train", "--device", "cuda", *TINY, "--quiet", "--out", str(tmp_path)]) == 2
    assert "device='cuda' is not available" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--task", "imagenet"])
    assert not os.path.exists(tmp_path / "sunspots.npz")


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`python -m numgru generate ... | head -c 10`: the reader leaves early; no traceback, SIGPIPE's status."""
    import subprocess
    import numgru
    vocab = numgru.text.Vocabulary(list("ab"))
    path = numgru.save(str(tmp_path / "lm.npz"), numgru.LanguageModel(vocab, embedding_dim=2, hidden_size=2,
                                                                      num_layers=1, seed=0))
    proc = subprocess.Popen([sys.executable, "-m", "numgru", "generate", path, "--prompt", "a", "--length",
                             "300000", "--seed", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141, err
    assert "Traceback" not in err
