"""Optimisers and gradient clipping with PyTorch's defaults and update formulas.

Optimisers take a list of modules (anything with a ``.parameters()`` dict of
live arrays and a ``.grads`` dict with the same keys) and update the
parameter arrays in place, so references held elsewhere stay valid. Each step
follows the single-tensor code path of ``torch.optim.SGD``/``Adam``/``AdamW``
operation for operation, so one step on the same gradients gives the same
parameters (to float64 rounding).

    >>> import numgru
    >>> gru, head = numgru.GRU(1, 8, seed=0), numgru.Linear(8, 1, seed=1)
    >>> opt = numgru.optim.Adam([gru, head], lr=1e-2)
    >>> # forward, loss, backward ... then:
    >>> norm = numgru.optim.clip_grad_norm([gru, head], max_norm=1.0)
    >>> opt.step(); opt.zero_grad()
"""
import math

import numpy as np

from . import threads, validation
from .kernels import cpu

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm"]


class Optimizer:
    """Base class: walks every (module, parameter name) pair; subclasses define ``_update``."""

    def __init__(self, modules):
        self.modules = validation.check_modules(modules)
        self._keys = []
        seen = {}
        for i, module in enumerate(self.modules):
            for name, value in module.parameters().items():
                owner = seen.get(id(value))
                if owner is not None:
                    raise ValueError(f"parameter {name!r} of modules[{i}] ({type(module).__name__}) is the same "
                                     f"array as {owner}: pass each module once (a model already holds its "
                                     "layers' parameters)")
                seen[id(value)] = f"parameter {name!r} of modules[{i}]"
                self._keys.append((i, name))
        self.state = {key: {} for key in self._keys}
        self.step_count = 0

    def zero_grad(self):
        """Set every module's gradients to zero (in place)."""
        for module in self.modules:
            module.zero_grad()

    def step(self):
        """Update every parameter from its current gradient, in place."""
        for key in self._keys:
            module = self.modules[key[0]]
            param = module.parameters()[key[1]]
            grad = module.grads[key[1]]
            if grad.shape != param.shape:
                raise ValueError(f"gradient of {key[1]!r} has shape {grad.shape}, its parameter {param.shape}")
            self._update(param, grad, self.state[key])
        self.step_count += 1

    def _update(self, param, grad, state):
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent as ``torch.optim.SGD``: momentum, dampening, Nesterov, L2 weight decay.

    buf = momentum * buf + (1 - dampening) * (g + weight_decay * p)   (buf = g at the first step)
    p  -= lr * (g + momentum * buf if nesterov else buf)
    """

    def __init__(self, modules, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 *, maximize=False):
        super().__init__(modules)
        self.lr = validation.check_real("lr", lr, low=0.0)
        self.momentum = validation.check_real("momentum", momentum, low=0.0)
        self.dampening = validation.check_real("dampening", dampening)
        self.weight_decay = validation.check_real("weight_decay", weight_decay, low=0.0)
        self.nesterov = bool(nesterov)
        self.maximize = bool(maximize)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(f"nesterov=True needs momentum > 0 and dampening == 0, got momentum={self.momentum} "
                             f"and dampening={self.dampening}")

    def _update(self, param, grad, state):
        g = -grad if self.maximize else grad
        if self.weight_decay != 0:
            g = g + self.weight_decay * param
        if self.momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        param += -self.lr * g

    def __repr__(self):
        return (f"SGD(lr={self.lr}, momentum={self.momentum}, dampening={self.dampening}, "
                f"weight_decay={self.weight_decay}, nesterov={self.nesterov})")


class Adam(Optimizer):
    """Adam as ``torch.optim.Adam`` (L2 weight decay added to the gradient; amsgrad optional).

    m = lerp(m, g, 1 - beta1);  v = beta2 v + (1 - beta2) g²
    p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    _decoupled = False

    def __init__(self, modules, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 *, maximize=False):
        super().__init__(modules)
        self.lr = validation.check_real("lr", lr, low=0.0)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (validation.check_real("betas[0]", betas[0], low=0.0, high=1.0, high_open=True),
                      validation.check_real("betas[1]", betas[1], low=0.0, high=1.0, high_open=True))
        self.eps = validation.check_real("eps", eps, low=0.0)
        self.weight_decay = validation.check_real("weight_decay", weight_decay, low=0.0)
        self.amsgrad = bool(amsgrad)
        self.maximize = bool(maximize)

    def _update(self, param, grad, state):
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
            if self.amsgrad:
                state["max_exp_avg_sq"] = np.zeros_like(param)
        state["step"] += 1
        into = param if param.flags.c_contiguous else np.ascontiguousarray(param)
        cpu.adam_step(into, np.ascontiguousarray(grad, param.dtype), state["exp_avg"], state["exp_avg_sq"],
                      state.get("max_exp_avg_sq"), step=state["step"], lr=self.lr, betas=self.betas, eps=self.eps,
                      weight_decay=self.weight_decay, decoupled=self._decoupled, maximize=self.maximize,
                      nchunks=threads.threads_for(param.size))
        if into is not param:
            param[...] = into

    def __repr__(self):
        return (f"{type(self).__name__}(lr={self.lr}, betas={self.betas}, eps={self.eps}, "
                f"weight_decay={self.weight_decay}, amsgrad={self.amsgrad})")


class AdamW(Adam):
    """AdamW as ``torch.optim.AdamW``: Adam with decoupled weight decay, p *= 1 - lr * weight_decay
    before the Adam update (default weight_decay=1e-2, as in PyTorch)."""

    _decoupled = True

    def __init__(self, modules, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 *, maximize=False):
        super().__init__(modules, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize)


def _lerp_(start, end, weight):
    """start <- start + weight * (end - start), in place, with torch.lerp's two-branch formula."""
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)


def clip_grad_norm(modules, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients in place so that their global norm is at most ``max_norm``; return that norm.

    As ``torch.nn.utils.clip_grad_norm_``: the total norm is the ``norm_type``
    norm of the per-array norms; every gradient is multiplied by
    min(max_norm / (total_norm + 1e-6), 1). ``norm_type`` may be ``inf``.
    Returns the total norm before clipping, as a float.
    """
    modules = validation.check_modules(modules)
    max_norm = validation.check_real("max_norm", max_norm, low=0.0)
    norm_type = validation.check_real("norm_type", norm_type, low=0.0, low_open=True)
    grads = [g for module in modules for g in module.grads.values()]
    if not grads:
        return 0.0
    norms = np.array([_vector_norm(g, norm_type) for g in grads], dtype=grads[0].dtype)
    total = _vector_norm(norms, norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"the total norm of order {norm_type} of the gradients is non-finite ({total}), so it "
                           "cannot be clipped; pass error_if_nonfinite=False to scale by it anyway")
    for g in grads:
        coef = g.dtype.type(max_norm) / (g.dtype.type(total) + g.dtype.type(1e-6))
        g *= min(coef, g.dtype.type(1.0))
    return float(total)


def _vector_norm(arr, norm_type):
    flat = arr.ravel()
    if flat.size == 0:
        return arr.dtype.type(0)
    if norm_type == math.inf:
        return np.abs(flat).max()
    if norm_type == 2.0:
        return np.sqrt(np.dot(flat, flat))
    return np.sum(np.abs(flat) ** norm_type) ** (1.0 / norm_type)
