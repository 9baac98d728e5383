"""``Embedding``: a lookup table of vectors indexed by token id, as ``torch.nn.Embedding``."""
import numpy as np

from . import config, threads, validation
from .grad_mode import grad_enabled
from .kernels import cpu
from .module import Module


class Embedding(Module):
    """``num_embeddings`` vectors of ``embedding_dim`` floats, looked up by integer id.

    ``weight`` (num_embeddings, embedding_dim) is drawn from N(0, 1) by
    numgru's seeded generator, as torch initialises it. ``padding_idx`` (as
    torch's; a negative one counts from the end) names a row that starts at
    zero and never gets a gradient, so no optimiser step moves it.

        >>> import numpy as np, numgru
        >>> emb = numgru.Embedding(10, 4, padding_idx=0, seed=0)
        >>> vectors = emb(np.array([[1, 2, 0], [3, 0, 0]]))   # (B, T) ids -> (B, T, 4)
        >>> emb.backward(np.ones_like(vectors))               # adds into emb.grads["weight"]
        >>> vectors.shape, emb.grads["weight"][0].tolist(), emb.grads["weight"][1].tolist()
        ((2, 3, 4), [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0])
    """

    devices = ("cpu",)

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, dtype="float32", device="auto", seed=None):
        super().__init__(dtype, device, seed)
        self.num_embeddings = validation.check_positive_int("num_embeddings", num_embeddings)
        self.embedding_dim = validation.check_positive_int("embedding_dim", embedding_dim)
        self.padding_idx = validation.check_padding_idx(padding_idx, self.num_embeddings)
        weight = self._rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype)
        if self.padding_idx is not None:
            weight[self.padding_idx] = 0
        self._params["weight"] = weight
        self.grads["weight"] = np.zeros_like(weight)
        self._cache = None

    @property
    def weight(self):
        """The live (num_embeddings, embedding_dim) table, ``parameters()["weight"]``."""
        return self._params["weight"]

    def forward(self, ids):
        """ids: integers in [0, num_embeddings), any shape -> (*ids.shape, embedding_dim). Keeps ids for ``backward``."""
        ids = validation.check_ids("ids", ids, self.num_embeddings)
        self._cache = ids if grad_enabled() else None
        return self._params["weight"][ids]

    def backward(self, dvectors):
        """Adds the gradient with respect to the last forward's output into ``grads["weight"]``; returns None.

        A compiled scatter-add (kernels/cpu.py ``embedding_backward``): repeated
        ids sum their rows in token order, so the result is the same bits at
        any thread count; the padding row gets nothing.
        """
        if self._cache is None:
            raise RuntimeError("backward needs a forward first: call emb(ids) before emb.backward(dvectors) "
                               "(a forward under numgru.no_grad() keeps nothing for a backward)")
        ids = self._cache
        dvectors = validation.check_grad_output("dvectors", dvectors, ids.shape + (self.embedding_dim,), self.dtype)
        grad = np.ascontiguousarray(dvectors).reshape(-1, self.embedding_dim)
        # Threads only for a table too large for the cache and work worth waking them for (config.py).
        weight = self._params["weight"]
        parallel = (weight.nbytes >= config.EMBEDDING_PARALLEL_MIN_TABLE_BYTES
                    and grad.size >= config.PARALLEL_MIN_REGION_WORK)
        cpu.embedding_backward(np.ascontiguousarray(ids).reshape(-1), grad, self.grads["weight"], self.padding_idx,
                               threads._numba_threads() if parallel else 1)

    def config(self):
        """The constructor arguments that rebuild this layer (used by ``numgru.save``)."""
        return dict(num_embeddings=self.num_embeddings, embedding_dim=self.embedding_dim,
                    padding_idx=self.padding_idx, dtype=self.dtype.name)

    def __repr__(self):
        padding = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}{padding}, dtype='{self.dtype.name}')"
