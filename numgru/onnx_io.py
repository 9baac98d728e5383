"""ONNX export and import of ``numgru.GRU``: one ONNX ``GRU`` operator per layer.

numgru's maths is ONNX's: ``reset_after=True`` is ``linear_before_reset=1``,
``reset_after=False`` is ``linear_before_reset=0`` (ONNX's default), and both
write ``h' = (1 - z) * n + z * h``. Only the gate order differs: ONNX stacks
W (num_directions, 3H, I), R (num_directions, 3H, H) and B (num_directions, 6H)
= [Wb, Rb] in the order (z, r, h), numgru in (r, z, n).

The exported graph (x, optionally h0 and lengths -> out, hn) gives numgru's
numbers: onnxruntime's GRU kernel already zeroes the outputs past each length,
starts the reverse direction at each sequence's own last step and returns each
sequence's own last state, as numgru does, so no masking ops are needed.
onnxruntime's GRU kernel computes in float32 only; a float64 export is valid
ONNX (``onnx.reference.ReferenceEvaluator`` runs it) but onnxruntime refuses it.

onnx is optional: it is imported inside the functions (``pip install numgru[onnx]``).
"""
import os
from dataclasses import dataclass

import numpy as np

from . import validation
from .gru import GRU
from .interop import KERAS_GATES, NUMGRU_GATES, reorder_gates

DEFAULT_OPSET = 17
MIN_OPSET = 13          # Split takes its sizes as an input from opset 13 on
# Ops that only move or relabel axes: what may sit between two GRU layers of a chain.
LAYOUT_OPS = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Flatten")
GATE_ACTIVATIONS = ["sigmoid", "tanh"]          # ONNX's f (z, r) and g (h), per direction


def _require_onnx():
    try:
        import onnx
    except ImportError as err:
        raise ImportError("ONNX export and import need the onnx package: pip install numgru[onnx] "
                          "(or pip install onnx onnxruntime)") from err
    return onnx


# ------------------------------------------------------------------------------------------ export

