"""Weight exchange with PyTorch and Keras (numgru.interop).

torch: conversions both ways copy every parameter bit for bit, and the converted
models compute torch's numbers. Keras: the yardstick is ``keras_gru_layer`` below,
a slow NumPy transcription of Keras's GRU in Keras's own layout (kernel (I, 3H),
gates z, r, h side by side), written independently of numgru; no TensorFlow needed.
"""
import sys

import numpy as np
import pytest

import numgru
import numgru.config
from numgru.interop import from_keras, from_torch, to_keras, to_torch
from reference import rel_err, sigmoid

TOL = {"float64": 1e-10, "float32": 1e-5}
T, B, I, H = 5, 3, 4, 6


DEFAULT_PARALLEL_MIN_REGION_WORK = numgru.config.PARALLEL_MIN_REGION_WORK   # read before conftest lowers it


@pytest.fixture(autouse=True)
def _serial_cpu_kernels(monkeypatch):
    """Conversions are tested here, not kernels: tiny shapes take the serial build, as they do
    outside the tests (it compiles in about half the time of the parallel one)."""
    monkeypatch.setattr(numgru.config, "PARALLEL_MIN_REGION_WORK", DEFAULT_PARALLEL_MIN_REGION_WORK)


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ---------------------------------------------------------------- PyTorch

