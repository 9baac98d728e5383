"""The shipped tasks: documented shapes and dtypes, what the data means, baselines, determinism under a seed."""
import numpy as np
import pytest

from numgru import tasks

SMALL = {
    "pattern": {},
    "adding": dict(T=12, n_train=40, n_val=10, n_test=20),
    "copy": dict(delay=5, length=3, n_train=40, n_val=10, n_test=20),
    "mackey-glass": dict(n_points=300, window=12),
    "sunspots": {},
    "waveforms": dict(min_len=8, max_len=16, n_train=40, n_val=10, n_test=20),
}
SEEDED = ["adding", "copy", "mackey-glass", "waveforms"]
SPLITS = ["x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "lengths_train", "lengths_val", "lengths_test"]


def arrays(task):
    return {name: getattr(task, name) for name in SPLITS if getattr(task, name) is not None}


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_every_task_is_well_formed(name):
    task = tasks.load(name, **SMALL[name])
    assert set(SMALL) == set(tasks.TASKS)
    for split in ("train", "val", "test"):
        x, y = getattr(task, f"x_{split}"), getattr(task, f"y_{split}")
        assert x.ndim == 3 and x.dtype == np.float32 and x.shape[-1] == task.input_size
        assert len(y) == len(x) > 0
        assert np.isfinite(x).all()
        if task.loss == "mse":
            assert y.dtype == np.float32
            assert y.shape == ((len(x), task.num_outputs) if task.output == "last" else x.shape[:2] + (1,))
        else:
            assert y.dtype == np.int64 and y.min() >= 0 and y.max() < task.num_outputs
            assert y.shape == ((len(x),) if task.output == "last" else x.shape[:2])
    assert task.output in ("last", "all") and task.mode in ("min", "max")
    assert np.isfinite(task.baseline)
    assert {"hidden", "layers", "epochs", "lr", "batch"} <= set(task.recipe)
    assert repr(task).startswith(f"Task({name!r}")


@pytest.mark.parametrize("name", SEEDED)
def test_seeded_tasks_are_deterministic(name):
    a = tasks.load(name, seed=3, **SMALL[name])
    b = tasks.load(name, seed=3, **SMALL[name])
    c = tasks.load(name, seed=4, **SMALL[name])
    for key, value in arrays(a).items():
        assert np.array_equal(value, arrays(b)[key]), key
    assert not np.array_equal(a.x_train, c.x_train)
    assert not np.array_equal(a.x_train, a.x_test[:len(a.x_train)]) or len(a.x_test) < len(a.x_train)


def test_pattern_is_the_tutorial_sequence():
    task = tasks.pattern()
    assert task.x_train[0, :, 0].tolist() == [0, 1, 0, 1, 0]
    assert task.y_train[0, :, 0].tolist() == [1, 0, 1, 0, 1]
    assert task.baseline == pytest.approx(0.24)


def test_adding_problem():
    task = tasks.adding(T=20, n_train=20000, n_val=10, n_test=20000, seed=0)
    x, y = task.x_train, task.y_train
    markers = x[:, :, 1]
    assert set(np.unique(markers)) == {0.0, 1.0}
    assert (markers.sum(axis=1) == 2).all()
    assert (markers[:, :10].sum(axis=1) == 1).all() and (markers[:, 10:].sum(axis=1) == 1).all()
    assert ((x[:, :, 0] >= 0) & (x[:, :, 0] < 1)).all()
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * markers).sum(axis=1), rtol=1e-6)
    assert task.baseline == pytest.approx(1 / 6, abs=0.006)        # predicting the mean
    with pytest.raises(ValueError, match="T must be at least 2"):
        tasks.adding(T=1)


def test_copy_memory():
    task = tasks.copy_memory(delay=6, length=4, n_symbols=5, n_train=50, n_val=5, n_test=5, seed=1)
    x, y = task.x_train, task.y_train
    steps = 6 + 2 * 4
    assert x.shape == (50, steps, 7) and y.shape == (50, steps) and task.num_outputs == 7
    assert (x.sum(axis=-1) == 1).all()                       # one-hot
    tokens = x.argmax(-1)
    symbols = tokens[:, :4]
    assert ((symbols >= 1) & (symbols <= 5)).all()
    assert (tokens[:, 4 + 6 - 1] == 6).all()                 # the delimiter
    assert (np.delete(tokens, list(range(4)) + [9], axis=1) == 0).all()
    assert np.array_equal(y[:, -4:], symbols) and not y[:, :-4].any()
    assert task.baseline == pytest.approx(1 / 5)
    perfect = np.eye(7)[y] * 10.0
    assert task.metric(perfect, y) == 1.0
    assert task.metric(np.zeros_like(perfect), y) == pytest.approx(0.0)


