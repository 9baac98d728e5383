"""``Attention``: additive (Bahdanau) and multiplicative (Luong dot and general) attention over a padded memory.

For each query q (a decoder state) and the memory k_1..k_S of its sequence
(the encoder outputs, keys and values both), with S_b = lengths[b]:

    additive (Bahdanau et al. 2015): e_s = v . tanh(W_q q + W_k k_s + b)
    dot      (Luong et al. 2015):    e_s = q . k_s
    general  (Luong et al. 2015):    e_s = q . (W k_s)
    weights  a_s = softmax over s < S_b of e_s   (exactly 0 for s >= S_b)
    context  c = sum_s a_s k_s

    >>> import numpy as np, numgru
    >>> att = numgru.Attention(4, 6, score="additive", attention_size=5, seed=0)
    >>> query, memory = np.ones((2, 3, 4), np.float32), np.ones((2, 7, 6), np.float32)
    >>> context, weights = att(query, memory, lengths=[7, 2])
    >>> context.shape, weights.shape, float(weights[1, :, 2:].max())
    ((2, 3, 6), (2, 3, 7), 0.0)

Queries are batch-first (B, T_q, D_q), or one per sequence (B, D_q);
the memory is (B, S, D_k). ``backward(dcontext, dweights=None)`` returns
(dquery, dmemory) and adds the parameters' gradients into ``grads``. A
memory position past its sequence's length is never read: its weight is
exactly 0 and it gets exactly 0 gradient. NumPy products (BLAS) on the CPU.
"""
import numpy as np

from . import validation
from .grad_mode import grad_enabled
from .kernels import cpu
from .module import Module
from .threads import one_blas_thread, threads_for

__all__ = ["Attention", "SCORES"]

SCORES = ("additive", "dot", "general")


