"""numgru.no_grad: forwards inside keep no backward cache, give the same bits, and nest per thread."""
import threading

import numpy as np
import pytest

import numgru


def test_same_bits_and_no_backward(device):
    gru = numgru.GRU(4, 5, num_layers=2, bidirectional=True, dtype="float64", seed=0, device=device)
    x = np.random.default_rng(0).standard_normal((6, 3, 4))
    lengths = np.array([6, 2, 4])
    with numgru.no_grad():
        out, hn = gru(x, lengths=lengths)
    with pytest.raises(RuntimeError, match="no_grad"):
        gru.backward(out)
    expected_out, expected_hn = gru(x, lengths=lengths)
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(hn, expected_hn)
    gru.backward(expected_out)                      # grad mode is back after the block


def test_cell_linear_and_model_keep_nothing():
    x = np.random.default_rng(1).standard_normal((4, 3))
    cell, head = numgru.GRUCell(3, 5, dtype="float64", seed=0), numgru.Linear(3, 2, dtype="float64", seed=0)
    model = numgru.GRUModel(3, 5, 2, dtype="float64", seed=0)
    with numgru.no_grad():
        h, y, pred = cell(x), head(x), model(x[None])
    for module, grad in ((cell, h), (head, y), (model, pred)):
        with pytest.raises(RuntimeError, match="no_grad"):
            module.backward(np.ones_like(grad))
    np.testing.assert_array_equal(pred, model.predict(x[None]))


def test_nests_and_is_per_thread():
    seen = {}

    def other_thread():
        seen["other"] = numgru.grad_mode.grad_enabled()

    with numgru.no_grad():
        with numgru.no_grad():
            assert not numgru.grad_mode.grad_enabled()
        assert not numgru.grad_mode.grad_enabled()
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
    assert numgru.grad_mode.grad_enabled() and seen["other"]


def test_backward_after_no_grad_with_dropout_names_the_missing_forward():
    """Training mode, dropout between 2 layers, a forward under no_grad: no layer keeps a cache,
    and backward says a forward is needed (it used to fail on a half-kept cache)."""
    gru = numgru.GRU(4, 8, num_layers=2, dropout=0.5, seed=0)
    gru.train()
    with numgru.no_grad():
        gru(np.zeros((3, 2, 4), np.float32))
    with pytest.raises(RuntimeError, match="backward needs a forward first"):
        gru.backward(np.zeros((3, 2, 8), np.float32))
