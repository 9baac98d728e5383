"""``GRUModel``: a GRU stack with a Linear head, the model ``numgru.fit`` and the CLI train.

It is a ``Module`` whose parameters are its layers' own arrays under the
prefixes ``gru.`` and ``head.`` (as a nested ``torch.nn.Module`` names them),
so one optimiser over ``[model]`` updates both layers in place. It runs on
the CPU (NumPy arrays end to end, as do ``Linear`` and the optimisers).
"""
import numpy as np

from . import validation
from .grad_mode import grad_enabled
from .gru import GRU
from .linear import Linear
from .module import Module

OUTPUTS = ("last", "all")


class GRUModel(Module):
    """GRU(input_size, hidden_size, num_layers) -> Linear(D*hidden_size, output_size), batch-first.

    ``output="last"`` (many-to-one): the head reads each sequence's state at its
    own last step (``lengths`` honoured; bidirectional: the forward
    direction's final state next to the reverse direction's), giving
    (B, output_size). ``output="all"`` (many-to-many): the head reads every
    step, giving (B, T, output_size); outputs past a sequence's length are the
    head's bias and get no gradient.

        >>> import numpy as np, numgru
        >>> model = numgru.GRUModel(2, 16, 1, seed=0)
        >>> model(np.zeros((4, 50, 2), np.float32)).shape
        (4, 1)
    """

    def __init__(self, input_size, hidden_size, output_size, num_layers=1, *, output="last",
                 bidirectional=False, dropout=0.0, reset_after=True, dtype="float32", device="auto", seed=None):
        super().__init__(dtype, device, seed)
        self.output = validation.check_choice("output", output, OUTPUTS)
        self.output_size = validation.check_positive_int("output_size", output_size)
        gru_seed, head_seed = (None, None) if seed is None else (
            int(s) for s in np.random.SeedSequence(seed).generate_state(2))
        self.gru = GRU(input_size, hidden_size, num_layers, batch_first=True, dropout=dropout,
                       bidirectional=bidirectional, reset_after=reset_after, dtype=self.dtype,
                       device=self.device, seed=gru_seed)
        D = self.gru.num_directions
        self.head = Linear(D * self.gru.hidden_size, self.output_size, dtype=self.dtype, device=self.device,
                           seed=head_seed)
        self._adopt_layers("gru", "head")
        self._cache = None

    input_size = property(lambda self: self.gru.input_size)
    hidden_size = property(lambda self: self.gru.hidden_size)
    num_layers = property(lambda self: self.gru.num_layers)

    def forward(self, x, lengths=None, check_finite=False):
        """x: (B, T, input_size), or one unbatched sequence (T, input_size); lengths: (B,) or None.

        Returns (B, output_size) for output="last", (B, T, output_size) for "all"
        (without the B axis for an unbatched x).
        """
        out, hn = self.gru(x, lengths=lengths, check_finite=check_finite)
        batched = out.ndim == 3
        D = self.gru.num_directions
        if self.output == "last":
            features = hn[-1] if D == 1 else np.concatenate([hn[-2], hn[-1]], axis=-1)
        else:
            features = out
        pred = self.head(features)
        mask = None
        if self.output == "all" and lengths is not None:
            T = out.shape[-2]
            mask = np.arange(T) < np.asarray(lengths).reshape(-1, 1)      # (B, T)
            if not batched:
                mask = mask[0]
        self._cache = dict(out_shape=out.shape, hn_shape=hn.shape, mask=mask) if grad_enabled() else None
        return pred

    def backward(self, dpred):
        """Gradient with respect to the last forward's prediction -> dx; adds into every parameter's grad."""
        if self._cache is None:
            raise RuntimeError("backward needs a forward first: call model(x) before model.backward(dpred) "
                               "(a forward under numgru.no_grad() keeps nothing for a backward)")
        cache = self._cache
        dfeatures = self.head.backward(dpred)
        H = self.gru.hidden_size
        dout = np.zeros(cache["out_shape"], self.dtype)
        if self.output == "last":
            dhn = np.zeros(cache["hn_shape"], self.dtype)
            if self.gru.num_directions == 1:
                dhn[-1] = dfeatures
            else:
                dhn[-2] = dfeatures[..., :H]
                dhn[-1] = dfeatures[..., H:]
            dx, _ = self.gru.backward(dout, dhn)
        else:
            if cache["mask"] is not None:
                dfeatures = dfeatures * cache["mask"][..., None]
            dx, _ = self.gru.backward(dfeatures)
        return dx

    def predict(self, x, lengths=None, batch_size=1024):
        """Predictions in eval mode (dropout off), computed ``batch_size`` sequences at a time."""
        batch_size = validation.check_positive_int("batch_size", batch_size)
        x = validation.as_float_array("x", x, self.dtype)
        if x.ndim != 3:
            return self._eval_forward(x, lengths)
        if lengths is not None:
            lengths = validation.check_lengths(lengths, x.shape[0], x.shape[1])
        preds = []
        for start in range(0, x.shape[0], batch_size):
            stop = start + batch_size
            preds.append(self._eval_forward(x[start:stop], None if lengths is None else lengths[start:stop]))
        return np.concatenate(preds, axis=0)

    def _eval_forward(self, x, lengths):
        with self._inference():
            return self.forward(x, lengths=lengths)

    def config(self):
        """The constructor arguments that rebuild this model (used by ``numgru.save``)."""
        return dict(input_size=self.gru.input_size, hidden_size=self.gru.hidden_size, output_size=self.output_size,
                    num_layers=self.gru.num_layers, output=self.output, bidirectional=self.gru.bidirectional,
                    dropout=self.gru.dropout, reset_after=self.gru.reset_after, dtype=self.dtype.name)

    def __repr__(self):
        c = self.config()
        return (f"GRUModel({c['input_size']}, {c['hidden_size']}, {c['output_size']}, num_layers={c['num_layers']}, "
                f"output='{c['output']}', bidirectional={c['bidirectional']}, dtype='{c['dtype']}')")