def export_onnx(gru, path=None, *, initial_state=False, lengths=False, opset=DEFAULT_OPSET):
    """``gru`` as an ONNX model (``onnx.ModelProto``); saved to ``path`` too when one is given.

    Graph inputs, named as numgru's call; T and B are symbolic ("T", "B"):
      x        (T, B, I), or (B, T, I) when ``gru.batch_first`` (batched input only)
      h0       (L*D, B, H), only with ``initial_state=True``
      lengths  int32 (B,) with 1 <= lengths[b] <= T, only with ``lengths=True``
    Outputs: ``out`` in x's layout, (T, B, D*H) or (B, T, D*H), and ``hn`` (L*D, B, H):
    the numbers of ``gru(x, h0, lengths)`` in eval mode (the graph has no dropout).
    Each flag adds a required input (ONNX graphs have no optional inputs), so the
    default graph is the plain ``out, hn = gru(x)``.
    """
    onnx = _require_onnx()
    from onnx import TensorProto, helper, numpy_helper

    if not isinstance(gru, GRU):
        raise TypeError(f"gru must be a numgru.GRU, got {type(gru).__name__}")
    opset = validation.check_positive_int("opset", opset)
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must lie in [{MIN_OPSET}, {newest}] (this onnx's newest), got {opset}")

    L, D, H, I = gru.num_layers, gru.num_directions, gru.hidden_size, gru.input_size
    element = helper.np_dtype_to_tensor_dtype(gru.dtype)
    params = gru.state_dict()
    x_dims = ["B", "T", I] if gru.batch_first else ["T", "B", I]
    inputs = [helper.make_tensor_value_info("x", element, x_dims)]
    outputs = [helper.make_tensor_value_info("out", element, x_dims[:2] + [D * H]),
               helper.make_tensor_value_info("hn", element, [L * D, "B", H])]
    # (T, B, D, H) -> (T, B, D*H); 0 keeps the (symbolic) T and B
    initializers = [numpy_helper.from_array(np.array([0, 0, D * H], np.int64), "layer_output_shape")]
    nodes = []

    sequence = "x"
    if gru.batch_first:         # the GRU operator reads (T, B, I)
        nodes.append(helper.make_node("Transpose", ["x"], ["x_time_major"], perm=[1, 0, 2]))
        sequence = "x_time_major"
    layer_h0 = [""] * L
    if initial_state:
        inputs.append(helper.make_tensor_value_info("h0", element, [L * D, "B", H]))
        if L == 1:
            layer_h0 = ["h0"]
        else:                   # (L*D, B, H) -> one (D, B, H) per layer
            layer_h0 = [f"h0_l{layer}" for layer in range(L)]
            initializers.append(numpy_helper.from_array(np.full(L, D, np.int64), "h0_split"))
            nodes.append(helper.make_node("Split", ["h0", "h0_split"], layer_h0, axis=0))
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["B"]))

    def onnx_gates(name):
        return reorder_gates(params[name], NUMGRU_GATES, KERAS_GATES, name=name)

    for layer in range(L):
        suffixes = gru._suffixes(layer)
        W = np.stack([onnx_gates("weight_ih" + s) for s in suffixes])
        R = np.stack([onnx_gates("weight_hh" + s) for s in suffixes])
        tensors = {f"W_l{layer}": W, f"R_l{layer}": R}
        if gru.bias:
            tensors[f"B_l{layer}"] = np.stack([np.concatenate([onnx_gates("bias_ih" + s), onnx_gates("bias_hh" + s)])
                                               for s in suffixes])
        initializers += [numpy_helper.from_array(value, name) for name, value in tensors.items()]
        gru_inputs = [sequence, f"W_l{layer}", f"R_l{layer}", f"B_l{layer}" if gru.bias else "",
                      "lengths" if lengths else "", layer_h0[layer]]
        while not gru_inputs[-1]:       # absent optional inputs are "", trailing ones are left off
            gru_inputs.pop()
        nodes.append(helper.make_node(
            "GRU", gru_inputs, [f"Y_l{layer}", f"hn_l{layer}"], name=f"gru_l{layer}", hidden_size=H,
            direction="bidirectional" if gru.bidirectional else "forward",
            linear_before_reset=int(gru.reset_after)))
        # Y is (T, D, B, H); the next layer and ``out`` want (T, B, D*H), batch-first (B, T, D*H) at the end
        last = layer == L - 1
        perm = [2, 0, 1, 3] if last and gru.batch_first else [0, 2, 1, 3]
        sequence = "out" if last else f"x_l{layer + 1}"
        nodes += [helper.make_node("Transpose", [f"Y_l{layer}"], [f"Y_l{layer}_by_batch"], perm=perm),
                  helper.make_node("Reshape", [f"Y_l{layer}_by_batch", "layer_output_shape"], [sequence])]
    nodes.append(helper.make_node("Concat", [f"hn_l{layer}" for layer in range(L)], ["hn"], axis=0))

    graph = helper.make_graph(nodes, "numgru_gru", inputs, outputs, initializers)
    opset_imports = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opset_imports, producer_name="numgru", doc_string=repr(gru))
    # the oldest IR version that carries this opset, so that runtimes older than this onnx load it
    model.ir_version = helper.find_min_ir_version_for(opset_imports)
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, os.fspath(path))
    return model


# ------------------------------------------------------------------------------------------ import

def import_onnx(model, *, batch_first=None, device="auto"):
    """The chain of ONNX GRU operators in ``model`` as one ``numgru.GRU`` (num_layers = chain length).

    ``model``: an ``onnx.ModelProto``, its serialised bytes, or a path. Layer k+1
    must be fed by layer k's Y through layout ops only (Transpose, Reshape, ...;
    their effect is taken to be the (T, D, B, H) -> (T, B, D*H) of ``export_onnx``),
    and every layer must share hidden_size, direction, linear_before_reset and
    dtype. Biases absent from some layers are zeros. ``batch_first=None`` reads
    it from the graph: the first GRU has ``layout=1`` or is fed through a
    Transpose with perm (1, 0, 2). For any other model use ``import_onnx_operators``.
    """
    graph = _load_model(model).graph
    operators = _read_operators(graph)
    first = operators[0]
    for previous, current in zip(operators, operators[1:]):
        _check_fed_by(graph, current, previous)
        for attribute in ("hidden_size", "direction", "linear_before_reset", "dtype"):
            theirs, ours = getattr(first, attribute), getattr(current, attribute)
            if theirs != ours:
                raise ValueError(f"GRU node {current.name!r} has {attribute}={ours!r} but the chain's first GRU "
                                 f"node {first.name!r} has {attribute}={theirs!r}: numgru.GRU needs one value for "
                                 "every layer; use import_onnx_operators to import the nodes one by one")
        expected_input = first.num_directions * first.hidden_size
        if current.input_size != expected_input:
            raise ValueError(f"GRU node {current.name!r} takes {current.input_size} input features, expected "
                             f"num_directions * hidden_size = {expected_input} (the previous layer's output)")
    if batch_first is None:
        batch_first = _reads_batch_first(graph, first)
    return _to_gru(operators, batch_first, device)


