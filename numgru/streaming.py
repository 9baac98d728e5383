"""``GRUStream``: online inference that carries each stream's state from call to call."""
import numpy as np

from . import validation
from .devices import lengths_to_host
from .functional import stream_layer
from .gru import GRU, GRUCell


class GRUStream:
    """Stateful streaming inference with a ``GRU`` or ``GRUCell``, for ``batch_size`` independent streams.

    Feed each new chunk of steps as it arrives; the stream keeps the state::

        >>> import numpy as np, numgru
        >>> gru = numgru.GRU(3, 8, num_layers=2, seed=0)
        >>> stream = numgru.GRUStream(gru, batch_size=4)
        >>> x = np.random.default_rng(0).standard_normal((10, 4, 3)).astype(np.float32)
        >>> parts = [stream(x[:1])[0], stream(x[1:7])[0], stream(x[7:])[0]]
        >>> whole, _ = numgru.GRUStream(gru, batch_size=4)(x)
        >>> bool((np.concatenate(parts) == whole).all())
        True

    On the CPU, any cut of a sequence into chunks (down to single steps) gives
    bit-identical outputs: each step projects its own input, so no step's
    numbers depend on its neighbours in a call. ``GRU.forward`` projects all
    steps in one GEMM instead, so a stream agrees with it to rounding (a few
    ulp), not bit for bit.

    Chunks are laid out as the model's forward takes them: (T, B, I), or
    (B, T, I) with ``batch_first``; unbatched (T, I) when ``batch_size`` is 1.
    ``lengths`` (B,) in [0, T] says how many steps of a chunk are real for each
    stream: a stream with fewer (or none) keeps its state after its last real
    step, and its outputs past it are zero. ``step(x_t)`` is the one-step form
    ((B, I) -> (B, H)), with the least overhead per call.

    Inference only: dropout is off and nothing is kept for a backward. The
    stream reads the model's live parameters at each call (training between
    calls is seen); it runs on the CPU, and a bidirectional GRU cannot stream
    (its reverse direction starts at the end of the sequence).
    """

    def __init__(self, model, batch_size=1, h0=None):
        if isinstance(model, GRU):
            if model.bidirectional:
                raise ValueError("model is a bidirectional GRU, which cannot stream: its reverse direction "
                                 "starts from the end of the sequence; use a unidirectional GRU")
            self._names = [tuple(f"{w}_l{layer}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
                           for layer in range(model.num_layers)]
            self.batch_first = model.batch_first
        elif isinstance(model, GRUCell):
            self._names = [("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            self.batch_first = False
        else:
            raise TypeError(f"model must be a numgru.GRU or numgru.GRUCell, got {type(model).__name__}")
        if model.device != "cpu":
            raise ValueError(f"GRUStream runs on the CPU, but model is on {model.device!r}: "
                             "move it with model.to('cpu')")
        self.model = model
        self.batch_size = validation.check_positive_int("batch_size", batch_size)
        self.dtype = model.dtype
        self.input_size = model.input_size
        self.hidden_size = model.hidden_size
        self.num_layers = len(self._names)
        self._no_bias = np.zeros(3 * self.hidden_size, self.dtype)
        self._state = np.zeros((self.num_layers, self.batch_size, self.hidden_size), self.dtype)
        self._one_step = np.ones(self.batch_size, np.int64)     # step()'s lengths (the kernels never write it)
        if h0 is not None:
            self.state = h0

    @property
    def state(self):
        """The current state of every layer and stream, (num_layers, batch_size, H) (a copy)."""
        return self._state.copy()

    @state.setter
    def state(self, h):
        self._state[...] = validation.check_state("state", h, self._state.shape, self.dtype)

    def reset(self, streams=None):
        """Start streams afresh (zero state): all of them, or those whose indices are given."""
        if streams is None:
            self._state.fill(0)
            return
        index = validation._to_numpy("streams", streams).reshape(-1)
        if index.dtype.kind not in "iu":
            raise TypeError(f"streams must be integer indices, got dtype {index.dtype.name}")
        if index.size and (index.min() < -self.batch_size or index.max() >= self.batch_size):
            raise ValueError(f"streams must be indices in [0, {self.batch_size}), got {index.tolist()}")
        self._state[:, index] = 0

    def __call__(self, x, lengths=None, check_finite=False):
        """Run a chunk; returns (out, hn) as the model's forward would for this chunk."""
        x, batched = validation.check_sequence(x, self.input_size, self.batch_first, self.dtype, check_finite)
        T, B, _ = x.shape
        if B != self.batch_size:
            raise ValueError(f"x must hold batch_size={self.batch_size} streams, got {B}")
        lengths = validation.check_lengths(lengths_to_host(lengths), B, T, minimum=0)
        out = self._run(np.ascontiguousarray(x), lengths)
        if not batched:
            return out[:, 0], self._state[:, 0].copy()
        if self.batch_first:
            out = out.transpose(1, 0, 2)
        return out, self._state.copy()

    def step(self, x_t, check_finite=False):
        """One step for every stream: x_t (B, I) (or (I,) when batch_size is 1) -> the last layer's h (B, H)."""
        if not (type(x_t) is np.ndarray and x_t.dtype == self.dtype and x_t.flags.c_contiguous
                and x_t.shape == (self.batch_size, self.input_size)) or check_finite:
            x_t, batched = validation.check_step(x_t, self.input_size, self.dtype, check_finite, "x_t")
            if x_t.shape[1] != self.batch_size:
                raise ValueError(f"x_t must hold batch_size={self.batch_size} streams, got {x_t.shape[1]}")
            if not batched:
                return self._run(np.ascontiguousarray(x_t), self._one_step)[0, 0]
            x_t = np.ascontiguousarray(x_t[0])
        return self._run(x_t.reshape(1, self.batch_size, self.input_size), self._one_step)[0]

    def _run(self, x, lengths):
        """x (T, B, I) C-contiguous through every layer; updates the state; returns the last layer's out."""
        params = self.model.parameters()
        reset_after = self.model.reset_after
        for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(self._names):
            x = stream_layer(
                x, params[w_ih], params[w_hh], params.get(b_ih, self._no_bias), params.get(b_hh, self._no_bias),
                self._state[layer], lengths, reset_after)
        return x
