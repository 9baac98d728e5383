"""ONNX export and import (numgru.onnx_io): exported graphs run in onnxruntime with numgru's numbers,
round trips are bit-exact, hand-built ONNX GRUs import with onnxruntime's numbers, and every
model numgru cannot represent is refused with an error naming the node, the attribute and the value."""
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import numgru  # noqa: E402
from numgru.onnx_io import export_onnx, import_onnx, import_onnx_operators  # noqa: E402
from reference import rel_err  # noqa: E402

I, H, T, B = 3, 4, 7, 5
LENGTHS = np.array([3, T, 1, 5, T - 1], np.int32)       # unsorted, with 1 and T


def make_gru(num_layers=1, bidirectional=False, reset_after=True, bias=True, batch_first=False,
             dtype="float32", seed=0):
    return numgru.GRU(I, H, num_layers=num_layers, bidirectional=bidirectional, reset_after=reset_after,
                      bias=bias, batch_first=batch_first, dtype=dtype, device="cpu", seed=seed)


def inputs_for(gru, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, I) if gru.batch_first else (T, B, I)).astype(gru.dtype)
    h0 = rng.standard_normal((gru.num_layers * gru.num_directions, B, H)).astype(gru.dtype)
    return x, h0


def run_ort(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


# (num_layers, bidirectional, reset_after, bias, batch_first)
CONFIGS = [
    (1, False, True, True, False),
    (1, True, False, True, True),
    (1, False, False, False, False),
    (2, True, True, False, False),
    (2, False, False, True, True),
    (3, True, False, True, False),
    (3, True, True, True, True),
]


@pytest.mark.parametrize("num_layers, bidirectional, reset_after, bias, batch_first", CONFIGS)
def test_export_runs_in_onnxruntime_with_numgrus_numbers(num_layers, bidirectional, reset_after, bias, batch_first):
    gru = make_gru(num_layers, bidirectional, reset_after, bias, batch_first)
    model = export_onnx(gru, initial_state=True, lengths=True)
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    D = gru.num_directions
    dims = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in inferred.graph.output}
    assert dims == {"out": ["B", "T", D * H] if batch_first else ["T", "B", D * H], "hn": [num_layers * D, "B", H]}

    x, h0 = inputs_for(gru)
    out, hn = run_ort(model, {"x": x, "h0": h0, "lengths": LENGTHS})
    expected_out, expected_hn = gru(x, h0=h0, lengths=LENGTHS)
    assert rel_err(out, expected_out) < 1e-5
    assert rel_err(hn, expected_hn) < 1e-5
    by_time = out.transpose(1, 0, 2) if batch_first else out
    padded = np.arange(T)[:, None] >= LENGTHS[None, :]
    assert np.all(by_time[padded] == 0)                  # onnxruntime zeroes past each length, as numgru


def test_default_export_is_gru_of_x_alone():
    gru = make_gru(2, bidirectional=True, seed=3)
    model = export_onnx(gru)
    assert [i.name for i in model.graph.input] == ["x"]
    x, _ = inputs_for(gru)
    out, hn = run_ort(model, {"x": x})
    expected_out, expected_hn = gru(x)
    assert rel_err(out, expected_out) < 1e-5 and rel_err(hn, expected_hn) < 1e-5


