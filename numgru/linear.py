"""``Linear``: y = x W^T + b over the last axis, with ``torch.nn.Linear``'s names and initialisation."""
import numpy as np

from . import validation
from .grad_mode import grad_enabled
from .kernels import cpu
from .threads import one_blas_thread, threads_for
from .module import Module


class Linear(Module):
    """A fully connected layer acting on the last axis of any-dimensional input.

    Parameters are PyTorch's: ``weight`` (out_features, in_features) and
    ``bias`` (out_features,), both drawn from U(-1/sqrt(in_features),
    1/sqrt(in_features)) by numgru's seeded generator.

        >>> import numpy as np, numgru
        >>> head = numgru.Linear(8, 2, seed=0)
        >>> y = head(np.ones((5, 3, 8), np.float32))      # (..., 8) -> (..., 2)
        >>> dx = head.backward(np.ones_like(y))           # adds into head.grads
        >>> y.shape, dx.shape
        ((5, 3, 2), (5, 3, 8))
    """

    def __init__(self, in_features, out_features, bias=True, dtype="float32", device="auto", seed=None):
        super().__init__(dtype, device, seed)
        self.in_features = validation.check_positive_int("in_features", in_features)
        self.out_features = validation.check_positive_int("out_features", out_features)
        self.bias = bool(bias)
        bound = 1.0 / np.sqrt(self.in_features)
        self._add_parameter("weight", (self.out_features, self.in_features), bound)
        if self.bias:
            self._add_parameter("bias", (self.out_features,), bound)
        self._cache = None

    def forward(self, x, check_finite=False):
        """x: (..., in_features) -> (..., out_features). Keeps x for ``backward``."""
        x = validation.check_features("x", x, self.in_features, self.dtype, check_finite)
        flat = np.ascontiguousarray(x.reshape(-1, self.in_features))
        with one_blas_thread():
            y = cpu.matmul(flat, self._params["weight"].T, self._params["bias"] if self.bias else None,
                           self._threads(flat.shape[0]))
        self._cache = x if grad_enabled() else None
        return y.reshape(x.shape[:-1] + (self.out_features,))

    def backward(self, dy):
        """Gradient with respect to the last forward's output -> dx; adds dW, db into ``self.grads``."""
        if self._cache is None:
            raise RuntimeError("backward needs a forward first: call head(x) before head.backward(dy) "
                               "(a forward under numgru.no_grad() keeps nothing for a backward)")
        x = self._cache
        dy = validation.check_grad_output("dy", dy, x.shape[:-1] + (self.out_features,), self.dtype)
        flat_dy = np.ascontiguousarray(dy.reshape(-1, self.out_features))
        flat_x = np.ascontiguousarray(x.reshape(-1, self.in_features))
        nchunks = self._threads(flat_dy.shape[0])
        with one_blas_thread():
            cpu.add_matmul_tn(flat_dy, flat_x, self.grads["weight"], nchunks)
            dx = cpu.matmul(flat_dy, self._params["weight"], None, nchunks)
        if self.bias:
            self.grads["bias"] += flat_dy.sum(axis=0)
        return dx.reshape(x.shape)

    def _threads(self, rows):
        """Numba's threads for a product of ``rows`` rows with the weight, if it is worth waking them."""
        return threads_for(rows * self.in_features * self.out_features)

    def config(self):
        """The constructor arguments that rebuild this layer (used by ``numgru.save``)."""
        return dict(in_features=self.in_features, out_features=self.out_features, bias=self.bias,
                    dtype=self.dtype.name)

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias}, dtype='{self.dtype.name}')"
