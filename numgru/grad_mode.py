"""Grad mode: ``no_grad`` as ``torch.no_grad``, per thread."""
import threading


_grad_mode = threading.local()


class no_grad:
    """Context manager, as ``torch.no_grad``: forwards run inside keep nothing for a backward.

    Inference then saves no gates or states per step (less memory, less time);
    a ``backward`` after such a forward raises. Per thread, and nestable.

        >>> import numpy as np, numgru
        >>> gru = numgru.GRU(3, 8, seed=0)
        >>> with numgru.no_grad():
        ...     out, hn = gru(np.zeros((5, 2, 3), np.float32))
    """

    __slots__ = ("_previous",)

    def __enter__(self):
        self._previous = grad_enabled()
        _grad_mode.enabled = False
        return self

    def __exit__(self, *exc_info):
        _grad_mode.enabled = self._previous


def grad_enabled():
    """False inside ``numgru.no_grad()``: forwards keep no backward cache."""
    return getattr(_grad_mode, "enabled", True)