def test_symbolic_time_and_batch():
    gru = make_gru(2, batch_first=True, seed=4)
    session = ort.InferenceSession(export_onnx(gru, lengths=True).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    for steps, batch in [(1, 1), (11, 2)]:
        x = np.random.default_rng(steps).standard_normal((batch, steps, I)).astype(np.float32)
        lengths = np.full(batch, steps, np.int32)
        out, hn = session.run(None, {"x": x, "lengths": lengths})
        expected_out, expected_hn = gru(x)
        assert rel_err(out, expected_out) < 1e-5 and rel_err(hn, expected_hn) < 1e-5


@pytest.mark.parametrize("opset", [13, 14, 22])
def test_opsets(opset):
    gru = make_gru(2, bidirectional=True, reset_after=False, seed=5)
    model = export_onnx(gru, initial_state=True, opset=opset)
    assert model.opset_import[0].version == opset
    assert model.ir_version == helper.find_min_ir_version_for(list(model.opset_import))
    x, h0 = inputs_for(gru)
    out, hn = run_ort(model, {"x": x, "h0": h0})
    expected_out, expected_hn = gru(x, h0=h0)
    assert rel_err(out, expected_out) < 1e-5 and rel_err(hn, expected_hn) < 1e-5


@pytest.mark.parametrize("num_layers, bidirectional, reset_after, bias, batch_first", CONFIGS[1::2])
def test_float64_export_in_the_reference_evaluator(num_layers, bidirectional, reset_after, bias, batch_first):
    # onnx's ReferenceEvaluator ignores sequence_lens (onnx/reference/ops/op_gru.py), so no lengths here
    gru = make_gru(num_layers, bidirectional, reset_after, bias, batch_first, dtype="float64", seed=6)
    model = export_onnx(gru, initial_state=True)
    assert model.graph.initializer[-1].data_type == TensorProto.DOUBLE
    x, h0 = inputs_for(gru)
    out, hn = ReferenceEvaluator(model).run(None, {"x": x, "h0": h0})
    expected_out, expected_hn = gru(x, h0=h0)
    assert out.dtype == np.float64
    assert rel_err(out, expected_out) < 1e-10 and rel_err(hn, expected_hn) < 1e-10


def test_onnxruntime_refuses_float64_gru():
    """The documented difference: onnxruntime's GRU kernel is float32 only. If this starts to fail,
    onnxruntime has gained float64 and the float64 test can move to onnxruntime at 1e-10."""
    gru = make_gru(dtype="float64")
    x, _ = inputs_for(gru)
    with pytest.raises(Exception, match="does not support double"):
        run_ort(export_onnx(gru), {"x": x})


@pytest.mark.parametrize("num_layers, bidirectional, reset_after, bias, batch_first", CONFIGS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_bit_exact(num_layers, bidirectional, reset_after, bias, batch_first, dtype):
    gru = make_gru(num_layers, bidirectional, reset_after, bias, batch_first, dtype, seed=7)
    back = import_onnx(export_onnx(gru), device="cpu")
    assert repr(back) == repr(gru)
    original, imported = gru.state_dict(), back.state_dict()
    assert original.keys() == imported.keys()
    for name, value in original.items():
        assert imported[name].dtype == value.dtype and np.array_equal(imported[name], value), name


def test_save_and_import_from_path_and_bytes(tmp_path):
    gru = make_gru(2, bidirectional=True, batch_first=True, seed=8)
    path = tmp_path / "gru.onnx"
    model = export_onnx(gru, path)
    assert onnx.load(path) == model
    for source in (path, str(path), model.SerializeToString()):
        back = import_onnx(source, device="cpu")
        assert repr(back) == repr(gru)
        assert all(np.array_equal(back.state_dict()[k], v) for k, v in gru.state_dict().items())


def test_import_operators_of_an_exported_stack():
    gru = make_gru(2, bidirectional=True, batch_first=True, seed=9)
    layers = import_onnx_operators(export_onnx(gru), device="cpu")
    assert list(layers) == ["gru_l0", "gru_l1"]
    assert [layer.batch_first for layer in layers.values()] == [True, False]   # layer 1 is fed time-major
    params = gru.state_dict()
    for k, layer in enumerate(layers.values()):
        assert layer.num_layers == 1 and layer.bidirectional
        for name, value in layer.state_dict().items():
            assert np.array_equal(value, params[name.replace("_l0", f"_l{k}")]), name


# ------------------------------------------------------------------------ hand-built ONNX models

def onnx_gru_node(name, x, weights, with_bias=True, lengths="", h0="", outputs=None, **attributes):
    """A GRU node reading the tensors ``{weights}_W``, ``_R`` and ``_B`` (absent optional inputs are "")."""
    inputs = [x, f"{weights}_W", f"{weights}_R", f"{weights}_B" if with_bias else "", lengths, h0]
    while not inputs[-1]:
        inputs.pop()
    return helper.make_node("GRU", inputs, outputs or [f"{weights}_Y", f"{weights}_Yh"], name=name, **attributes)


def one_gru_model(W, R, B=None, *, lengths=False, initial_state=False, constants=False, **attributes):
    """A model with one GRU node reading x (T, B, I), written with onnx.helper in ONNX's own terms."""
    D, I_ = W.shape[0], W.shape[-1]
    H_ = R.shape[-1]
    arrays = {"g_W": W, "g_R": R} | ({} if B is None else {"g_B": B})
    element = helper.np_dtype_to_tensor_dtype(W.dtype)
    inputs = [helper.make_tensor_value_info("x", element, ["T", "B", I_])]
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["B"]))
    if initial_state:
        inputs.append(helper.make_tensor_value_info("h0", element, [D, "B", H_]))
    node = onnx_gru_node("g", "x", "g", B is not None, "lengths" if lengths else "", "h0" if initial_state else "",
                         **attributes)
    if constants:
        stored = [helper.make_node("Constant", [], [name], value=numpy_helper.from_array(a, name))
                  for name, a in arrays.items()]
        initializers = []
    else:
        stored, initializers = [], [numpy_helper.from_array(a, name) for name, a in arrays.items()]
    outputs = [helper.make_tensor_value_info("g_Y", element, ["T", D, "B", H_]),
               helper.make_tensor_value_info("g_Yh", element, [D, "B", H_])]
    graph = helper.make_graph(stored + [node], "hand_built", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def onnx_weights(D=1, hidden=H, inputs=I, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-0.6, 0.6, (D, 3 * hidden, inputs)).astype(dtype),
            rng.uniform(-0.6, 0.6, (D, 3 * hidden, hidden)).astype(dtype),
            rng.uniform(-0.6, 0.6, (D, 6 * hidden)).astype(dtype))