class Attention(Module):
    """Attention(query_size, memory_size, score="additive"|"dot"|"general", attention_size=None).

    Parameters (float arrays, in ``parameters()``):
    additive: ``query_weight`` (A, D_q), ``memory_weight`` (A, D_k), ``bias`` (A,), ``score_weight`` (A,),
    A = attention_size (default memory_size); general: ``weight`` (D_q, D_k); dot: none (D_q must equal D_k).
    """

    devices = ("cpu",)

    def __init__(self, query_size, memory_size, score="additive", attention_size=None, dtype="float32",
                 device="auto", seed=None):
        super().__init__(dtype, device, seed)
        self.query_size = validation.check_positive_int("query_size", query_size)
        self.memory_size = validation.check_positive_int("memory_size", memory_size)
        self.score = validation.check_choice("score", score, SCORES)
        if score == "additive":
            size = self.memory_size if attention_size is None else attention_size
            self.attention_size = validation.check_positive_int("attention_size", size)
            self._add_parameter("query_weight", (self.attention_size, self.query_size), self.query_size ** -0.5)
            self._add_parameter("memory_weight", (self.attention_size, self.memory_size), self.memory_size ** -0.5)
            self._add_parameter("bias", (self.attention_size,), self.memory_size ** -0.5)
            self._add_parameter("score_weight", (self.attention_size,), self.attention_size ** -0.5)
        else:
            if attention_size is not None:
                raise ValueError(f"attention_size applies to score='additive', not {score!r}")
            self.attention_size = None
            if score == "dot" and self.query_size != self.memory_size:
                raise ValueError(f"score='dot' needs query_size == memory_size, got {self.query_size} and "
                                 f"{self.memory_size}: use score='general' or 'additive'")
            if score == "general":
                self._add_parameter("weight", (self.query_size, self.memory_size), self.memory_size ** -0.5)
        self._cache = None

    def forward(self, query, memory, lengths=None, keys=None):
        """query (B, T_q, D_q) or (B, D_q), memory (B, S, D_k), lengths (B,) -> (context, weights).

        context: (B, T_q, D_k) (or (B, D_k)); weights: (B, T_q, S) (or (B, S)), 0 past each length.
        keys: ``project(memory)``, when the caller keeps it across calls on the same memory (a decoder,
        step by step); computed here otherwise.
        """
        query = validation.as_float_array("query", query, self.dtype)
        memory = validation.as_float_array("memory", memory, self.dtype)
        single = query.ndim == 2
        if single:
            query = query[:, None]
        if query.ndim != 3 or query.shape[-1] != self.query_size:
            raise ValueError(f"query must be (B, T_q, {self.query_size}) or (B, {self.query_size}), "
                             f"got shape {query.shape[1:] if single else query.shape}")
        B = query.shape[0]
        if memory.ndim != 3 or memory.shape[0] != B or memory.shape[-1] != self.memory_size or memory.shape[1] == 0:
            raise ValueError(f"memory must be (B={B}, S, {self.memory_size}) with S >= 1, got shape {memory.shape}")
        memory, valid = self._masked(memory, lengths)
        valid = valid[:, None, :]                                                   # (B, 1, S)
        with one_blas_thread():
            if keys is None:
                keys = self._project(memory)
            scores, extra = self._scores(query, keys)
            scores = np.where(valid, scores, -np.inf)
            shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
            weights = (shifted / shifted.sum(axis=-1, keepdims=True)).astype(self.dtype, copy=False)
            context = weights @ memory
        self._cache = dict(query=query, memory=memory, weights=weights, single=single, extra=extra) \
            if grad_enabled() else None
        if single:
            return context[:, 0], weights[:, 0]
        return context, weights

    def project(self, memory, lengths=None):
        """The memory's side of the scores, (B, S, ·), computed once per memory: the memory itself (dot),
        W k_s (general, D_q wide) or W_k k_s (additive, A wide); padded positions 0."""
        memory = validation.as_float_array("memory", memory, self.dtype)
        if memory.ndim != 3 or memory.shape[-1] != self.memory_size:
            raise ValueError(f"memory must be (B, S, {self.memory_size}), got shape {memory.shape}")
        with one_blas_thread():
            return self._project(self._masked(memory, lengths)[0])

    def _masked(self, memory, lengths):
        """(memory with 0 past each length, so padding is never read; valid (B, S) bools), lengths checked."""
        lengths = validation.check_lengths(lengths, memory.shape[0], memory.shape[1])
        valid = np.arange(memory.shape[1]) < lengths[:, None]
        return np.where(valid[..., None], memory, 0).astype(self.dtype, copy=False), valid

    def _project(self, memory):
        if self.score == "dot":
            return memory
        weight = self._params["weight"] if self.score == "general" else self._params["memory_weight"]
        flat = np.ascontiguousarray(memory.reshape(-1, self.memory_size))
        keys = cpu.matmul(flat, weight.T, None, threads_for(flat.size * weight.shape[0]))
        return keys.reshape(memory.shape[:2] + (weight.shape[0],))

    def _scores(self, query, keys):
        """Unmasked scores (B, T_q, S) from the memory's projection, and what the backward needs of them."""
        p = self._params
        if self.score != "additive":
            return query @ keys.transpose(0, 2, 1), keys
        hidden = np.tanh((query @ p["query_weight"].T)[:, :, None, :] + keys[:, None, :, :] + p["bias"])
        return hidden @ p["score_weight"], hidden                                  # hidden (B, T_q, S, A)

    def backward(self, dcontext, dweights=None):
        """Gradients of the last forward's context (and weights) -> (dquery, dmemory); adds into ``grads``."""
        if self._cache is None:
            raise RuntimeError("backward needs a forward first: call attention(query, memory, lengths) before "
                               "attention.backward(dcontext) (a forward under numgru.no_grad() keeps nothing)")
        c = self._cache
        query, memory, weights = c["query"], c["memory"], c["weights"]
        shape = weights.shape[:2] + (self.memory_size,)
        dcontext = validation.check_grad_output("dcontext", dcontext, shape[::2] if c["single"] else shape,
                                                self.dtype)
        if c["single"]:
            dcontext = dcontext[:, None]
        with one_blas_thread():
            dmemory = weights.transpose(0, 2, 1) @ dcontext                        # from context = weights @ memory
            dw = dcontext @ memory.transpose(0, 2, 1)
            if dweights is not None:
                dweights = validation.check_grad_output(
                    "dweights", dweights, weights.shape[::2] if c["single"] else weights.shape, self.dtype)
                dw = dw + (dweights[:, None] if c["single"] else dweights)
            dscores = weights * (dw - (weights * dw).sum(axis=-1, keepdims=True))   # softmax; 0 where masked
            dquery = self._scores_backward(dscores, query, memory, dmemory, c["extra"])
        return (dquery[:, 0] if c["single"] else dquery), dmemory

    def _scores_backward(self, dscores, query, memory, dmemory, extra):
        """dquery from dscores (B, T_q, S); adds the memory's share into dmemory and the parameters' into grads."""
        p, g = self._params, self.grads
        if self.score == "dot":
            dmemory += dscores.transpose(0, 2, 1) @ query
            return dscores @ memory
        if self.score == "general":
            keys = extra                                                           # W k_s, (B, S, D_q)
            dkeys = (dscores.transpose(0, 2, 1) @ query).reshape(-1, self.query_size)
            flat_memory = np.ascontiguousarray(memory.reshape(-1, self.memory_size))
            nchunks = threads_for(dkeys.size * self.memory_size)
            cpu.add_matmul_tn(dkeys, flat_memory, g["weight"], nchunks)
            dmemory += cpu.matmul(dkeys, p["weight"], None, nchunks).reshape(dmemory.shape)
            return dscores @ keys
        hidden = extra
        g["score_weight"] += np.einsum("bqs,bqsa->a", dscores, hidden)
        dpre = dscores[..., None] * p["score_weight"] * (1 - hidden * hidden)      # (B, T_q, S, A)
        dpre_query, dpre_memory = dpre.sum(axis=2), dpre.sum(axis=1)              # (B, T_q, A), (B, S, A)
        g["bias"] += dpre_query.sum(axis=(0, 1))
        g["query_weight"] += dpre_query.reshape(-1, self.attention_size).T @ query.reshape(-1, self.query_size)
        g["memory_weight"] += dpre_memory.reshape(-1, self.attention_size).T @ memory.reshape(-1, self.memory_size)
        dmemory += dpre_memory @ p["memory_weight"]
        return dpre_query @ p["query_weight"]

    def config(self):
        """The constructor arguments that rebuild this layer (used by ``numgru.save``)."""
        return dict(query_size=self.query_size, memory_size=self.memory_size, score=self.score,
                    attention_size=self.attention_size, dtype=self.dtype.name)

    def __repr__(self):
        size = f", attention_size={self.attention_size}" if self.attention_size else ""
        return (f"Attention({self.query_size}, {self.memory_size}, score='{self.score}'{size}, "
                f"dtype='{self.dtype.name}')")