def import_onnx_operators(model, *, batch_first=None, device="auto"):
    """Every ONNX GRU operator of ``model`` as its own single-layer ``numgru.GRU``.

    Returns a dict: node name (``GRU_<k>`` for the k-th GRU node when unnamed) -> GRU.
    ``batch_first=None`` reads it per node, as ``import_onnx`` does.
    """
    graph = _load_model(model).graph
    return {operator.name: _to_gru([operator], _reads_batch_first(graph, operator) if batch_first is None
                                   else batch_first, device)
            for operator in _read_operators(graph)}


def _load_model(model):
    onnx = _require_onnx()
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model))
    if isinstance(model, (str, os.PathLike)) or hasattr(model, "read"):
        return onnx.load(model)
    raise TypeError(f"model must be an onnx.ModelProto, its bytes or a path, got {type(model).__name__}")


@dataclass
class _Operator:
    """One ONNX GRU node read into numgru's terms."""
    node: object                    # the onnx NodeProto
    name: str
    hidden_size: int
    direction: str
    linear_before_reset: int
    layout: int
    weights: list                   # per direction: weight_ih, weight_hh, bias_ih, bias_hh in numgru's order
    has_bias: bool

    @property
    def num_directions(self):
        return len(self.weights)

    @property
    def input_size(self):
        return self.weights[0]["weight_ih"].shape[1]

    @property
    def dtype(self):
        return self.weights[0]["weight_ih"].dtype.name


def _attributes(node):
    """name -> value of a node's attributes, strings decoded."""
    from onnx import helper

    def decoded(value):
        if isinstance(value, bytes):
            return value.decode()
        if isinstance(value, list):
            return [decoded(v) for v in value]
        return value
    return {a.name: decoded(helper.get_attribute_value(a)) for a in node.attribute}


def _read_operators(graph):
    tensors = {t.name: t for t in graph.initializer}
    constants = {node.output[0]: _attributes(node) for node in graph.node if node.op_type == "Constant"}
    tensors.update({name: attributes["value"] for name, attributes in constants.items() if "value" in attributes})
    gru_nodes = [node for node in graph.node if node.op_type == "GRU" and node.domain in ("", "ai.onnx")]
    if not gru_nodes:
        raise ValueError("the ONNX model has no GRU operator")
    operators = [_read_operator(node, node.name or f"GRU_{k}", tensors) for k, node in enumerate(gru_nodes)]
    names = [operator.name for operator in operators]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"GRU node names must be unique to tell the operators apart, got {repeated} more than once")
    return operators


