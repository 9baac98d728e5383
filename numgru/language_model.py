"""``LanguageModel``: Embedding -> GRU stack -> Linear over the vocabulary, trained on one long text.

    >>> import numgru
    >>> corpus = "to be or not to be, that is the question. " * 40
    >>> vocab = numgru.text.Vocabulary.build([numgru.text.char_tokenize(corpus)])
    >>> lm = numgru.LanguageModel(vocab, embedding_dim=8, hidden_size=32, num_layers=1, seed=0)
    >>> history = lm.fit(corpus, batch_size=4, bptt=20, epochs=3, lr=1e-2, progress=False)
    >>> history.train_loss[-1] < history.train_loss[0]
    True
    >>> len(lm.generate("to be", 30, temperature=0.5, seed=0))
    30

Its parameters are its layers' own arrays under the prefixes ``embedding.``,
``gru.`` and ``head.`` (torch's names for a module with attributes
``embedding``, ``gru``, ``head``: such a torch model's state_dict loads as is,
and this one's loads into it). Inside, everything runs time-major: token ids
(B, T) are transposed to (T, B), the GRU runs with batch_first=False and the
head on (T*B, H) rows, so no float array is ever transposed. CPU only.

Text is tokenised with ``numgru.text`` ("char" or "word", ``lower``) and
encoded with the model's vocabulary: tokens it does not hold (characters
never seen when the vocabulary was built) become ``<unk>``, in training,
evaluation and prompts alike. Generation never draws a special token
(``<pad>``, ``<unk>``, ``<bos>``, ``<eos>``): they are not text.
"""
import math
import time

import numpy as np

from . import losses, text, validation
from .embedding import Embedding
from .grad_mode import grad_enabled
from .gru import GRU
from .kernels import cpu
from .linear import Linear
from .module import Module
from .optim import Adam, clip_grad_norm
from .threads import cpu_threads, one_blas_thread

__all__ = ["LanguageModel", "LMHistory"]

# Logits held at once while evaluating: (steps x streams x vocabulary) floats, 16 MB in float32.
_EVAL_LOGITS = 1 << 22


class LMHistory:
    """What ``LanguageModel.fit`` did, one entry per evaluation point (lists aligned).

    A point is recorded every ``eval_every`` windows, at the end of every
    epoch and when training stops. ``seconds`` counts training time only
    (evaluation excluded), so a curve against seconds compares training speed.
    """

    def __init__(self, unit):
        self.unit = unit            # "char" or "token": what the losses are per
        self.windows = []           # windows (optimiser steps) trained so far
        self.epochs = []            # epochs trained so far (a fraction within an epoch)
        self.seconds = []           # training seconds so far, evaluation excluded
        self.train_loss = []        # mean training nats per token over the windows since the previous point
        self.val_nats = []          # validation nats per token (None without validation text)
        self.stopped_by_time = False

    @property
    def val_bits(self):
        """Validation bits per token (nats / ln 2)."""
        return [None if v is None else v / math.log(2) for v in self.val_nats]

    @property
    def val_perplexity(self):
        """Validation perplexity per token, exp(nats)."""
        return [None if v is None else math.exp(v) for v in self.val_nats]

    def as_dict(self):
        return dict(unit=self.unit, windows=self.windows, epochs=self.epochs, seconds=self.seconds,
                    train_loss=self.train_loss, val_nats=self.val_nats, val_bits=self.val_bits,
                    val_perplexity=self.val_perplexity, stopped_by_time=self.stopped_by_time)

    def __len__(self):
        return len(self.windows)

    def __repr__(self):
        if not self.windows:
            return "LMHistory(no points)"
        val = "" if self.val_nats[-1] is None else f", val {self.val_nats[-1]:.4f}"
        return (f"LMHistory({self.windows[-1]} windows, {self.epochs[-1]:.3g} epochs, {self.seconds[-1]:.1f} s, "
                f"train {self.train_loss[-1]:.4f}{val} nats/{self.unit})")