def test_mackey_glass_series():
    a = tasks.mackey_glass_series(2000, seed=0)
    b = tasks.mackey_glass_series(2000, seed=0)
    assert np.array_equal(a, b) and a.shape == (2000,)
    assert 0.2 < a.min() and a.max() < 1.45                  # the tau=17 attractor's range
    assert a.std() > 0.15                                    # not decayed to a fixed point
    # chaotic, not periodic: no lag up to 200 samples repeats the series
    lags = [np.abs(a[lag:] - a[:-lag]).mean() for lag in range(20, 200)]
    assert min(lags) > 0.01
    # the integrator converges: smaller steps approach a fine-step reference
    ref = tasks.mackey_glass_series(300, dt=0.0125, seed=0)
    err = [np.abs(tasks.mackey_glass_series(300, dt=dt, seed=0) - ref).max() for dt in (0.1, 0.05)]
    assert err[0] < 2e-3 and err[1] < err[0] / 3, err
    assert np.array_equal(tasks.mackey_glass_series(300, seed=0), a[:300])
    with pytest.raises(ValueError, match="multiples of dt"):
        tasks.mackey_glass_series(10, tau=17.05)


def test_forecast_windows_follow_the_series():
    task = tasks.mackey_glass(n_points=400, window=10, horizon=1, seed=0)
    for x, y in ((task.x_train, task.y_train), (task.x_test, task.y_test)):
        assert np.array_equal(x[1:, :-1], x[:-1, 1:])        # consecutive windows overlap by one step
        assert np.array_equal(y[:-1, 0], x[1:, -1, 0])       # the target is the next value
    assert abs(task.x_train.mean()) < 0.2 and task.scaling["std"] > 0
    assert task.baseline == pytest.approx(np.mean((task.y_test - task.x_test[:, -1]) ** 2))
    three = tasks.mackey_glass(n_points=400, window=10, horizon=3, seed=0)
    np.testing.assert_array_equal(three.y_train[:-2, 0], task.y_train[2:len(three.y_train), 0])


def test_sunspots_are_the_shipped_record():
    years, values = tasks.sunspots_series()
    assert years[0] == 1700 and years[-1] == 2008 and len(values) == 309
    assert np.array_equal(np.diff(years), np.ones(308))
    assert values[:5].tolist() == [5, 11, 16, 23, 36]
    assert values.max() == pytest.approx(190.2)            # 1957, the largest yearly mean of the record
    assert years[values.argmax()] == 1957
    task = tasks.sunspots(window=20)
    mean, std = task.scaling["mean"], task.scaling["std"]
    cut = int(309 * 0.7)
    assert mean == pytest.approx(values[:cut].mean()) and std == pytest.approx(values[:cut].std())
    np.testing.assert_allclose(task.x_train[0, :, 0] * std + mean, values[:20], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(task.y_test[-1, 0] * std + mean, values[-1], rtol=1e-5, atol=1e-4)


def test_waveforms():
    task = tasks.waveforms(min_len=10, max_len=30, n_train=400, n_val=10, n_test=10, seed=2)
    x, y, lengths = task.x_train, task.y_train, task.lengths_train
    assert lengths.min() >= 10 and lengths.max() <= 30
    assert all(not x[i, lengths[i]:].any() for i in range(len(x)))     # zero padding
    assert all(np.count_nonzero(x[i, :lengths[i]]) > 0 for i in range(len(x)))
    counts = np.bincount(y, minlength=4)
    assert counts.min() > 60 and task.classes == ["sine", "square", "triangle", "sawtooth"]
    assert 0.15 < task.baseline < 0.45
    clean = tasks.waveforms(min_len=40, max_len=40, noise=0.0, n_train=40, n_val=1, n_test=1, seed=0)
    square = clean.x_train[clean.y_train == 1][..., 0]
    assert all(len(np.unique(np.round(s, 5))) == 2 for s in square)    # two levels, nothing else


def test_unknown_task_and_bad_sizes():
    with pytest.raises(ValueError, match="task must be one of"):
        tasks.load("mnist")
    with pytest.raises(ValueError, match="n_train must be a positive integer, got 0"):
        tasks.adding(n_train=0)
    with pytest.raises(ValueError, match="fewer than window"):
        tasks.mackey_glass(n_points=50, window=20)
    with pytest.raises(ValueError, match="min_len must not exceed max_len"):
        tasks.waveforms(min_len=5, max_len=4)
