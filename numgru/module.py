"""What every layer shares: named parameters, their gradients, and the state_dict protocol."""
import numpy as np

from . import validation
from .dispatch import resolve_device


class Module:
    """Parameters live in ``self._params`` (name -> array, PyTorch's names and
    layouts); ``self.grads`` has the same keys and shapes and is accumulated
    into by ``backward``."""

    def __init__(self, dtype, device, seed):
        self.dtype = validation.check_dtype(dtype)
        self.device = resolve_device(device)
        self.training = True
        self._rng = np.random.default_rng(seed)
        self._params = {}
        self.grads = {}

    def _add_parameter(self, name, shape, bound):
        """A parameter drawn from U(-bound, bound), as PyTorch initialises GRU and Linear."""
        value = self._rng.uniform(-bound, bound, size=shape).astype(self.dtype)
        self._params[name] = value
        self.grads[name] = np.zeros_like(value)

    def parameters(self):
        """name -> the live parameter arrays (an optimiser updates these in place)."""
        return self._params

    def zero_grad(self):
        for grad in self.grads.values():
            grad.fill(0)

    def state_dict(self):
        """name -> a copy of each parameter, in PyTorch's names and layouts."""
        return {name: value.copy() for name, value in self._params.items()}

    def load_state_dict(self, state_dict):
        """Copy parameters in from a mapping (NumPy arrays, torch tensors, any array-like).

        Missing, unexpected or mis-shaped entries raise and nothing is loaded.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict must be a mapping of name -> array, got {type(state_dict).__name__}")
        missing = [k for k in self._params if k not in state_dict]
        unexpected = [k for k in state_dict if k not in self._params]
        if missing or unexpected:
            raise ValueError(f"state_dict does not match {type(self).__name__}: "
                             f"missing keys {missing}, unexpected keys {unexpected}")
        arrays = {}
        for name, target in self._params.items():
            value = validation.as_float_array(f"state_dict[{name!r}]", state_dict[name], self.dtype)
            if value.shape != target.shape:
                raise ValueError(f"state_dict[{name!r}] must have shape {target.shape}, got {value.shape}")
            arrays[name] = value
        for name, value in arrays.items():
            self._params[name][...] = value      # in place: optimisers keep valid references

    def train(self, mode=True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)
