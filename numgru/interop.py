"""Weight exchange with other frameworks, and the gate-order rule they share.

numgru (like PyTorch) stacks the three gates of a GRU weight as (r, z, n);
Keras and ONNX stack them as (z, r, h), their h being numgru's n.

PyTorch: ``from_torch``/``to_torch`` convert ``nn.GRU``/``nn.GRUCell``/``nn.Embedding``
modules (same names and layouts, so only the configuration needs translating; torch is
imported only when they are called). Keras: ``from_keras``/``to_keras`` exchange the lists of
arrays of ``layer.get_weights()``/``set_weights()``, with no TensorFlow needed.
All of them copy: the result shares no memory with what they were given.
"""
import numpy as np

from . import validation
from .embedding import Embedding
from .gru import GRU, GRUCell

NUMGRU_GATES = ("r", "z", "n")
KERAS_GATES = ("z", "r", "n")      # Keras and ONNX order ("h" there is n here)


def reorder_gates(w, source, target, axis=0, name="w"):
    """Reorder the three gate blocks of ``w`` along ``axis`` from ``source`` to ``target`` order.

    ``source``/``target`` are permutations of ("r", "z", "n"). Returns a new array.
    """
    w = np.asarray(w)
    size = w.shape[axis]
    if size % 3:
        raise ValueError(f"{name} must stack three gates along axis {axis}, so its size there must be a "
                         f"multiple of 3; got shape {w.shape}")
    blocks = np.split(w, 3, axis=axis)
    by_gate = dict(zip(source, blocks))
    return np.concatenate([by_gate[gate] for gate in target], axis=axis)


# ---------------------------------------------------------------- PyTorch

def _import_torch(caller):
    """torch stays optional: imported only when a converter needs it."""
    try:
        import torch
    except ImportError:
        raise ImportError(f"{caller} needs PyTorch, which is not installed: pip install torch") from None
    return torch


def from_torch(module, *, device="cpu"):
    """A ``torch.nn.GRU`` -> ``numgru.GRU``, a ``torch.nn.GRUCell`` -> ``numgru.GRUCell``,
    a ``torch.nn.Embedding`` -> ``numgru.Embedding``.

    Same configuration (sizes, layers, bias, batch_first, dropout, bidirectional;
    an embedding's padding_idx), PyTorch's reset_after=True form, the module's
    dtype (float32 or float64), its train/eval mode, and a copy of its weights,
    bit for bit: the parameter names and layouts are the same, so its state_dict
    loads as is. An embedding's max_norm and scale_grad_by_freq, which numgru
    does not implement, are refused rather than dropped.
    """
    torch = _import_torch("from_torch")
    if not isinstance(module, (torch.nn.GRU, torch.nn.GRUCell, torch.nn.Embedding)):
        raise TypeError("module must be a torch.nn.GRU, torch.nn.GRUCell or torch.nn.Embedding, "
                        f"got {type(module).__name__}")
    dtypes = {torch.float32: "float32", torch.float64: "float64"}
    weight_dtype = next(module.parameters()).dtype
    if weight_dtype not in dtypes:
        raise TypeError(f"module has parameters of dtype {weight_dtype}; numgru computes in float32 or float64: "
                        "convert it with module.float() or module.double()")
    dtype = dtypes[weight_dtype]
    if isinstance(module, torch.nn.GRU):
        converted = GRU(module.input_size, module.hidden_size, num_layers=module.num_layers, bias=module.bias,
                        batch_first=module.batch_first, dropout=module.dropout,
                        bidirectional=module.bidirectional, dtype=dtype, device=device)
    elif isinstance(module, torch.nn.Embedding):
        if module.max_norm is not None or module.scale_grad_by_freq:
            raise ValueError(f"module has max_norm={module.max_norm}, scale_grad_by_freq={module.scale_grad_by_freq}: "
                             "numgru.Embedding implements neither (use max_norm=None, scale_grad_by_freq=False)")
        converted = Embedding(module.num_embeddings, module.embedding_dim, padding_idx=module.padding_idx,
                              dtype=dtype, device=device)
    else:
        converted = GRUCell(module.input_size, module.hidden_size, bias=module.bias, dtype=dtype, device=device)
    converted.load_state_dict(module.state_dict())
    return converted.train(module.training)


