"""Weight exchange with other frameworks, and the gate-order rule they share.

numgru (like PyTorch) stacks the three gates of a GRU weight as (r, z, n);
Keras and ONNX stack them as (z, r, h), their h being numgru's n.
"""
import numpy as np

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