def _read_operator(node, name, tensors):
    from onnx import numpy_helper

    attributes = _attributes(node)
    for unsupported in ("clip", "activation_alpha", "activation_beta"):
        if unsupported in attributes:
            raise ValueError(f"GRU node {name!r} has attribute {unsupported}={attributes[unsupported]!r}: numgru's "
                             "GRU has plain Sigmoid/Tanh gates and no cell clipping")
    direction = attributes.get("direction", "forward")
    if direction not in ("forward", "bidirectional"):
        raise ValueError(f"GRU node {name!r} has direction={direction!r}: numgru.GRU runs 'forward' or "
                         "'bidirectional' and has no reverse-only mode")
    D = 2 if direction == "bidirectional" else 1
    activations = attributes.get("activations", [])
    if activations and [a.lower() for a in activations] != GATE_ACTIVATIONS * D:
        raise ValueError(f"GRU node {name!r} has activations={activations}: numgru computes "
                         f"{['Sigmoid', 'Tanh'] * D} (f for z and r, g for h, per direction)")

    def stored(position, role):
        """The input at ``position`` as an array, None when absent; it must be stored in the model."""
        tensor = node.input[position] if len(node.input) > position else ""
        if not tensor:
            return None
        if tensor not in tensors:
            raise ValueError(f"GRU node {name!r}: its {role} input {tensor!r} is computed in the graph; numgru "
                             "imports weights stored as initializers or Constant nodes only")
        value = numpy_helper.to_array(tensors[tensor])
        validation.check_float_dtype(f"GRU node {name!r} {role} input {tensor!r}", value.dtype)
        return value

    W, R, B = stored(1, "W"), stored(2, "R"), stored(3, "B")
    if W is None or R is None:
        raise ValueError(f"GRU node {name!r} lacks its W or R input (inputs {list(node.input)})")
    if "hidden_size" in attributes:
        H = validation.check_positive_int(f"GRU node {name!r} attribute hidden_size", attributes["hidden_size"])
        sizes = f"hidden_size={H} from the hidden_size attribute"
    else:
        H = R.shape[-1] if R.ndim else 0
        sizes = f"hidden_size={H} from R (no hidden_size attribute)"
    sizes += f", num_directions={D} for direction={direction!r}"

    def check_shape(value, position, role, expected, layout):
        if value.shape != expected:
            raise ValueError(f"GRU node {name!r}: {role} input {node.input[position]!r} has shape {value.shape}, "
                             f"expected {expected} = {layout} with {sizes}")

    check_shape(W, 1, "W", (D, 3 * H) + W.shape[-1:], "(num_directions, 3*hidden_size, input_size)")
    check_shape(R, 2, "R", (D, 3 * H, H), "(num_directions, 3*hidden_size, hidden_size)")
    has_bias = B is not None
    if has_bias:
        check_shape(B, 3, "B", (D, 6 * H), "(num_directions, 6*hidden_size), [Wb, Rb]")
    else:
        B = np.zeros((D, 6 * H), W.dtype)          # ONNX's default

    def numgru_gates(value):
        return reorder_gates(value, KERAS_GATES, NUMGRU_GATES)

    weights = [{"weight_ih": numgru_gates(W[d]), "weight_hh": numgru_gates(R[d]),
                "bias_ih": numgru_gates(B[d, :3 * H]), "bias_hh": numgru_gates(B[d, 3 * H:])} for d in range(D)]
    return _Operator(node, name, H, direction, attributes.get("linear_before_reset", 0), attributes.get("layout", 0),
                     weights, has_bias)


def _producers(graph):
    return {output: node for node in graph.node for output in node.output}


def _layout_path(graph, tensor):
    """The layout ops that feed ``tensor``, walking back along their data inputs -> (nodes, where it stops)."""
    producers = _producers(graph)
    path = []
    while tensor in producers and producers[tensor].op_type in LAYOUT_OPS:
        path.append(producers[tensor])
        tensor = path[-1].input[0]
    return path, tensor


def _check_fed_by(graph, operator, previous):
    _, source = _layout_path(graph, operator.node.input[0])
    if source != previous.node.output[0]:
        stop = _producers(graph).get(source)
        found = f"a {stop.op_type} node ({stop.name!r})" if stop is not None else f"the graph input {source!r}"
        raise ValueError(f"GRU node {operator.name!r} is not fed by the Y output of GRU node {previous.name!r} "
                         f"through layout ops ({', '.join(LAYOUT_OPS)}) only: its input comes from {found}; "
                         "import_onnx wants a chain of GRU layers, import_onnx_operators takes each node alone")


def _reads_batch_first(graph, operator):
    """Whether the node reads (B, T, I): ONNX's layout=1, or x comes through a Transpose swapping T and B."""
    path, _ = _layout_path(graph, operator.node.input[0])
    return operator.layout == 1 or any(node.op_type == "Transpose" and _attributes(node).get("perm") == [1, 0, 2]
                                       for node in path)


def _to_gru(operators, batch_first, device):
    first = operators[0]
    bias = any(operator.has_bias for operator in operators)
    gru = GRU(first.input_size, first.hidden_size, num_layers=len(operators), bias=bias, batch_first=batch_first,
              bidirectional=first.num_directions == 2, reset_after=bool(first.linear_before_reset),
              dtype=first.dtype, device=device)
    state = {}
    for layer, operator in enumerate(operators):
        for suffix, weights in zip(gru._suffixes(layer), operator.weights):
            state.update({name + suffix: value for name, value in weights.items() if bias or "bias" not in name})
    gru.load_state_dict(state)
    return gru