def to_torch(gru):
    """A ``numgru.GRU`` -> ``torch.nn.GRU``, a ``numgru.GRUCell`` -> ``torch.nn.GRUCell``,
    a ``numgru.Embedding`` -> ``torch.nn.Embedding`` (padding_idx kept), on torch's CPU.

    Same configuration, dtype, train/eval mode and weights (bit for bit; a CUDA
    model's weights are fetched through ``state_dict()``). PyTorch computes only
    the reset_after=True form, so a reset_after=False model is refused.
    """
    torch = _import_torch("to_torch")
    if not isinstance(gru, (GRU, GRUCell, Embedding)):
        raise TypeError(f"gru must be a numgru.GRU, numgru.GRUCell or numgru.Embedding, got {type(gru).__name__}")
    if not isinstance(gru, Embedding) and not gru.reset_after:
        raise ValueError(f"gru has reset_after=False (Cho et al.'s n = tanh(W_in x + b_in + W_hn (r*h) + b_hn)), "
                         f"which has no torch equivalent: torch.nn.{type(gru).__name__} computes only the "
                         "reset_after=True form")
    # Built on the meta device: no random initialisation, which would be overwritten
    # anyway and would draw from the user's global torch generator.
    options = dict(dtype=getattr(torch, gru.dtype.name), device="meta")
    if isinstance(gru, Embedding):
        module = torch.nn.Embedding(gru.num_embeddings, gru.embedding_dim, padding_idx=gru.padding_idx, **options)
    elif isinstance(gru, GRU):
        module = torch.nn.GRU(gru.input_size, gru.hidden_size, num_layers=gru.num_layers,
                              batch_first=gru.batch_first, dropout=gru.dropout,
                              bidirectional=gru.bidirectional, bias=gru.bias, **options)
    else:
        module = torch.nn.GRUCell(gru.input_size, gru.hidden_size, bias=gru.bias, **options)
    module = module.to_empty(device="cpu")
    module.load_state_dict({name: torch.from_numpy(value) for name, value in gru.state_dict().items()})
    return module.train(gru.training)


# ---------------------------------------------------------------- Keras

KERAS_ARRAYS = ("kernel", "recurrent_kernel", "bias")


