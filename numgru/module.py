"""What every layer shares: named parameters, their gradients, and the state_dict protocol."""
import contextlib

import numpy as np

from . import validation
from .devices import array_ops, resolve_device
from .grad_mode import no_grad


class Module:
    """Parameters live in ``self._params`` (name -> array, PyTorch's names and
    layouts); ``self.grads`` has the same keys and shapes and is accumulated
    into by ``backward``.

    Both live on ``self.device``: NumPy arrays on the CPU, Numba device arrays
    on "cuda". ``devices`` lists the devices a subclass's forward and backward
    implement ("auto" picks among them; the others are refused).
    """

    devices = ("cpu",)

    def __init__(self, dtype, device, seed):
        self.dtype = validation.check_dtype(dtype)
        self.device = resolve_device(device, self.devices, type(self).__name__)
        self.training = True
        self._rng = np.random.default_rng(seed)
        self._params = {}
        self.grads = {}

    def _dropout_mask(self, shape, rate):
        """Inverted dropout from this module's generator: 0 with probability ``rate``, else 1 / (1 - rate)."""
        keep = 1.0 - rate
        return (self._rng.random(shape, dtype=np.float32) < keep).astype(self.dtype) / self.dtype.type(keep)

    def _add_parameter(self, name, shape, bound):
        """A parameter drawn from U(-bound, bound), as PyTorch initialises GRU and Linear.

        Drawn on the host whatever the device, so a seed gives the same numbers everywhere.
        """
        value = self._rng.uniform(-bound, bound, size=shape).astype(self.dtype)
        ops = array_ops(self.device)
        self._params[name] = ops.asarray(value, self.dtype)
        self.grads[name] = ops.zeros(value.shape, self.dtype)

    def _adopt_layers(self, *names):
        """Expose the sub-layers held in attributes ``names`` as this module's own parameters.

        Each parameter of ``self.<name>`` appears here as ``<name>.<parameter>``,
        as a nested ``torch.nn.Module`` names it; the layers' own arrays, not
        copies, so one optimiser over ``[self]`` updates every layer in place.
        """
        for prefix in names:
            layer = getattr(self, prefix)
            for name, value in layer.parameters().items():
                self._params[f"{prefix}.{name}"] = value
                self.grads[f"{prefix}.{name}"] = layer.grads[name]

    def parameters(self):
        """name -> the live parameter arrays (an optimiser updates these in place)."""
        return self._params

    def zero_grad(self):
        ops = array_ops(self.device)
        for grad in self.grads.values():
            ops.fill(grad, 0)

    def state_dict(self):
        """name -> a host (NumPy) copy of each parameter, in PyTorch's names and layouts."""
        host_copy = array_ops(self.device).host_copy
        return {name: host_copy(value) for name, value in self._params.items()}

    def to(self, device):
        """Move the parameters and gradients to ``device`` ('cpu', 'cuda' or 'auto'); returns self.

        The arrays are replaced by copies on the new device (references taken from
        ``parameters()`` before the move keep the old ones), and the cache of the
        last forward is dropped: run a forward before the next backward.
        """
        device = resolve_device(device, self.devices, type(self).__name__)
        if device == self.device:
            return self
        source, target = array_ops(self.device), array_ops(device)
        for store in (self._params, self.grads):
            for name, value in store.items():
                store[name] = target.asarray(source.to_host(value), self.dtype)
        self.device = device
        if hasattr(self, "_cache"):
            self._cache = None
        return self

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
        assign = array_ops(self.device).assign
        for name, value in arrays.items():
            assign(self._params[name], value)    # in place: optimisers keep valid references

    def drop_cache(self):
        """Forget what the last forward kept for a backward, here and in every sub-layer (frees its memory)."""
        self._cache = None
        for value in vars(self).values():
            if isinstance(value, Module):
                value.drop_cache()

    def train(self, mode=True):
        """Training mode (dropout on) for this module and every sub-layer; returns self."""
        self.training = bool(mode)
        for value in vars(self).values():
            if isinstance(value, Module):
                value.train(mode)
        return self

    def eval(self):
        return self.train(False)

    @contextlib.contextmanager
    def _inference(self):
        """Eval mode (dropout off) and no gradient kept, for the block; the mode before it comes back after."""
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                yield
        finally:
            self.train(was_training)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)