@pytest.mark.parametrize("direction, linear_before_reset, with_bias, constants", [
    ("forward", 0, True, False),
    ("bidirectional", 1, True, True),
    ("bidirectional", 0, False, False),
])
def test_import_hand_built_gru_matches_onnxruntime(direction, linear_before_reset, with_bias, constants):
    D = 2 if direction == "bidirectional" else 1
    W, R, B_ = onnx_weights(D, seed=D + linear_before_reset)
    # onnxruntime needs hidden_size; linear_before_reset absent is ONNX's default 0
    attributes = dict(direction=direction, activations=["Sigmoid", "Tanh"] * D, hidden_size=H)
    if linear_before_reset:
        attributes.update(linear_before_reset=1)
    model = one_gru_model(W, R, B_ if with_bias else None, lengths=True, initial_state=True, constants=constants,
                          **attributes)
    onnx.checker.check_model(model)
    rng = np.random.default_rng(10)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    h0 = rng.standard_normal((D, B, H)).astype(np.float32)
    Y, Yh = run_ort(model, {"x": x, "lengths": LENGTHS, "h0": h0})

    gru = import_onnx(model, device="cpu")
    assert (gru.num_layers, gru.bidirectional, gru.reset_after, gru.bias, gru.batch_first) == \
        (1, D == 2, bool(linear_before_reset), with_bias, False)
    out, hn = gru(x, h0=h0, lengths=LENGTHS)
    assert rel_err(out, Y.transpose(0, 2, 1, 3).reshape(T, B, D * H)) < 1e-5
    assert rel_err(hn, Yh) < 1e-5


def test_import_reads_gates_in_onnx_order():
    """Only the z rows of W set: numgru must put them in its z block (rows H:2H), nowhere else.
    The node has no hidden_size attribute: it is read from R."""
    W = np.zeros((1, 3 * H, I), np.float32)
    W[0, :H] = 1.0                          # ONNX's z block comes first
    R = np.zeros((1, 3 * H, H), np.float32)
    gru = import_onnx(one_gru_model(W, R), device="cpu")
    w_ih = gru.state_dict()["weight_ih_l0"]
    assert np.all(w_ih[H:2 * H] == 1) and np.all(w_ih[:H] == 0) and np.all(w_ih[2 * H:] == 0)


