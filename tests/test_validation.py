"""Bad input gets a clear error: the right exception type, and a message naming the argument."""
import numpy as np
import pytest

import numgru

T, B, I, H = 4, 3, 2, 5


@pytest.fixture
def gru():
    return numgru.GRU(I, H, num_layers=2, dtype="float64", seed=0)


def x_ok():
    return np.zeros((T, B, I))


@pytest.mark.parametrize("x, exc, name", [
    (np.zeros((T, B, I, 1)), ValueError, "x"),            # wrong rank
    (np.zeros(T), ValueError, "x"),
    (np.zeros((T, B, I + 1)), ValueError, "input_size"),   # wrong feature size
    (np.zeros((0, B, I)), ValueError, "x"),
    (np.zeros((T, B, I), np.int64), TypeError, "x"),       # never cast integers
    (np.zeros((T, B, I), np.complex128), TypeError, "x"),
    (np.zeros((T, B, I), np.float16), TypeError, "float16"),
    (np.zeros((T, B, I), bool), TypeError, "x"),
    (np.array([["a", "b"]], dtype=object), TypeError, "x"),
])
def test_bad_x(gru, x, exc, name):
    with pytest.raises(exc, match=name):
        gru(x)


@pytest.mark.parametrize("h0", [np.zeros((1, B, H)), np.zeros((2, B, H + 1)), np.zeros((2, B + 1, H)),
                                np.zeros((2, H))])
def test_bad_h0_shape(gru, h0):
    with pytest.raises(ValueError, match="h0"):
        gru(x_ok(), h0=h0)


@pytest.mark.parametrize("lengths, exc", [
    ([0, 1, 2], ValueError),        # below 1
    ([1, 2, T + 1], ValueError),    # above T
    ([1, 2], ValueError),           # wrong count
    ([1.5, 2, 3], TypeError),       # non-integer
    ([1.0, 2.0, 3.0], TypeError),   # float dtype, even whole-valued
    (np.zeros((3, 1), np.int64) + 1, ValueError),
])
def test_bad_lengths(gru, lengths, exc):
    with pytest.raises(exc, match="lengths"):
        gru(x_ok(), lengths=lengths)


def test_bad_dout_and_dhn(gru):
    gru(x_ok())
    with pytest.raises(ValueError, match="dout"):
        gru.backward(np.zeros((T, B, H + 1)))
    with pytest.raises(ValueError, match="dhn"):
        gru.backward(np.zeros((T, B, H)), np.zeros((1, B, H)))
    with pytest.raises(TypeError, match="dout"):
        gru.backward(np.zeros((T, B, H), np.int32))


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="forward"):
        numgru.GRU(I, H).backward(np.zeros((T, B, H)))
    with pytest.raises(RuntimeError, match="forward"):
        numgru.GRUCell(I, H).backward(np.zeros((B, H)))
    with pytest.raises(RuntimeError, match="training=True"):
        numgru.gru_backward(None, np.zeros((T, B, H)))


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(dtype="int32"), TypeError, "dtype"),
    (dict(dtype="float16"), TypeError, "dtype"),
    (dict(dtype="complex64"), TypeError, "dtype"),
    (dict(device="tpu"), ValueError, "device"),
    (dict(device=0), TypeError, "device"),
    (dict(num_layers=0), ValueError, "num_layers"),
    (dict(num_layers=1.5), TypeError, "num_layers"),
    (dict(dropout=1.0), ValueError, "dropout"),
    (dict(dropout="x"), TypeError, "dropout"),
])
def test_bad_constructor_arguments(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        numgru.GRU(I, H, **kwargs)


@pytest.mark.parametrize("size", [0, -1])
def test_bad_sizes(size):
    with pytest.raises(ValueError, match="hidden_size"):
        numgru.GRU(I, size)
    with pytest.raises(ValueError, match="input_size"):
        numgru.GRUCell(size, H)


def test_cuda_without_a_gpu_gives_clear_error():
    from numgru import devices
    if devices._cuda_probe()[1]:
        pytest.skip("CUDA works here")
    with pytest.raises(RuntimeError, match="cuda"):
        numgru.GRU(I, H, device="cuda")
    assert numgru.GRU(I, H, device="auto").device == "cpu"


def test_dropout_with_one_layer_warns():
    with pytest.warns(UserWarning, match="dropout"):
        numgru.GRU(I, H, dropout=0.5)


def test_check_finite(gru):
    x = x_ok()
    x[1, 1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        gru(x, check_finite=True)
    h0 = np.zeros((2, B, H))
    h0[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="h0"):
        gru(x_ok(), h0=h0, check_finite=True)


def test_load_state_dict_rejections(gru):
    sd = gru.state_dict()
    missing = dict(sd)
    missing.pop("bias_hh_l1")
    with pytest.raises(ValueError, match="bias_hh_l1"):
        gru.load_state_dict(missing)
    with pytest.raises(ValueError, match="weight_xx"):
        gru.load_state_dict({**sd, "weight_xx": np.zeros(1)})
    with pytest.raises(ValueError, match="weight_hh_l0"):
        gru.load_state_dict({**sd, "weight_hh_l0": np.zeros((3 * H, H + 1))})
    with pytest.raises(TypeError, match="weight_hh_l0"):
        gru.load_state_dict({**sd, "weight_hh_l0": np.zeros((3 * H, H), np.int64)})
    with pytest.raises(TypeError, match="state_dict"):
        gru.load_state_dict([1, 2])
    np.testing.assert_array_equal(gru.state_dict()["weight_hh_l0"], sd["weight_hh_l0"])   # nothing loaded


def test_cell_bad_input():
    cell = numgru.GRUCell(I, H, dtype="float64")
    with pytest.raises(ValueError, match="x"):
        cell(np.zeros((1, B, I)))
    with pytest.raises(ValueError, match="input_size"):
        cell(np.zeros((B, I + 1)))
    with pytest.raises(ValueError, match="h"):
        cell(np.zeros((B, I)), np.zeros((B + 1, H)))
    cell(np.zeros((B, I)))
    with pytest.raises(ValueError, match="dh_next"):
        cell.backward(np.zeros((B, H + 1)))


def test_functional_bad_input():
    w = (np.zeros((3 * H, I)), np.zeros((3 * H, H)), None, None)
    with pytest.raises(TypeError, match="weights"):
        numgru.gru_forward(x_ok(), w[:2])
    with pytest.raises(ValueError, match="w_hh"):
        numgru.gru_forward(x_ok(), (w[0], np.zeros((3 * H, H + 1)), None, None))
    with pytest.raises(ValueError, match="w_ih"):
        numgru.gru_forward(x_ok(), (np.zeros((3 * H + 1, I)), w[1], None, None))
    with pytest.raises(ValueError, match="b_ih"):
        numgru.gru_forward(x_ok(), (w[0], w[1], np.zeros(3 * H), None))
    with pytest.raises(ValueError, match="x"):
        numgru.gru_forward(np.zeros((T, B, I + 1)), w)
    with pytest.raises(ValueError, match="h0"):
        numgru.gru_forward(x_ok(), w, np.zeros((B, H + 1)))
    _, _, cache = numgru.gru_forward(x_ok(), w, training=True)
    with pytest.raises(ValueError, match="dout"):
        numgru.gru_backward(cache, np.zeros((T, B, H + 1)))
    with pytest.raises(TypeError, match="cache"):
        numgru.gru_backward({"x": 1}, np.zeros((T, B, H)))
