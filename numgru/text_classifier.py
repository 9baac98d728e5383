"""``TextClassifierModel``: Embedding -> GRU -> pooling over each text's own steps -> Linear, on strings.

    >>> import numgru
    >>> from numgru import text
    >>> texts = ["a fine film", "dull and slow", "fine, fine acting", "slow"]
    >>> vocab = text.Vocabulary.build(text.word_tokenize(s) for s in texts)
    >>> model = numgru.TextClassifierModel(vocab, 2, embedding_dim=8, hidden_size=8, classes=["neg", "pos"], seed=0)
    >>> history = model.fit(texts, [1, 0, 1, 0], epochs=30, lr=0.03, batch_size=4, seed=0, progress=False)
    >>> model.predict_texts(["fine acting", "so slow"])
    ['pos', 'neg']

A ``Module`` whose parameters are its layers' own arrays under the prefixes
``embedding.``, ``gru.`` and ``head.`` (as a nested ``torch.nn.Module`` names
them), so one optimiser over ``[model]`` updates all three in place. Token
ids are batch-first ``(B, T)`` with ``lengths`` ``(B,)``; inside, the
embedding is looked up time-major (``ids.T``) so that the GRU reads its
``(T, B, E)`` vectors without a copy.

Pooling reads each text's own steps only, so padding never changes a
result: ``"max"`` and ``"mean"`` take the maximum and the mean of the GRU's
outputs over steps ``0 .. lengths[b]-1``; ``"last"`` takes the final states
(bidirectional: the forward direction's state at the last real step next to
the reverse direction's state at step 0, i.e. ``hn`` of the top layer).

Texts are tokenised by ``numgru.text.tokenize(s, tokenizer, lower)`` and
encoded by the vocabulary: tokens never seen when it was built become
``<unk>``. An empty string (or, for words, one of white space only) is refused
with a ``ValueError`` naming it. It runs on the CPU.
"""
import numpy as np

from . import losses, text, threads, validation
from .embedding import Embedding
from .grad_mode import grad_enabled
from .gru import GRU
from .kernels import cpu
from .language_model import LanguageModel, _as_vocabulary
from .linear import Linear
from .module import Module
from .threads import one_blas_thread
from .training import fit_rows

__all__ = ["TextClassifierModel", "POOLINGS", "EMBEDDING_INIT_STD"]

POOLINGS = ("max", "mean", "last")

# The embedding starts at N(0, 0.1^2), not torch's N(0, 1) (Keras starts at U(-0.05, 0.05)): unit-sized
# random vectors are features a GRU can memorise a small training set with. On the 3,000 review
# sentences (3-fold twice, 2,000 training sentences, the defaults of numgru.sklearn.TextClassifier)
# N(0, 1) gave 0.767 accuracy, N(0, 0.1^2) 0.815 (TF-IDF + logistic regression: 0.812).
EMBEDDING_INIT_STD = 0.1

PREDICT_BATCH = 256


