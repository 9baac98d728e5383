"""numgru.distributed on a LocalCluster of 2 worker processes: predict's chunks are numgru's bits, fit equals
numgru.fit, a killed worker and an interrupted run change nothing, bad inputs are named."""
import itertools
import os
import signal
import subprocess
import sys

import numba
import numpy as np
import pytest

import numgru
from numgru import speech, text

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
numgru_distributed = numgru.distributed


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture
def one_thread():
    """numgru in this process at the workers' Numba thread count (1), for bit-for-bit comparisons."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


def _data(n=40, steps=6, features=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, steps, features)).astype(dtype)
    lengths = rng.integers(1, steps + 1, n)
    return x, lengths


def _max_relative_difference(a, b):
    return max(float(np.abs(a[k] - b[k]).max() / np.abs(b[k]).max()) for k in b)


# ------------------------------------------------------------------------------------------------- predict

def _chunks_of(array, sizes, axis=0):
    bounds = np.cumsum((0,) + tuple(sizes))
    return [np.take(array, np.arange(a, b), axis=axis) for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("output", ["last", "all"])
def test_predict_chunks_are_numgrus_bits(client, one_thread, output):
    model = numgru.GRUModel(3, 8, 2, num_layers=2, output=output, bidirectional=True, seed=0)
    x, lengths = _data(n=11, dtype=np.float32)
    sizes = (4, 5, 2)
    result = numgru_distributed.predict(model, da.from_array(x, chunks=(sizes, -1, -1)), lengths, client=client)
    assert isinstance(result, da.Array) and result.chunks[0] == sizes
    computed = result.compute()
    model.eval()
    with numgru.no_grad():
        for got, xc, lc in zip(_chunks_of(computed, sizes), _chunks_of(x, sizes), _chunks_of(lengths, sizes)):
            np.testing.assert_array_equal(got, model(xc, lengths=lc))
    assert model.training is False            # as it was left above: predict restores the model's mode


def test_predict_gru_alone_returns_out_and_hn(client, one_thread):
    gru = numgru.GRU(3, 5, num_layers=2, bidirectional=True, seed=1)      # time-major: (T, B, I)
    x, lengths = _data(n=9, dtype=np.float32)
    x = x.transpose(1, 0, 2).copy()
    sizes = (3, 6)
    X = da.from_array(x, chunks=(-1, sizes, -1))
    L = da.from_array(lengths, chunks=(sizes,))
    out, hn = numgru_distributed.predict(gru, X, L, client=client)
    assert out.chunks[1] == sizes and hn.chunks[1] == sizes
    out, hn = out.compute(), hn.compute()
    with numgru.no_grad():
        for k, (xc, lc) in enumerate(zip(_chunks_of(x, sizes, 1), _chunks_of(lengths, sizes))):
            want_out, want_hn = gru(xc, lengths=lc)
            np.testing.assert_array_equal(_chunks_of(out, sizes, 1)[k], want_out)
            np.testing.assert_array_equal(_chunks_of(hn, sizes, 1)[k], want_hn)


def test_predict_speech_and_text_models(client, one_thread):
    front = speech.front_end(kind="mfcc", n_mfcc=4)
    ctc_model = speech.CTCModel(front, ["a", "b"], hidden_size=5, num_layers=1, dropout=0.0, seed=2)
    x, lengths = _data(n=7, features=ctc_model.input_size, dtype=np.float32)
    got = numgru_distributed.predict(ctc_model, da.from_array(x, chunks=(4, -1, -1)), lengths, client=client)
    ctc_model.eval()
    with numgru.no_grad():
        np.testing.assert_array_equal(got.compute()[:4], ctc_model(x[:4], lengths[:4]))
        np.testing.assert_array_equal(got.compute()[4:], ctc_model(x[4:], lengths[4:]))

    vocabulary = text.Vocabulary([f"w{i}" for i in range(10)])
    classifier = numgru.TextClassifierModel(vocabulary, 3, embedding_dim=4, hidden_size=5, seed=3)
    ids = np.random.default_rng(4).integers(0, len(vocabulary), (6, 5))
    got = numgru_distributed.predict(classifier, da.from_array(ids, chunks=(3, -1)), np.full(6, 5), client=client)
    classifier.eval()
    with numgru.no_grad():
        np.testing.assert_array_equal(got.compute(), np.concatenate([classifier(ids[:3]), classifier(ids[3:])]))


# ----------------------------------------------------------------------------------------------------- fit

FIT = {"loss": "mse", "lr": 1e-2, "epochs": 3, "batch_size": 8, "seed": 5, "clip_norm": 1.0, "progress": False}


def _regression(output="last"):
    x, lengths = _data(n=44)
    target_shape = (44, 1) if output == "last" else (44, 6, 1)
    y = np.random.default_rng(1).standard_normal(target_shape)
    return x, y, lengths


def _model(output="last"):
    return numgru.GRUModel(3, 6, 1, output=output, dtype="float64", seed=7)


@pytest.mark.parametrize("output", ["last", "all"])      # "all": the parts weighted by their valid steps
def test_fit_equals_numgru_fit(client, output):
    x, y, lengths = _regression(output)
    alone, spread = _model(output), _model(output)
    want = numgru.fit(alone, x, y, lengths=lengths, **FIT)
    got = numgru_distributed.fit(spread, x, y, lengths=lengths, client=client, **FIT)
    difference = _max_relative_difference(spread.state_dict(), alone.state_dict())
    print(f"max relative weight difference against numgru.fit ({output}): {difference:.3g}")
    assert difference <= 1e-12
    assert got.epochs == want.epochs == [1, 2, 3]
    np.testing.assert_allclose(got.loss, want.loss, rtol=1e-12)
    assert len(got.steps) == 3 * 6 and got.gradient_bytes == sum(g.nbytes for g in alone.grads.values())


def test_fit_on_dask_arrays_equals_numgru_fit(client):
    """X, y and lengths as dask arrays (their rows computed on the cluster, never gathered here)."""
    x, y, lengths = _regression()
    alone, spread = _model(), _model()
    numgru.fit(alone, x, y, lengths=lengths, **FIT)
    numgru_distributed.fit(spread, da.from_array(x, chunks=(10, -1, -1)), da.from_array(y, chunks=(10, -1)),
                           lengths=da.from_array(lengths, chunks=10), client=client, **FIT)
    assert _max_relative_difference(spread.state_dict(), alone.state_dict()) <= 1e-12


def test_fit_survives_a_killed_worker(client):
    x, y, lengths = _regression()
    undisturbed = _model()
    numgru_distributed.fit(undisturbed, x, y, lengths=lengths, client=client, **FIT)
    pids = client.run(os.getpid)
    victim = min(pids)

    def kill(epoch, batch):
        if (epoch, batch) == (2, 2):
            os.kill(pids[victim], signal.SIGKILL)          # as the OOM killer would; its nanny starts a new one

    disturbed = _model()
    history = numgru_distributed.fit(disturbed, x, y, lengths=lengths, client=client, on_batch=kill, **FIT)
    client.wait_for_workers(2, timeout=60)
    assert victim not in client.scheduler_info()["workers"]           # the worker was really replaced
    assert len(history.steps) == 3 * 6                                  # every batch stepped once
    difference = _max_relative_difference(disturbed.state_dict(), undisturbed.state_dict())
    print(f"max relative weight difference, killed worker against undisturbed: {difference:.3g}")
    assert difference <= 1e-12


class Interrupted(Exception):
    pass


def test_resume_continues_to_the_same_weights(client, tmp_path):
    x, y, lengths = _regression()
    uninterrupted = _model()
    numgru_distributed.fit(uninterrupted, x, y, lengths=lengths, client=client, **FIT)

    def interrupt(epoch, batch):
        if (epoch, batch) == (3, 1):
            raise Interrupted

    path = tmp_path / "run.ckpt.npz"
    with pytest.raises(Interrupted):
        numgru_distributed.fit(_model(), x, y, lengths=lengths, client=client, checkpoint=path, on_batch=interrupt,
                               **FIT)
    resumed = _model()
    history = numgru_distributed.fit(resumed, x, y, lengths=lengths, client=client, resume=path, **FIT)
    assert history.epochs == [1, 2, 3] and len(history.steps) == 3 * 6
    difference = _max_relative_difference(resumed.state_dict(), uninterrupted.state_dict())
    print(f"max relative weight difference, resumed against uninterrupted: {difference:.3g}")
    assert difference <= 1e-12
    with pytest.raises(ValueError, match="resume: .* batches of 8; this run has N=44, batch_size=4"):
        numgru_distributed.fit(_model(), x, y, lengths=lengths, client=client, resume=path, **dict(FIT, batch_size=4))


# ------------------------------------------------------------------------------------------------ bad input

def test_bad_inputs_name_the_argument(client):
    model = numgru.GRUModel(3, 4, 1, seed=0)
    x, lengths = _data(n=8, dtype=np.float32)
    with pytest.raises(TypeError, match="X must be a dask.array.Array"):
        numgru_distributed.predict(model, x, client=client)
    with pytest.raises(ValueError, match=r"X must be chunked along its batch axis \(axis 0\) only"):
        numgru_distributed.predict(model, da.from_array(x, chunks=(4, 3, -1)), client=client)
    with pytest.raises(ValueError, match="lengths must be chunked as X's batch axis"):
        numgru_distributed.predict(model, da.from_array(x, chunks=(4, -1, -1)), da.from_array(lengths, chunks=5),
                                   client=client)
    with pytest.raises(ValueError, match=r"lengths must have one entry per sequence, shape \(8,\)"):
        numgru_distributed.predict(model, da.from_array(x, chunks=(4, -1, -1)), lengths[:5], client=client)
    closed = distributed.Client(client.scheduler.address)
    closed.close()
    with pytest.raises(ValueError, match="client is closed"):
        numgru_distributed.predict(model, da.from_array(x, chunks=(4, -1, -1)), client=closed)
    with pytest.raises(ValueError, match="client is closed"):
        numgru_distributed.fit(model, x, np.zeros((8, 1), np.float32), client=closed, progress=False)


def test_import_numgru_stays_light_and_names_the_extra():
    script = ("import sys, numgru; assert 'dask' not in sys.modules and 'distributed' not in sys.modules; "
              "numgru.distributed; assert 'distributed' in sys.modules; "
              "del sys.modules['numgru.distributed'], numgru.distributed; sys.modules['dask'] = None\n"
              "try:\n    numgru.distributed\nexcept ImportError as err:\n    print(err)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert 'pip install "numgru[dask]"' in result.stdout