def test_import_batch_first_layout_attribute():
    """layout=1 (ONNX's batch-first, which onnxruntime does not run) imports as batch_first=True;
    onnx's ReferenceEvaluator gives the numbers."""
    model = one_gru_model(*onnx_weights(2, seed=14), direction="bidirectional", hidden_size=H, layout=1)
    model.graph.input[0].CopyFrom(helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", I]))
    x = np.random.default_rng(15).standard_normal((B, T, I)).astype(np.float32)
    Y, Yh = ReferenceEvaluator(model).run(None, {"x": x})      # (B, T, D, H), (B, D, H)
    gru = import_onnx(model, device="cpu")
    assert gru.batch_first
    out, hn = gru(x)
    assert rel_err(out, Y.reshape(B, T, 2 * H)) < 1e-5 and rel_err(hn, Yh.transpose(1, 0, 2)) < 1e-5
    assert not import_onnx(model, batch_first=False, device="cpu").batch_first     # an explicit choice wins


def test_import_operators_of_parallel_grus_and_refuse_them_as_a_chain():
    """Two GRUs reading the same x (not a chain): one single-layer GRU each, and import_onnx says why not."""
    (W1, R1, B1), (W2, R2, B2) = onnx_weights(1, seed=11), onnx_weights(2, seed=12)
    nodes = [onnx_gru_node("first", "x", "first", hidden_size=H),
             onnx_gru_node("", "x", "second", direction="bidirectional", linear_before_reset=1, hidden_size=H,
                           outputs=["Y2", ""])]
    initializers = [numpy_helper.from_array(a, n) for n, a in
                    {"first_W": W1, "first_R": R1, "first_B": B1, "second_W": W2, "second_R": R2,
                     "second_B": B2}.items()]
    outputs = [helper.make_tensor_value_info("first_Y", TensorProto.FLOAT, ["T", 1, "B", H]),
               helper.make_tensor_value_info("Y2", TensorProto.FLOAT, ["T", 2, "B", H])]
    graph = helper.make_graph(nodes, "parallel", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "B", I])],
                              outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    x = np.random.default_rng(13).standard_normal((T, B, I)).astype(np.float32)
    Y1, Y2 = run_ort(model, {"x": x})

    grus = import_onnx_operators(model, device="cpu")
    assert list(grus) == ["first", "GRU_1"]
    for gru, Y in zip(grus.values(), (Y1, Y2)):
        D = gru.num_directions
        assert rel_err(gru(x)[0], Y.transpose(0, 2, 1, 3).reshape(T, B, D * H)) < 1e-5
    with pytest.raises(ValueError, match="GRU node 'GRU_1' is not fed by the Y output of GRU node 'first'.*"
                                         "the graph input 'x'"):
        import_onnx(model)


# ------------------------------------------------------------------------ what cannot be represented

def one_gru(**attributes):
    return one_gru_model(*onnx_weights(), **attributes)


@pytest.mark.parametrize("attributes, message", [
    (dict(direction="reverse"), "GRU node 'g' has direction='reverse'.*no reverse-only mode"),
    (dict(activations=["Sigmoid", "Relu"]), r"GRU node 'g' has activations=\['Sigmoid', 'Relu'\]"),
    (dict(activations=["Sigmoid", "Tanh", "Sigmoid", "Tanh"]), r"activations=.*computes \['Sigmoid', 'Tanh'\]"),
    (dict(activation_alpha=[0.5]), r"GRU node 'g' has attribute activation_alpha=\[0.5"),
    (dict(activation_beta=[0.5]), r"GRU node 'g' has attribute activation_beta=\[0.5"),
    (dict(clip=3.0), "GRU node 'g' has attribute clip=3.0.*no cell clipping"),
    (dict(hidden_size=5), r"GRU node 'g': W input 'g_W' has shape \(1, 12, 3\), expected \(1, 15, 3\).*"
                          "hidden_size=5 from the hidden_size attribute"),
    (dict(hidden_size=0), "GRU node 'g' attribute hidden_size must be a positive integer, got 0"),
])
def test_refuses_attributes_numgru_cannot_represent(attributes, message):
    with pytest.raises(ValueError, match=message):
        import_onnx(one_gru(**attributes))
    with pytest.raises(ValueError, match=message):
        import_onnx_operators(one_gru(**attributes))


@pytest.mark.parametrize("role, shape, hidden_size, message", [
    ("W", (3 * H, I), H, r"W input 'g_W' has shape \(12, 3\), expected \(1, 12, 3\) = \(num_directions, "
                         r"3\*hidden_size, input_size\) with hidden_size=4 from the hidden_size attribute, "
                         "num_directions=1 for direction='forward'"),
    ("R", (1, 3 * H, H + 1), H, r"R input 'g_R' has shape \(1, 12, 5\), expected \(1, 12, 4\)"),
    ("R", (1, 3 * H, H + 1), None, r"W input 'g_W' has shape \(1, 12, 3\), expected \(1, 15, 3\).*"
                                   r"hidden_size=5 from R \(no hidden_size attribute\)"),
    ("B", (1, 3 * H), H, r"B input 'g_B' has shape \(1, 12\), expected \(1, 24\) = \(num_directions, "
                         r"6\*hidden_size\), \[Wb, Rb\]"),
])
def test_refuses_weights_of_the_wrong_shape(role, shape, hidden_size, message):
    weights = dict(zip("WRB", onnx_weights()))
    weights[role] = np.zeros(shape, np.float32)
    attributes = {} if hidden_size is None else dict(hidden_size=hidden_size)
    with pytest.raises(ValueError, match="GRU node 'g': " + message):
        import_onnx(one_gru_model(weights["W"], weights["R"], weights["B"], **attributes))