def _check_classes(classes, num_classes):
    """None, or ``num_classes`` distinct JSON-able labels (str, int, float, bool) -> list of Python values."""
    if classes is None:
        return None
    values = np.asarray(classes).tolist() if not isinstance(classes, (list, tuple)) else list(classes)
    values = [value.item() if isinstance(value, np.generic) else value for value in values]
    if len(values) != num_classes:
        raise ValueError(f"classes must hold num_classes={num_classes} labels, got {len(values)}")
    for i, value in enumerate(values):
        if not isinstance(value, (str, int, float, bool)):
            raise TypeError(f"classes[{i}] must be a str, int, float or bool (they are stored as JSON), "
                            f"got {type(value).__name__} {value!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"classes must be distinct, got {values}")
    return values


class TextClassifierModel(Module):
    """Embedding(len(vocabulary), embedding_dim) -> GRU(embedding_dim, hidden_size, num_layers) -> pooling
    -> Linear(D * hidden_size, num_classes), one set of logits per text.

    vocabulary: a ``numgru.text.Vocabulary`` (or its ``to_list()``); its
    ``<pad>`` (id 0) is the embedding's ``padding_idx``. tokenizer, lower:
    how ``encode`` and ``predict_texts`` turn strings into tokens (as the
    vocabulary was built). classes: the label of each output, stored in the
    model file (str, int, float or bool), or None (labels are 0..C-1).
    dropout: on the pooled features, and between GRU layers when
    ``num_layers > 1``; embedding_dropout: on the embedded vectors. Both
    only in training mode.
    """

    devices = ("cpu",)

    def __init__(self, vocabulary, num_classes, embedding_dim=128, hidden_size=128, num_layers=1, bidirectional=True,
                 pooling="max", dropout=0.5, embedding_dropout=0.3, tokenizer="word", lower=True, classes=None,
                 dtype="float32", device="auto", seed=None):
        super().__init__(dtype, device, seed)
        self.vocabulary = vocabulary = _as_vocabulary(vocabulary)
        self.num_classes = validation.check_positive_int("num_classes", num_classes)
        self.pooling = validation.check_choice("pooling", pooling, POOLINGS)
        self.dropout = validation.check_dropout(dropout)
        self.embedding_dropout = validation.check_real("embedding_dropout", embedding_dropout, low=0.0, high=1.0,
                                                       high_open=True)
        self.tokenizer = validation.check_choice("tokenizer", tokenizer, text.TOKENIZERS)
        if not isinstance(lower, (bool, np.bool_)):
            raise TypeError(f"lower must be True or False, got {lower!r}")
        self.lower = bool(lower)
        self.classes = _check_classes(classes, self.num_classes)
        embedding_seed, gru_seed, head_seed = (None, None, None) if seed is None else (
            int(s) for s in np.random.SeedSequence(seed).generate_state(3))
        self.embedding = Embedding(len(vocabulary), embedding_dim, padding_idx=vocabulary.pad_index,
                                   dtype=self.dtype, device=self.device, seed=embedding_seed)
        self.embedding.weight[...] *= self.dtype.type(EMBEDDING_INIT_STD)
        num_layers = validation.check_positive_int("num_layers", num_layers)
        self.gru = GRU(self.embedding.embedding_dim, hidden_size, num_layers,
                       dropout=self.dropout if num_layers > 1 else 0.0, bidirectional=bidirectional,
                       dtype=self.dtype, device=self.device, seed=gru_seed)
        D = self.gru.num_directions
        self.head = Linear(D * self.gru.hidden_size, self.num_classes, dtype=self.dtype, device=self.device,
                           seed=head_seed)
        self._adopt_layers("embedding", "gru", "head")
        self._cache = None

    embedding_dim = property(lambda self: self.embedding.embedding_dim)
    hidden_size = property(lambda self: self.gru.hidden_size)
    num_layers = property(lambda self: self.gru.num_layers)
    bidirectional = property(lambda self: self.gru.bidirectional)

    # ------------------------------------------------------------------ the network

    def forward(self, ids, lengths=None):
        """ids: (B, T) token ids, batch-first; lengths: (B,) real steps of each row (None: all T) -> logits (B, C).

        Ids past a row's length are never read (any valid id may sit there).
        """
        ids = validation.check_ids("ids", ids, self.embedding.num_embeddings)
        if ids.ndim != 2 or 0 in ids.shape:
            raise ValueError(f"ids must be 2-D (B, T) with at least one row and one step, got shape {ids.shape}")
        B, T = ids.shape
        lengths = validation.check_lengths(lengths, B, T)
        keep = grad_enabled()
        training = self.training
        x = self.embedding(ids.T)                                        # (T, B, E), C-contiguous
        embedding_mask = None
        if training and self.embedding_dropout > 0:
            embedding_mask = self._dropout_mask(x.shape, self.embedding_dropout)
            x *= embedding_mask
        out, hn = self.gru(x, lengths=lengths)                           # (T, B, D*H), (L*D, B, H)
        features, argmax = self._pool(out, hn, lengths)
        feature_mask = None
        if training and self.dropout > 0:
            feature_mask = self._dropout_mask(features.shape, self.dropout)
            features = features * feature_mask
        logits = self.head(features)
        self._cache = dict(lengths=lengths, out_shape=out.shape, hn_shape=hn.shape, argmax=argmax,
                           embedding_mask=embedding_mask, feature_mask=feature_mask) if keep else None
        return logits

    def _pool(self, out, hn, lengths):
        """(features (B, D*H), argmax (B, D*H) of "max" pooling or None) over each sequence's own steps."""
        if self.pooling == "last":
            D = self.gru.num_directions
            return (hn[-1] if D == 1 else np.concatenate([hn[-2], hn[-1]], axis=-1)), None
        nchunks = threads.threads_for(out.size)
        if self.pooling == "mean":
            return cpu.mean_pool(np.ascontiguousarray(out), lengths, nchunks), None
        return cpu.max_pool(np.ascontiguousarray(out), lengths, nchunks)

    def backward(self, dlogits):
        """Gradient with respect to the last forward's logits; adds into every parameter's grad. Returns None."""
        if self._cache is None:
            raise RuntimeError("backward needs a forward first: call model(ids, lengths) before "
                               "model.backward(dlogits) (a forward under numgru.no_grad() keeps nothing for a backward)")
        cache = self._cache
        dfeatures = self.head.backward(dlogits)
        if cache["feature_mask"] is not None:
            dfeatures = dfeatures * cache["feature_mask"]
        T = cache["out_shape"][0]
        lengths = cache["lengths"]
        dhn = None
        if self.pooling == "last":
            dout = np.zeros(cache["out_shape"], self.dtype)
            dhn = np.zeros(cache["hn_shape"], self.dtype)
            H = self.gru.hidden_size
            if self.gru.num_directions == 1:
                dhn[-1] = dfeatures
            else:
                dhn[-2] = dfeatures[:, :H]
                dhn[-1] = dfeatures[:, H:]
        elif self.pooling == "mean":
            dout = cpu.mean_pool_backward(lengths, dfeatures, T, threads.threads_for(dfeatures.size * T))
        else:
            dout = cpu.max_pool_backward(cache["argmax"], dfeatures, T, threads.threads_for(dfeatures.size * T))
        dx, _ = self.gru.backward(dout, dhn)
        if cache["embedding_mask"] is not None:
            dx *= cache["embedding_mask"]
        self.embedding.backward(dx)

    # ------------------------------------------------------------------ text in, labels out

    def encode(self, texts, max_len=None):
        """Texts -> (ids int64 (B, T), lengths int64 (B,)), padded with ``<pad>``; ``max_len`` keeps the first tokens."""
        return self._encode("texts", texts, max_len)

    def _encode(self, name, texts, max_len):
        """``encode`` with errors naming the argument ``name``."""
        tokenized = text.tokenize_texts(name, texts, self.tokenizer, self.lower)
        return text.pad([self.vocabulary.encode(tokens) for tokens in tokenized], self.vocabulary.pad_index,
                        max_len=max_len)

    def predict_logits(self, ids, lengths=None, batch_size=PREDICT_BATCH):
        """Logits (B, C) in eval mode (dropout off), ``batch_size`` rows at a time, the rows of similar
        length together (each batch is cut to its longest row)."""
        batch_size = validation.check_positive_int("batch_size", batch_size)
        ids = validation.check_ids("ids", ids, self.embedding.num_embeddings)
        if ids.ndim != 2:
            raise ValueError(f"ids must be 2-D (B, T), got shape {ids.shape}")
        lengths = validation.check_lengths(lengths, ids.shape[0], ids.shape[1])
        order = np.argsort(lengths, kind="stable")
        logits = np.empty((len(ids), self.num_classes), self.dtype)
        with self._inference(), one_blas_thread():
            for start in range(0, len(ids), batch_size):
                rows = order[start:start + batch_size]
                steps = lengths[rows].max()
                logits[rows] = self.forward(ids[rows, :steps], lengths[rows])
        return logits

    def predict_proba(self, texts, max_len=None, batch_size=PREDICT_BATCH):
        """Class probabilities (n, C), float64, rows summing to 1."""
        return self._predict_proba("texts", texts, max_len, batch_size)

    def _predict_proba(self, name, texts, max_len, batch_size=PREDICT_BATCH):
        """``predict_proba`` with errors naming the argument ``name``."""
        logits = self.predict_logits(*self._encode(name, texts, max_len), batch_size=batch_size).astype(np.float64)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def predict_texts(self, texts, max_len=None, batch_size=PREDICT_BATCH):
        """The most probable label of each text: a list of ``classes`` entries, or of ints 0..C-1 without them."""
        best = self.predict_logits(*self.encode(texts, max_len), batch_size=batch_size).argmax(axis=1)
        return [int(i) for i in best] if self.classes is None else [self.classes[i] for i in best]

    # ------------------------------------------------------------------ training

    def fit(self, texts, labels, *, validation_data=None, epochs=50, batch_size=32, lr=2e-3, weight_decay=0.0,
            patience=5, min_delta=1e-4, clip_norm=None, max_len=None, shuffle=True, seed=None, restore_best=True,
            progress=True, desc="TextClassifierModel"):
        """Train on texts and integer labels in [0, num_classes) with Adam; returns a ``numgru.History``.

        validation_data: (texts, labels), evaluated after every epoch (its mean
        cross-entropy is the monitored metric; without it, the training loss).
        patience: stop after this many epochs without an improvement larger
        than ``min_delta`` (None: run every epoch). restore_best: end with the
        weights of the best epoch. weight_decay: Adam's L2 term.
        clip_norm: clip the global gradient norm of every batch. max_len: keep
        each text's first ``max_len`` tokens. seed: the shuffling's generator.
        """
        ids, lengths = self.encode(texts, max_len)
        labels = validation.check_labels("labels", labels, (len(ids),), self.num_classes)
        validation_loss = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data must be (texts, labels)")
            val_ids, val_lengths = self.encode(validation_data[0], max_len)
            val_labels = validation.check_labels("validation_data[1]", validation_data[1], (len(val_ids),),
                                                 self.num_classes)

            def validation_loss():
                return losses.cross_entropy(self.predict_logits(val_ids, val_lengths), val_labels)[0]

        def step(rows):
            logits = self.forward(ids[rows, :lengths[rows].max()], lengths[rows])
            value, dlogits = losses.cross_entropy(logits, labels[rows])
            self.backward(dlogits)
            return value

        return fit_rows(self, step, len(ids), validation_loss=validation_loss, epochs=epochs,
                        batch_size=batch_size, lr=lr, weight_decay=weight_decay, patience=patience,
                        min_delta=min_delta, clip_norm=clip_norm, shuffle=shuffle, seed=seed,
                        restore_best=restore_best, progress=progress, desc=desc)

    # ------------------------------------------------------------------ files

    explain_shapes = LanguageModel.explain_shapes     # the same embedding.weight against the same vocabulary

    def config(self):
        """The constructor arguments that rebuild this model (used by ``numgru.save``), JSON-able."""
        return dict(vocabulary=self.vocabulary.to_list(), num_classes=self.num_classes,
                    embedding_dim=self.embedding_dim, hidden_size=self.hidden_size, num_layers=self.num_layers,
                    bidirectional=self.bidirectional, pooling=self.pooling, dropout=self.dropout,
                    embedding_dropout=self.embedding_dropout, tokenizer=self.tokenizer, lower=self.lower,
                    classes=self.classes, dtype=self.dtype.name)

    def __repr__(self):
        return (f"TextClassifierModel({len(self.vocabulary)} tokens, {self.num_classes} classes, "
                f"embedding_dim={self.embedding_dim}, hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, pooling='{self.pooling}', tokenizer='{self.tokenizer}', "
                f"dtype='{self.dtype.name}')")