class LanguageModel(Module):
    """Next-token model over ``vocabulary``: Embedding(V, embedding_dim) -> GRU(num_layers) -> Linear(H, V).

    vocabulary: a ``numgru.text.Vocabulary`` (or its ``to_list()``), with at
    least one token besides the specials. tokenizer, lower: how text is cut
    into its tokens (``numgru.text.tokenize``). dropout: between GRU layers,
    as ``torch.nn.GRU``'s. The GRU is PyTorch's (reset_after).
    """

    devices = ("cpu",)

    def __init__(self, vocabulary, embedding_dim=64, hidden_size=256, num_layers=2, dropout=0.0, tokenizer="char",
                 lower=False, dtype="float32", device="auto", seed=None):
        super().__init__(dtype, device, seed)
        self.vocabulary = _as_vocabulary(vocabulary)
        self.tokenizer = validation.check_choice("tokenizer", tokenizer, text.TOKENIZERS)
        if not isinstance(lower, (bool, np.bool_)):
            raise TypeError(f"lower must be True or False, got {lower!r}")
        self.lower = bool(lower)
        V = len(self.vocabulary)
        seeds = (None,) * 3 if seed is None else tuple(int(s) for s in np.random.SeedSequence(seed).generate_state(3))
        self.embedding = Embedding(V, embedding_dim, dtype=self.dtype, device=self.device, seed=seeds[0])
        self.gru = GRU(self.embedding.embedding_dim, hidden_size, num_layers, dropout=dropout, dtype=self.dtype,
                       device=self.device, seed=seeds[1])
        self.head = Linear(self.gru.hidden_size, V, dtype=self.dtype, device=self.device, seed=seeds[2])
        self._adopt_layers("embedding", "gru", "head")
        self._allowed = np.ones(V, bool)                      # what generation may draw: no special
        self._allowed[[self.vocabulary[s] for s in text.SPECIALS]] = False
        self._cache = None

    embedding_dim = property(lambda self: self.embedding.embedding_dim)
    hidden_size = property(lambda self: self.gru.hidden_size)
    num_layers = property(lambda self: self.gru.num_layers)
    dropout = property(lambda self: self.gru.dropout)

    # ------------------------------------------------------------------ network

    def forward(self, ids, h0=None):
        """ids: integer token ids (B, T) -> (logits (B, T, V), hn (num_layers, B, H)).

        h0: (num_layers, B, H) or None (zeros). The logits are a transposed
        view of the time-major result (no copy).
        """
        ids = validation._to_numpy("ids", ids)
        if ids.ndim != 2:
            raise ValueError(f"ids must be (B, T) token ids, got shape {ids.shape}")
        logits, hn = self._forward(ids.T, h0)
        self._cache = ids.shape if grad_enabled() else None
        return logits.transpose(1, 0, 2), hn

    def backward(self, dlogits):
        """BPTT through the last forward from dL/dlogits (B, T, V); adds into every parameter's grad.

        No gradient flows into h0 (truncated BPTT never needs one); returns None.
        """
        if self._cache is None:
            raise RuntimeError("backward needs a forward first: call lm(ids) before lm.backward(dlogits) "
                               "(a forward under numgru.no_grad() keeps nothing for a backward)")
        B, T = self._cache
        dlogits = validation.check_grad_output("dlogits", dlogits, (B, T, len(self.vocabulary)), self.dtype)
        self._backward(dlogits.transpose(1, 0, 2))

    def _forward(self, ids_tb, h0):
        """Time-major: ids (T, B) -> logits (T, B, V) C-contiguous, hn."""
        out, hn = self.gru(self.embedding(ids_tb), h0)
        return self.head(out), hn

    def _backward(self, dlogits_tb):
        dx, _ = self.gru.backward(self.head.backward(dlogits_tb))
        self.embedding.backward(dx)

    # --------------------------------------------------------------------- text

    def encode(self, s, name="text"):
        """A str -> its token ids (int64), with the model's tokenizer; unseen tokens become <unk>."""
        s = validation.check_text(name, s)
        try:
            tokens = text.tokenize(s, self.tokenizer, self.lower)
        except ValueError as err:           # word-level: only white space
            raise ValueError(f"{name}: {err}") from None
        return self.vocabulary.encode(tokens)

    def decode(self, ids):
        """Token ids -> text (joined as the tokenizer cut it: "" for char, " " for word)."""
        return text.detokenize(self.vocabulary.decode(ids), self.tokenizer)

    # ----------------------------------------------------------------- training

    def fit(self, train_text, validation_text=None, *, batch_size=64, bptt=100, epochs=1, lr=2e-3, lr_end=None,
            clip_norm=5.0, time_limit=None, eval_every=None, seed=0, progress=True):
        """Truncated BPTT over one text, as char-rnn trains; returns an ``LMHistory``.

        The text is encoded once and cut into ``batch_size`` contiguous streams
        (stream b holds tokens [b*n, (b+1)*n), n = (tokens - 1) // batch_size;
        the last few tokens that do not fill a stream are left out). Each
        epoch reads them in windows of ``bptt`` steps, in order, the state
        carried from one window into the next with no gradient through the
        cut, and starts from a zero state. One Adam step a window, after
        clipping the global gradient norm to ``clip_norm`` (None: no
        clipping). Training stops after ``epochs`` epochs (None: no limit) or
        once ``time_limit`` seconds of training (evaluation excluded) have
        passed, whichever comes first. The learning rate is ``lr``
        throughout, or with ``lr_end`` falls linearly from ``lr`` to
        ``lr_end`` as the budget is spent: by the fraction of the windows of
        ``epochs`` done or of ``time_limit`` passed, whichever is further
        along (before each window). validation_text: scored by
        ``evaluate`` every ``eval_every`` windows (None: only at the end of
        each epoch) and at the end. seed: the dropout masks' generator.
        progress: a tqdm bar with the training and validation nats per token.
        """
        batch_size = validation.check_positive_int("batch_size", batch_size)
        bptt = validation.check_positive_int("bptt", bptt)
        if epochs is not None:
            epochs = validation.check_positive_int("epochs", epochs)
        lr = validation.check_real("lr", lr, low=0.0, low_open=True)
        if lr_end is not None:
            lr_end = validation.check_real("lr_end", lr_end, low=0.0)
        if clip_norm is not None:
            clip_norm = validation.check_real("clip_norm", clip_norm, low=0.0, low_open=True)
        if time_limit is not None:
            time_limit = validation.check_real("time_limit", time_limit, low=0.0, low_open=True)
        if epochs is None and time_limit is None:
            raise ValueError("epochs and time_limit cannot both be None: training would never stop")
        if eval_every is not None:
            eval_every = validation.check_positive_int("eval_every", eval_every)
        ids = self.encode(train_text, "train_text")
        n = (len(ids) - 1) // batch_size
        if n < 1:
            raise ValueError(f"train_text must hold more than batch_size={batch_size} tokens, got {len(ids)}")
        val_ids = None if validation_text is None else self.encode(validation_text, "validation_text")
        if val_ids is not None and len(val_ids) < 2:
            raise ValueError("validation_text must hold at least 2 tokens (one to predict from, one to predict)")
        if seed is not None:
            self.gru._rng = np.random.default_rng(seed)
        # (n, B): column b is stream b; the targets are the next tokens.
        inputs = np.ascontiguousarray(ids[:batch_size * n].reshape(batch_size, n).T)
        targets = np.ascontiguousarray(ids[1:batch_size * n + 1].reshape(batch_size, n).T)
        starts = range(0, n, bptt)
        optimizer = Adam([self], lr=lr)
        history = LMHistory("char" if self.tokenizer == "char" else "token")
        bar = _progress_bar(None if epochs is None else epochs * len(starts), progress)
        trained = dict(windows=0, seconds=0.0, loss=0.0, tokens=0)

        def record(epoch_fraction):
            val = None if val_ids is None else self._mean_nll(val_ids)
            history.windows.append(trained["windows"])
            history.epochs.append(epoch_fraction)
            history.seconds.append(trained["seconds"])
            history.train_loss.append(trained["loss"] / trained["tokens"])
            history.val_nats.append(val)
            trained["loss"] = trained["tokens"] = 0
            if bar is not None:
                bar.set_postfix_str(_postfix(history, history.train_loss[-1]))

        try:
            with one_blas_thread():
                epoch = 0
                while epochs is None or epoch < epochs:
                    h = None
                    self.train()
                    for w, start in enumerate(starts):
                        began = time.perf_counter()
                        if lr_end is not None:
                            spent = max(0.0 if epochs is None else trained["windows"] / (epochs * len(starts)),
                                        0.0 if time_limit is None else trained["seconds"] / time_limit)
                            optimizer.lr = lr + (lr_end - lr) * min(spent, 1.0)
                        optimizer.zero_grad()
                        logits, h = self._forward(inputs[start:start + bptt], h)
                        value, dlogits = losses.cross_entropy(logits, targets[start:start + bptt])
                        if not math.isfinite(value):
                            raise FloatingPointError(f"training diverged: the loss is {value} at window "
                                                     f"{trained['windows'] + 1}; lower lr or clip_norm")
                        self._backward(dlogits)
                        if clip_norm is not None:
                            clip_grad_norm([self], clip_norm)
                        optimizer.step()
                        trained["seconds"] += time.perf_counter() - began
                        trained["windows"] += 1
                        trained["loss"] += value * dlogits.shape[0] * batch_size
                        trained["tokens"] += dlogits.shape[0] * batch_size
                        if bar is not None:
                            bar.update(1)
                            bar.set_postfix_str(_postfix(history, value), refresh=False)
                        out_of_time = time_limit is not None and trained["seconds"] >= time_limit
                        last = w == len(starts) - 1
                        if last or out_of_time or (eval_every and trained["windows"] % eval_every == 0):
                            record(epoch + (w + 1) / len(starts))
                        if out_of_time:
                            history.stopped_by_time = True
                            return history
                    epoch += 1
        finally:
            if bar is not None:
                bar.close()
            self.drop_cache()
            self.train()
        return history

    # --------------------------------------------------------------- evaluation

    def evaluate(self, text, streams=64, warmup=128):
        """Nats, perplexity and bits per token of predicting each token of ``text`` from the ones before it.

        Every token but the first is predicted once. The text is read as
        ``streams`` contiguous pieces side by side (a batch), each with its
        state carried through it; every piece but the first starts reading
        ``warmup`` tokens early, unscored, so that its state is warmed up on
        the text before it. ``streams=1`` reads the whole text as one stream
        (the exact sequential score, at batch size 1, slower). Eval mode
        (dropout off). Returns dict(nats=..., perplexity=..., bits=...).
        """
        nats = self._mean_nll(self.encode(text), streams, warmup)
        return dict(nats=nats, perplexity=math.exp(nats), bits=nats / math.log(2))

    def _mean_nll(self, ids, streams=64, warmup=128):
        streams = validation.check_positive_int("streams", streams)
        warmup = validation.check_nonnegative_int("warmup", warmup)
        M = len(ids) - 1                                  # tokens predicted
        if M < 1:
            raise ValueError("text must hold at least 2 tokens (one to predict from, one to predict)")
        S = min(streams, M)
        bounds = [b * M // S for b in range(S + 1)]
        firsts = [max(0, lo - warmup) for lo in bounds[:-1]]
        T = max(hi - first for first, hi in zip(firsts, bounds[1:]))
        inputs = np.zeros((T, S), np.int64)
        targets = np.zeros((T, S), np.int64)
        scored = np.zeros((T, S), bool)
        for b, (first, lo, hi) in enumerate(zip(firsts, bounds[:-1], bounds[1:])):
            inputs[:hi - first, b] = ids[first:hi]
            targets[:hi - first, b] = ids[first + 1:hi + 1]
            scored[lo - first:hi - first, b] = True
        chunk = max(1, _EVAL_LOGITS // (S * len(self.vocabulary)))
        total, h = 0.0, None
        with self._inference(), one_blas_thread():
            for start in range(0, T, chunk):
                logits, h = self._forward(inputs[start:start + chunk], h)
                counted = scored[start:start + chunk]
                if counted.any():
                    total += losses.cross_entropy(logits, targets[start:start + chunk], counted,
                                                  reduction="sum")[0]
        return total / M

    # --------------------------------------------------------------- generation

    def generate(self, prompt, length, temperature=1.0, top_k=None, seed=None):
        """``length`` new tokens after ``prompt``, as text (the new text only; word-level: joined by spaces).

        The prompt (a non-empty str; tokens the vocabulary lacks read as
        <unk>) runs once through the GRU; then one compiled kernel draws every
        new token, carrying the state: each from softmax(logits /
        temperature) over the non-special tokens, restricted to the top_k
        largest (None: all; more than the vocabulary: all; ties with the
        k-th are kept), by inverse CDF with uniforms drawn on the host from
        ``np.random.default_rng(seed)``: the same seed gives the same text.
        top_k=1 is greedy decoding.
        """
        length = validation.check_nonnegative_int("length", length)
        temperature = validation.check_real("temperature", temperature, low=0.0, low_open=True)
        if top_k is not None:
            top_k = validation.check_positive_int("top_k", top_k)
        ids = self.encode(prompt, "prompt")
        uniforms = np.random.default_rng(seed).random(length)
        return self.decode(self._continue(ids, uniforms, temperature, top_k)[0])

    def _continue(self, ids, uniforms, temperature, top_k):
        """(new token ids, the logits each was drawn from (N, V)) after the prompt ``ids``."""
        L, H = self.num_layers, self.hidden_size
        p = self.parameters()
        with self._inference(), one_blas_thread():
            h = np.zeros((L, H), self.dtype)
            if len(ids) > 1:                          # the prompt but its last token, which the kernel reads
                h = self.gru(self.embedding(ids[:-1, None]))[1][:, 0]
            table = self.embedding.weight @ p["gru.weight_ih_l0"].T + p["gru.bias_ih_l0"]

        def stacked(name, layers, shape):
            arrays = [p[f"gru.{name}_l{k}"] for k in layers]
            return np.stack(arrays) if arrays else np.empty((0,) + shape, self.dtype)

        top_k = min(top_k or len(self.vocabulary), len(self.vocabulary))
        with cpu_threads(1, H, 1, self.dtype.itemsize) as (nchunks, _):
            return cpu.generate(table, stacked("weight_ih", range(1, L), (3 * H, H)),
                                stacked("bias_ih", range(1, L), (3 * H,)), stacked("weight_hh", range(L), ()),
                                stacked("bias_hh", range(L), ()), p["head.weight"], p["head.bias"],
                                np.ascontiguousarray(h), ids[-1], uniforms, temperature, top_k, self._allowed,
                                nchunks)

    # ------------------------------------------------------------------ files

    def config(self):
        """The constructor arguments that rebuild this model (used by ``numgru.save``): the vocabulary included."""
        return dict(vocabulary=self.vocabulary.to_list(), embedding_dim=self.embedding_dim,
                    hidden_size=self.hidden_size, num_layers=self.num_layers, dropout=self.dropout,
                    tokenizer=self.tokenizer, lower=self.lower, dtype=self.dtype.name)

    def explain_shapes(self, shapes):
        """What is wrong with saved parameter ``shapes`` (name -> list) for this model, as the start of
        ``numgru.load``'s error: a vocabulary whose size is not the embedding's, or nothing ('')."""
        rows = shapes.get("embedding.weight", [None])[0]
        if rows == len(self.vocabulary):
            return ""
        return f"the vocabulary in its config holds {len(self.vocabulary)} tokens but the embedding has {rows} rows; "

    def __repr__(self):
        return (f"LanguageModel({len(self.vocabulary)} tokens ({self.tokenizer}), embedding_dim={self.embedding_dim}, "
                f"hidden_size={self.hidden_size}, num_layers={self.num_layers}, dropout={self.dropout}, "
                f"dtype='{self.dtype.name}')")


def _as_vocabulary(vocabulary):
    """A Vocabulary, or the list ``Vocabulary.to_list`` gives (a saved model's config), with a real token."""
    if isinstance(vocabulary, (list, tuple)):
        vocabulary = text.Vocabulary.from_list(list(vocabulary))
    elif not isinstance(vocabulary, text.Vocabulary):
        raise TypeError(f"vocabulary must be a numgru.text.Vocabulary or its to_list(), "
                        f"got {type(vocabulary).__name__}")
    if len(vocabulary) <= len(text.SPECIALS):
        raise ValueError(f"vocabulary must hold a token besides the specials {text.SPECIALS}, got none")
    return vocabulary


def _postfix(history, loss):
    val = history.val_nats[-1] if history.val_nats else None
    return f"train {loss:.3f} nats/{history.unit}" + ("" if val is None else f", val {val:.3f}")


def _progress_bar(total, progress):
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="windows", unit=" windows", dynamic_ncols=True, leave=True, mininterval=0.5)