TORCH_CONFIGS = [  # layers, bidirectional, bias, batch_first
    (1, False, True, False), (2, False, False, True), (1, True, True, True), (2, True, True, False)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layers,bidirectional,bias,batch_first", TORCH_CONFIGS)
def test_from_torch_gru_copies_config_and_weights_and_computes_torchs_numbers(
        torch, dtype, layers, bidirectional, bias, batch_first):
    torch.manual_seed(layers + 2 * bidirectional)
    module = torch.nn.GRU(I, H, num_layers=layers, bias=bias, batch_first=batch_first,
                          dropout=0.25 if layers > 1 else 0.0, bidirectional=bidirectional,
                          dtype=getattr(torch, dtype)).eval()
    gru = from_torch(module)

    assert isinstance(gru, numgru.GRU) and gru.device == "cpu" and gru.reset_after and not gru.training
    assert (gru.input_size, gru.hidden_size, gru.num_layers, gru.bias, gru.batch_first, gru.dropout,
            gru.bidirectional, gru.dtype) == (I, H, layers, bias, batch_first, module.dropout, bidirectional,
                                              np.dtype(dtype))
    torch_state = module.state_dict()
    assert set(gru.state_dict()) == set(torch_state)
    for name, value in gru.state_dict().items():
        assert same_bits(value, torch_state[name].numpy()), name

    D = 2 if bidirectional else 1
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
    h0 = rng.standard_normal((layers * D, B, H)).astype(dtype)
    out, hn = gru(x, h0)
    with torch.no_grad():
        torch_out, torch_hn = module(torch.from_numpy(x), torch.from_numpy(h0))
    assert rel_err(out, torch_out.numpy()) < TOL[dtype]
    assert rel_err(hn, torch_hn.numpy()) < TOL[dtype]

    back = to_torch(gru)
    assert type(back) is torch.nn.GRU and not back.training
    assert (back.input_size, back.hidden_size, back.num_layers, back.bias, back.batch_first, back.dropout,
            back.bidirectional) == (I, H, layers, bias, batch_first, module.dropout, bidirectional)
    assert set(back.state_dict()) == set(torch_state)
    for name, value in back.state_dict().items():
        assert same_bits(value.numpy(), torch_state[name].numpy()), name


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layers,bidirectional,bias,batch_first", TORCH_CONFIGS)
def test_to_torch_computes_numgrus_numbers_and_comes_back_exactly(torch, dtype, layers, bidirectional, bias,
                                                                  batch_first):
    gru = numgru.GRU(I, H, num_layers=layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional,
                     dtype=dtype, device="cpu", seed=3)
    module = to_torch(gru)
    assert module.training and module.weight_ih_l0.dtype == getattr(torch, dtype)
    x = np.random.default_rng(1).standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
    out, hn = gru(x)
    with torch.no_grad():
        torch_out, torch_hn = module(torch.from_numpy(x))
    assert rel_err(torch_out.numpy(), out) < TOL[dtype]
    assert rel_err(torch_hn.numpy(), hn) < TOL[dtype]

    again = from_torch(module)
    assert again.training
    for name, value in gru.state_dict().items():
        assert same_bits(again.state_dict()[name], value), name


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("bias", [True, False])
def test_gru_cell_both_ways(torch, dtype, bias):
    torch.manual_seed(4)
    module = torch.nn.GRUCell(I, H, bias=bias, dtype=getattr(torch, dtype))
    cell = from_torch(module)
    assert isinstance(cell, numgru.GRUCell) and cell.training
    assert (cell.input_size, cell.hidden_size, cell.bias, cell.reset_after, cell.dtype) == (I, H, bias, True,
                                                                                           np.dtype(dtype))
    rng = np.random.default_rng(2)
    x, h = rng.standard_normal((B, I)).astype(dtype), rng.standard_normal((B, H)).astype(dtype)
    with torch.no_grad():
        torch_h = module(torch.from_numpy(x), torch.from_numpy(h)).numpy()
    assert rel_err(cell(x, h), torch_h) < TOL[dtype]

    back = to_torch(cell.eval())
    assert type(back) is torch.nn.GRUCell and not back.training and back.bias == bias
    torch_state = module.state_dict()
    assert set(back.state_dict()) == set(torch_state)
    for name, value in back.state_dict().items():
        assert same_bits(value.numpy(), torch_state[name].numpy()), name


def test_torch_conversions_copy_and_leave_the_global_generator_alone(torch):
    module = torch.nn.GRU(I, H)
    gru = from_torch(module)
    with torch.no_grad():
        module.weight_hh_l0.zero_()
    assert np.abs(gru.parameters()["weight_hh_l0"]).max() > 0

    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    back = to_torch(gru)
    assert torch.equal(torch.rand(3), expected)     # no initialisation drawn from the user's generator
    gru.parameters()["weight_ih_l0"][...] = 0
    assert back.weight_ih_l0.abs().max() > 0


def test_from_torch_refuses_what_it_cannot_convert(torch):
    with pytest.raises(TypeError, match=r"module must be a torch.nn.GRU, torch.nn.GRUCell or torch.nn.Embedding, got LSTM"):
        from_torch(torch.nn.LSTM(I, H))
    with pytest.raises(TypeError, match=r"module must be a torch.nn.GRU, torch.nn.GRUCell or torch.nn.Embedding, got ndarray"):
        from_torch(np.zeros((3 * H, I)))
    for dtype in (torch.float16, torch.bfloat16):
        with pytest.raises(TypeError, match=rf"module has parameters of dtype {dtype}.*float32 or float64"):
            from_torch(torch.nn.GRU(I, H, dtype=dtype))


def test_to_torch_refuses_what_torch_cannot_compute(torch):
    for model in (numgru.GRU(I, H, reset_after=False, device="cpu"),
                  numgru.GRUCell(I, H, reset_after=False, device="cpu")):
        with pytest.raises(ValueError, match=r"gru has reset_after=False.*no torch equivalent"):
            to_torch(model)
    with pytest.raises(TypeError, match=r"gru must be a numgru.GRU, numgru.GRUCell or numgru.Embedding, got Linear"):
        to_torch(numgru.Linear(I, H))


def test_torch_is_optional(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)       # `import torch` now fails as if not installed
    with pytest.raises(ImportError, match=r"from_torch needs PyTorch.*pip install torch"):
        from_torch(object())
    with pytest.raises(ImportError, match=r"to_torch needs PyTorch.*pip install torch"):
        to_torch(numgru.GRU(I, H, device="cpu"))


# ---------------------------------------------------------------- Keras

def keras_gru_layer(x, kernel, recurrent_kernel, bias, reset_after, go_backwards=False):
    """Keras's GRU(return_sequences=True, return_state=True) on x (B, T, I) -> (outputs (B, T, H), final h).

    Keras's layout: kernel (I, 3H), recurrent_kernel (H, 3H), the gates z, r, h
    side by side; bias (2, 3H) (input row, recurrent row) when reset_after,
    (3H,) otherwise, None for use_bias=False. go_backwards reads x from its last
    step to its first and returns the outputs in that (reversed) order.
    """
    units = recurrent_kernel.shape[0]
    if bias is None:
        bias = np.zeros((2, 3 * units) if reset_after else 3 * units)
    h = np.zeros((x.shape[0], units))
    outputs = []
    steps = range(x.shape[1])
    for t in (reversed(steps) if go_backwards else steps):
        input_bias = bias[0] if reset_after else bias
        x_z, x_r, x_h = np.split(x[:, t] @ kernel + input_bias, 3, axis=1)
        if reset_after:
            rec_z, rec_r, rec_h = np.split(h @ recurrent_kernel + bias[1], 3, axis=1)
            z, r = sigmoid(x_z + rec_z), sigmoid(x_r + rec_r)
            hh = np.tanh(x_h + r * rec_h)
        else:
            rec_z, rec_r = np.split(h @ recurrent_kernel[:, :2 * units], 2, axis=1)
            z, r = sigmoid(x_z + rec_z), sigmoid(x_r + rec_r)
            hh = np.tanh(x_h + (r * h) @ recurrent_kernel[:, 2 * units:])
        h = z * h + (1 - z) * hh
        outputs.append(h)
    return np.stack(outputs, axis=1), h


def keras_stack(x, layers, reset_after, bidirectional):
    """Keras layers one after the other, each GRU(return_sequences=True) or Bidirectional of one
    (merge_mode="concat": the backward layer's outputs flipped back to input order) -> (output, states)."""
    states = []
    for arrays in layers:
        per_direction = len(arrays) // (2 if bidirectional else 1)
        directions = [arrays[:per_direction], arrays[per_direction:]][:2 if bidirectional else 1]
        outputs = []
        for d, weights in enumerate(directions):
            kernel, recurrent_kernel, bias = list(weights) + [None] * (3 - per_direction)
            y, h = keras_gru_layer(x, kernel, recurrent_kernel, bias, reset_after, go_backwards=d == 1)
            outputs.append(y[:, ::-1] if d == 1 else y)
            states.append(h)
        x = np.concatenate(outputs, axis=-1)
    return x, np.stack(states)


def keras_weights(rng, layers=1, bidirectional=False, reset_after=True, use_bias=True, dtype="float64"):
    """Random weights shaped as Keras's get_weights(): one list per layer, forward then backward arrays."""
    D = 2 if bidirectional else 1
    bias_shape = (2, 3 * H) if reset_after else (3 * H,)
    stack = []
    for k in range(layers):
        arrays = []
        for _ in range(D):
            shapes = [(I if k == 0 else D * H, 3 * H), (H, 3 * H)] + [bias_shape] * use_bias
            arrays += [rng.uniform(-0.6, 0.6, shape).astype(dtype) for shape in shapes]
        stack.append(arrays)
    return stack


def as_given(stack):
    """One layer is given as its own list (as layer.get_weights() returns it), a stack as a list of lists."""
    return stack[0] if len(stack) == 1 else stack


KERAS_CONFIGS = [  # layers, bidirectional, use_bias
    (1, False, True), (1, False, False), (2, False, True), (1, True, True), (2, True, True), (2, True, False)]


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("layers,bidirectional,use_bias", KERAS_CONFIGS)
def test_from_keras_computes_keras_numbers(reset_after, layers, bidirectional, use_bias):
    rng = np.random.default_rng(layers * 10 + bidirectional)
    stack = keras_weights(rng, layers, bidirectional, reset_after, use_bias)
    gru = from_keras(as_given(stack), reset_after=reset_after, bidirectional=bidirectional)

    assert isinstance(gru, numgru.GRU) and gru.device == "cpu"
    assert (gru.input_size, gru.hidden_size, gru.num_layers, gru.bias, gru.batch_first, gru.bidirectional,
            gru.reset_after, gru.dtype) == (I, H, layers, use_bias, True, bidirectional, reset_after,
                                            np.dtype("float64"))
    x = rng.standard_normal((B, T, I))
    out, hn = gru(x)
    keras_out, keras_states = keras_stack(x, stack, reset_after, bidirectional)
    assert rel_err(out, keras_out) < 1e-10
    assert rel_err(hn, keras_states) < 1e-10


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("layers,bidirectional,use_bias", [(1, False, True), (1, False, False), (2, True, True)])
def test_keras_numgru_keras_is_exact(dtype, reset_after, layers, bidirectional, use_bias):
    stack = keras_weights(np.random.default_rng(5), layers, bidirectional, reset_after, use_bias, dtype)
    gru = from_keras(as_given(stack), reset_after=reset_after, bidirectional=bidirectional)
    assert gru.dtype == np.dtype(dtype)
    back = to_keras(gru)
    back = [back] if layers == 1 else back
    assert [len(arrays) for arrays in back] == [len(arrays) for arrays in stack]
    for k, (got, given) in enumerate(zip(back, stack)):
        for i, (a, b) in enumerate(zip(got, given)):
            assert same_bits(a, b), (k, i)
            assert a.flags.c_contiguous, (k, i)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("layers,bidirectional,bias", [(1, False, True), (2, True, True), (2, False, False)])
def test_numgru_keras_numgru_computes_the_same(dtype, reset_after, layers, bidirectional, bias):
    gru = numgru.GRU(I, H, num_layers=layers, bias=bias, batch_first=True, bidirectional=bidirectional,
                     reset_after=reset_after, dtype=dtype, device="cpu", seed=11)
    exported = to_keras(gru)
    x = np.random.default_rng(6).standard_normal((B, T, I)).astype(dtype)
    out, hn = gru(x)
    # the exported arrays compute the model's function under Keras's maths (reset_after=False: folded biases)
    keras_out, keras_states = keras_stack(x, [exported] if layers == 1 else exported, reset_after, bidirectional)
    assert rel_err(keras_out, out) < TOL[dtype]
    assert rel_err(keras_states, hn) < TOL[dtype]

    again = from_keras(exported, reset_after=reset_after, bidirectional=bidirectional)
    assert again.dtype == gru.dtype
    again_out, again_hn = again(x)
    assert rel_err(again_out, out) < TOL[dtype] and rel_err(again_hn, hn) < TOL[dtype]
    original, restored = gru.state_dict(), again.state_dict()
    assert set(original) == set(restored)
    for name, value in original.items():
        if reset_after or "bias" not in name:
            assert same_bits(restored[name], value), name
        elif name.startswith("bias_ih"):         # Keras's single bias per gate holds the sum
            assert same_bits(restored[name], value + original[name.replace("_ih", "_hh")]), name
        else:
            assert not restored[name].any(), name


def test_from_keras_takes_dtype_and_device():
    stack = keras_weights(np.random.default_rng(7))
    assert from_keras(stack[0]).dtype == np.float64
    assert from_keras(stack[0], dtype="float32").dtype == np.float32
    assert from_keras([a.astype(np.float32) for a in stack[0]]).dtype == np.float32
    assert from_keras(stack[0], device="cpu").device == "cpu"


def test_keras_conversions_copy_and_leave_inputs_alone():
    weights = keras_weights(np.random.default_rng(8))[0]
    for array in weights:
        array.setflags(write=False)
    before = [array.copy() for array in weights]
    gru = from_keras(weights)
    for array, copy in zip(weights, before):
        assert same_bits(array, copy)
    for param in gru.parameters().values():
        assert not any(np.shares_memory(param, array) for array in weights)
    exported = to_keras(gru)
    for param in gru.parameters().values():
        assert not any(np.shares_memory(param, array) for array in exported)


def _kernel_bias(reset_after=True):
    kernel, recurrent_kernel, bias = keras_weights(np.random.default_rng(9), reset_after=reset_after)[0]
    return kernel, recurrent_kernel, bias


K, RK, BIAS = _kernel_bias()
BIAS_FLAT = _kernel_bias(reset_after=False)[2]
LAYER1 = keras_weights(np.random.default_rng(10), layers=2)[1]
BI = keras_weights(np.random.default_rng(11), bidirectional=True)[0]

KERAS_ERRORS = [  # weights, keyword arguments, error, message
    ([K.T, RK, BIAS], {}, ValueError,
     r"weights\[0\] \(kernel\) must have shape \(input_size, 18\).*got \(18, 4\).*transposed"),
    ([K, RK.T, BIAS], {}, ValueError,
     r"weights\[1\] \(recurrent_kernel\) must have shape \(6, 18\).*got \(18, 6\).*transposed"),
    ([K, RK, BIAS_FLAT], {}, ValueError,
     r"weights\[2\] \(bias\) must have shape \(2, 18\).*got \(18,\).*pass reset_after=False"),
    ([K, RK, BIAS], dict(reset_after=False), ValueError,
     r"weights\[2\] \(bias\) must have shape \(18,\).*got \(2, 18\).*pass reset_after=True"),
    ([K, RK, BIAS.T], {}, ValueError, r"weights\[2\] \(bias\) must have shape \(2, 18\).*got \(18, 2\)"),
    ([K, RK, BIAS[:, :17]], {}, ValueError, r"weights\[2\] \(bias\) must have shape \(2, 18\).*got \(2, 17\)"),
    ([K[:, :16], RK[:5, :16], BIAS], {}, ValueError,            # 16 columns: not three gates
     r"weights\[1\] \(recurrent_kernel\) must have shape \(5, 15\).*gates z, r, h.*got \(5, 16\)"),
    ([K[:, :15], RK, BIAS], {}, ValueError,                     # the kernel's units disagree with H
     r"weights\[0\] \(kernel\) must have shape \(input_size, 18\).*got \(4, 15\)"),
    ([K, RK[0], BIAS], {}, ValueError,
     r"weights\[1\] \(recurrent_kernel\) must have shape \(units, 3\*units\).*got \(18,\)"),
    ([[K, RK, BIAS], [K, RK, BIAS]], {}, ValueError,            # layer 1 takes layer 0's H outputs
     r"weights\[1\]\[0\] \(layer 1 kernel\) must have shape \(6, 18\).*outputs of layer 0.*got \(4, 18\)"),
    ([[K, RK, BIAS], [LAYER1[0][:, :15], LAYER1[1][:5, :15], LAYER1[2][:, :15]]], {}, ValueError,
     r"weights\[1\]\[1\] \(layer 1 recurrent_kernel\) must have shape \(6, 18\).*got \(5, 15\)"),
    ([[K, RK, BIAS], LAYER1[:2]], {}, ValueError, r"weights\[1\] holds 2 arrays and weights\[0\] 3.*use_bias"),
    (BI[:3] + [K[:3], RK, BIAS], dict(bidirectional=True), ValueError,
     r"weights\[3\] \(backward kernel\) must have shape \(4, 18\).*got \(3, 18\)"),
    (BI[:3] + [K, RK, BIAS_FLAT], dict(bidirectional=True), ValueError,
     r"weights\[5\] \(backward bias\) must have shape \(2, 18\)"),
    ([K, RK, BIAS, BIAS], {}, ValueError, r"weights must hold 3 arrays \(kernel, recurrent_kernel, bias\) or 2"
                                          r".*got 4 arrays"),
    (BI, {}, ValueError, r"weights must hold 3 arrays.*got 6 arrays.*bidirectional=True"),
    ([K, RK, BIAS], dict(bidirectional=True), ValueError,
     r"weights must hold 6 arrays \(kernel, recurrent_kernel, bias, forward then backward\).*got 3"),
    ([[K, RK, BIAS, BIAS]], {}, ValueError, r"weights\[0\] must hold 3 arrays.*got 4"),
    ([K], {}, ValueError, r"weights must hold 3 arrays.*got 1"),
    ([], {}, ValueError, r"weights must hold a layer's arrays, got an empty list"),
    (K, {}, TypeError, r"weights must be a list of arrays .*got ndarray"),
    ([K.astype(np.int64), RK, BIAS], {}, TypeError, r"weights\[0\] \(kernel\) must be an array of float32"),
    ([K.astype(np.float16), RK, BIAS], {}, TypeError, r"weights\[0\] \(kernel\) has dtype float16"),
    ([K, RK, "bias"], {}, TypeError, r"weights\[2\] \(bias\) must be an array of float32"),
    ([K, RK, BIAS], dict(activation="relu"), ValueError, r"activation must be one of \('tanh',\), got 'relu'"),
    ([K, RK, BIAS], dict(recurrent_activation="hard_sigmoid"), ValueError,
     r"recurrent_activation must be one of \('sigmoid',\), got 'hard_sigmoid'"),
    ([K, RK, BIAS], dict(dtype="float16"), TypeError, r"dtype must be 'float32' or 'float64', got 'float16'"),
]


@pytest.mark.parametrize("weights,kwargs,error,message", KERAS_ERRORS)
def test_from_keras_errors_name_the_array_and_the_shapes(weights, kwargs, error, message):
    with pytest.raises(error, match=message):
        from_keras(weights, **kwargs)


def test_to_keras_refuses_anything_but_a_gru():
    with pytest.raises(TypeError, match=r"gru must be a numgru.GRU, got GRUCell"):
        to_keras(numgru.GRUCell(I, H, device="cpu"))