def from_keras(weights, *, reset_after=True, bidirectional=False, activation="tanh",
               recurrent_activation="sigmoid", dtype=None, device="cpu"):
    """Keras GRU weights (``layer.get_weights()``, no TensorFlow needed) -> a batch-first ``numgru.GRU``.

    weights: one layer's list ``[kernel, recurrent_kernel, bias]`` (``[kernel,
        recurrent_kernel]`` for ``use_bias=False``), or a list of such lists for
        a stack of layers (each but maybe the last with ``return_sequences=True``).
        kernel is (inputs, 3*units), recurrent_kernel (units, 3*units), gates side
        by side in Keras's order z, r, h (numgru's r, z, n are reordered).
        With ``bidirectional=True`` each layer's list is what
        ``keras.layers.Bidirectional(GRU(...))`` returns: the forward layer's
        arrays, then the backward layer's (merge_mode="concat", the default).
    reset_after: Keras's flag, which fixes the bias layout: True (the default)
        takes bias (2, 3*units), row 0 for the input and row 1 for the recurrent
        projection; False takes bias (3*units,), Keras's single bias per gate,
        loaded as numgru's bias_ih with a zero bias_hh (the same function).
    activation, recurrent_activation: Keras's arguments, accepted so that a
        layer's settings can be passed along: numgru computes tanh and sigmoid
        only, so anything else (old Keras's "hard_sigmoid") raises ValueError.
    dtype: float32 or float64; None takes the first kernel's.

    The GRU's outputs are Keras's: ``out`` is ``return_sequences=True``'s output
    (``out[:, -1]`` the default's) and ``hn`` the ``return_state`` states, forward
    then backward for each layer. A Keras layer with ``go_backwards=True`` alone
    computes ``gru(x[:, ::-1])``.
    """
    validation.check_choice("activation", activation, ("tanh",))
    validation.check_choice("recurrent_activation", recurrent_activation, ("sigmoid",))
    directions = 2 if bidirectional else 1
    layers, stacked = _keras_layers(weights, directions)
    if dtype is None:                            # the first kernel's
        name = _keras_names("weights[0]" if stacked else "weights", 0, 0, 3, stacked)[0]
        dtype = validation.check_float_dtype(name, validation._to_numpy(name, layers[0][0]).dtype)
    dtype = validation.check_dtype(dtype)

    input_size = hidden_size = None
    parsed = []                                  # per layer, per direction: (kernel, recurrent_kernel, bias)
    for k, arrays in enumerate(layers):
        per_direction = len(arrays) // directions
        parsed.append([])
        for d in range(directions):
            names = _keras_names(f"weights[{k}]" if stacked else "weights", k, d, per_direction, stacked)
            values = [validation.as_float_array(name, value, dtype)
                      for name, value in zip(names, arrays[d * per_direction:(d + 1) * per_direction])]
            kernel, recurrent_kernel, bias = values + [None] * (3 - per_direction)
            if hidden_size is None and recurrent_kernel.ndim == 2:
                hidden_size = min(recurrent_kernel.shape)   # (units, 3*units), or transposed: said below
            H = hidden_size
            _check_keras_shape(names[1], recurrent_kernel, ("units", "3*units") if H is None else (H, 3 * H),
                               "(units, 3*units), the gates z, r, h side by side")
            layer_input = (input_size or "input_size") if k == 0 else directions * H
            _check_keras_shape(names[0], kernel, (layer_input, 3 * H),
                               "(inputs, 3*units)" + (f", its inputs the {directions}*{H} outputs of layer {k - 1}"
                                                      if k else ""))
            input_size = input_size or kernel.shape[0]
            if bias is not None:
                _check_keras_bias(names[2], bias, H, reset_after)
            parsed[k].append((kernel, recurrent_kernel, bias))

    gru = GRU(input_size, hidden_size, num_layers=len(layers), bias=len(layers[0]) == 3 * directions,
              batch_first=True, bidirectional=bidirectional, reset_after=reset_after, dtype=dtype, device=device)
    state = {}
    for k, layer in enumerate(parsed):
        for suffix, (kernel, recurrent_kernel, bias) in zip(gru._suffixes(k), layer):
            state["weight_ih" + suffix] = reorder_gates(kernel.T, KERAS_GATES, NUMGRU_GATES)
            state["weight_hh" + suffix] = reorder_gates(recurrent_kernel.T, KERAS_GATES, NUMGRU_GATES)
            if bias is not None:
                bias = reorder_gates(bias, KERAS_GATES, NUMGRU_GATES, axis=-1)
                if not reset_after:   # Keras's one bias per gate; b_hn is added outside W_hn (r*h), so b_hh = 0
                    bias = np.stack([bias, np.zeros_like(bias)])
                state["bias_ih" + suffix], state["bias_hh" + suffix] = bias
    gru.load_state_dict(state)                   # copies: nothing of the caller's is kept
    return gru


def to_keras(gru):
    """A ``numgru.GRU`` -> its weights as Keras's ``layer.set_weights()`` takes them (``from_keras``'s structure).

    One layer gives ``[kernel, recurrent_kernel, bias]`` (no bias for
    ``bias=False``; six arrays, forward then backward, for a bidirectional
    GRU, as ``keras.layers.Bidirectional`` takes them); several layers give a
    list of such lists. Load them into ``keras.layers.GRU(hidden_size,
    reset_after=gru.reset_after, return_sequences=True)`` layers (wrapped in
    ``Bidirectional`` if ``gru.bidirectional``). The dtype is the model's.

    reset_after=True: bias is (2, 3*units), bias_ih then bias_hh, exactly.
    reset_after=False: Keras has one bias per gate, so bias is bias_ih + bias_hh
    (3*units,): the same function (b_hn is added outside the reset gate in this
    form), though the parameters are not the same and outputs may differ in the
    last bit. ``from_keras(to_keras(gru), reset_after=..., bidirectional=...)``
    gives the model back. numgru's inter-layer dropout has no place in the
    weights: put ``keras.layers.Dropout`` between the layers to train alike.
    """
    if not isinstance(gru, GRU):
        raise TypeError(f"gru must be a numgru.GRU, got {type(gru).__name__}")
    state = gru.state_dict()                     # host copies, whatever the device
    layers = []
    for k in range(gru.num_layers):
        arrays = []
        for suffix in gru._suffixes(k):
            for name in ("weight_ih", "weight_hh"):   # (3H, inputs) -> (inputs, 3H), C-ordered as Keras's
                weight = reorder_gates(state[name + suffix], NUMGRU_GATES, KERAS_GATES)
                arrays.append(np.ascontiguousarray(weight.T))
            if gru.bias:
                bias_ih, bias_hh = (reorder_gates(state[name + suffix], NUMGRU_GATES, KERAS_GATES)
                                    for name in ("bias_ih", "bias_hh"))
                arrays.append(np.stack([bias_ih, bias_hh]) if gru.reset_after else bias_ih + bias_hh)
        layers.append(arrays)
    return layers[0] if gru.num_layers == 1 else layers