def test_refuses_a_gru_without_w_or_r():
    model = one_gru()
    model.graph.node[0].input[2] = ""
    with pytest.raises(ValueError, match=r"GRU node 'g' lacks its W or R input \(inputs \['x', 'g_W', '', 'g_B'\]\)"):
        import_onnx(model)


def test_refuses_weights_computed_in_the_graph():
    model = one_gru()
    model.graph.initializer.pop(0)          # W becomes an input of the graph, fed at run time
    model.graph.input.append(helper.make_tensor_value_info("g_W", TensorProto.FLOAT, [1, 3 * H, I]))
    with pytest.raises(ValueError, match="GRU node 'g': its W input 'g_W' is computed in the graph"):
        import_onnx(model)


def test_refuses_float16_weights():
    with pytest.raises(TypeError, match="GRU node 'g' W input 'g_W' has dtype float16"):
        import_onnx(one_gru_model(*onnx_weights(dtype=np.float16)))


def test_refuses_models_without_gru_and_things_that_are_not_models():
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "no_gru",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    with pytest.raises(ValueError, match="the ONNX model has no GRU operator"):
        import_onnx(helper.make_model(graph))
    with pytest.raises(TypeError, match="model must be an onnx.ModelProto, its bytes or a path, got int"):
        import_onnx(3)


def test_refuses_repeated_node_names():
    model = export_onnx(make_gru(2))
    for node in model.graph.node:
        if node.op_type == "GRU":
            node.name = "same"
    with pytest.raises(ValueError, match=r"GRU node names must be unique.*\['same'\]"):
        import_onnx_operators(model)


def test_refuses_chains_numgru_cannot_stack():
    model = export_onnx(make_gru(2, bidirectional=True))
    second = next(node for node in model.graph.node if node.name == "gru_l1")
    next(a for a in second.attribute if a.name == "linear_before_reset").i = 0
    with pytest.raises(ValueError, match="GRU node 'gru_l1' has linear_before_reset=0 but the chain's first GRU node "
                                         "'gru_l0' has linear_before_reset=1.*import_onnx_operators"):
        import_onnx(model)
    assert set(import_onnx_operators(model)) == {"gru_l0", "gru_l1"}     # one by one they import

    model = export_onnx(make_gru(2, bidirectional=True))
    narrow = np.zeros((2, 3 * H, H), np.float32)       # layer 1 reading H features, not D*H = 2H
    index = [t.name for t in model.graph.initializer].index("W_l1")
    model.graph.initializer[index].CopyFrom(numpy_helper.from_array(narrow, "W_l1"))
    with pytest.raises(ValueError, match="GRU node 'gru_l1' takes 4 input features, expected num_directions \\* "
                                         "hidden_size = 8"):
        import_onnx(model)


def test_refuses_chains_with_other_ops_between_layers():
    model = export_onnx(make_gru(2))
    reshape = next(node for node in model.graph.node if node.op_type == "Reshape" and node.output[0] == "x_l1")
    reshape.output[0] = "x_l1_linear"
    model.graph.node.append(helper.make_node("Relu", ["x_l1_linear"], ["x_l1"], name="act"))
    with pytest.raises(ValueError, match="GRU node 'gru_l1' is not fed by the Y output of GRU node 'gru_l0'.*"
                                         "a Relu node \\('act'\\)"):
        import_onnx(model)


def test_export_refuses_what_it_cannot_write():
    with pytest.raises(TypeError, match="gru must be a numgru.GRU, got GRUCell"):
        export_onnx(numgru.GRUCell(I, H, device="cpu"))
    with pytest.raises(ValueError, match=r"opset must lie in \[13, \d+\].*got 12"):
        export_onnx(make_gru(), opset=12)
    with pytest.raises(TypeError, match="opset must be a positive integer, got '17'"):
        export_onnx(make_gru(), opset="17")


def test_missing_onnx_says_how_to_install_it(monkeypatch):
    model = export_onnx(make_gru())
    monkeypatch.setitem(sys.modules, "onnx", None)          # `import onnx` now raises ImportError
    for call in (lambda: export_onnx(make_gru()), lambda: import_onnx(model)):
        with pytest.raises(ImportError, match=r"pip install numgru\[onnx\]"):
            call()