def _keras_layers(weights, directions):
    """``from_keras``'s weights -> (a list of per-layer lists of arrays, whether a stack was given)."""
    if not isinstance(weights, (list, tuple)):
        raise TypeError("weights must be a list of arrays (a Keras layer's get_weights()) or a list of such lists "
                        f"(a stack of layers), got {type(weights).__name__}")
    if not weights:
        raise ValueError("weights must hold a layer's arrays, got an empty list")
    stacked = all(isinstance(item, (list, tuple)) for item in weights)
    layers = [list(layer) for layer in weights] if stacked else [list(weights)]
    counts = (3 * directions, 2 * directions)
    for k, arrays in enumerate(layers):
        where = f"weights[{k}]" if stacked else "weights"
        if len(arrays) not in counts:
            one = "kernel, recurrent_kernel, bias"
            expected = f"{counts[0]} arrays ({one}" + (", forward then backward" if directions == 2 else "") + ")"
            raise ValueError(f"{where} must hold {expected} or {counts[1]} without bias (use_bias=False), got "
                             f"{len(arrays)} arrays (a stack is a list of per-layer lists; a "
                             "keras.layers.Bidirectional layer's list needs bidirectional=True)")
        if len(arrays) != len(layers[0]):
            raise ValueError(f"{where} holds {len(arrays)} arrays and weights[0] {len(layers[0])}: numgru needs "
                             "a bias in every layer or in none (the same Keras use_bias)")
    return layers, stacked


def _keras_names(where, layer, direction, count, stacked):
    """Names of one layer-direction's arrays for messages, e.g. "weights[1][3] (layer 1 backward kernel)"."""
    label = (f"layer {layer} " if stacked else "") + ("backward " if direction else "")
    return [f"{where}[{direction * count + i}] ({label}{KERAS_ARRAYS[i]})" for i in range(count)]


def _check_keras_shape(name, array, expected, layout, hint=""):
    """``array.shape`` must be ``expected``, whose str entries are unknown sizes that match any."""
    def fits(shape):
        return len(shape) == len(expected) and all(isinstance(e, str) or s == e for s, e in zip(shape, expected))

    if not fits(array.shape):
        if array.ndim == 2 and fits(array.shape[::-1]):
            hint = "; it looks transposed (Keras puts the 3*units gate axis last, PyTorch and numgru first)"
        shown = "(" + ", ".join(map(str, expected)) + ("," if len(expected) == 1 else "") + ")"
        raise ValueError(f"{name} must have shape {shown}: {layout}; got {array.shape}{hint}")


def _check_keras_bias(name, bias, units, reset_after):
    """Keras's bias layout follows reset_after: (2, 3*units) when True, (3*units,) when False."""
    if reset_after:
        hint = "; a (3*units,) bias is Keras's reset_after=False layout: pass reset_after=False" \
            if bias.shape == (3 * units,) else ""
        _check_keras_shape(name, bias, (2, 3 * units), "reset_after=True has an input and a recurrent bias row",
                           hint)
    else:
        hint = "; a (2, 3*units) bias is Keras's reset_after=True layout: pass reset_after=True" \
            if bias.shape == (2, 3 * units) else ""
        _check_keras_shape(name, bias, (3 * units,), "reset_after=False has one bias per gate", hint)
