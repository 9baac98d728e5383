"""scikit-learn estimators: ``GRURegressor`` and ``GRUClassifier``, a ``numgru.GRUModel`` trained by ``numgru.fit``,
and ``TextClassifier``, a ``numgru.TextClassifierModel`` trained on a list of strings.

    >>> import numpy as np
    >>> from numgru.sklearn import GRURegressor
    >>> X = np.random.default_rng(0).standard_normal((64, 10, 2))       # 64 sequences, 10 steps, 2 features
    >>> y = X[:, :, 0].sum(axis=1)
    >>> GRURegressor(hidden_size=8, max_iter=2, random_state=0).fit(X, y).predict(X).shape
    (64,)

Input ``X`` is ``(n_samples, n_timesteps, n_features)``, or ``(n_samples,
n_timesteps)`` for one univariate sequence per row (as in tslearn): that is
what scikit-learn's transformers (scalers, ``FunctionTransformer``) hand on in
a ``Pipeline``. ``n_features_in_`` counts the features of one time step (1 for
2-D ``X``); the number of steps may differ between ``fit`` and ``predict``.

Sequences of different lengths: pad the end of each shorter sequence with NaN
(every feature NaN from its last step on, as ``tslearn.utils.to_time_series_dataset``
does). The model then reads each sequence only up to its own last step, in fit
and predict alike (``lengths`` of ``numgru.fit``). Any other NaN, and any inf,
raises ``ValueError``.

``GRURegressor`` and ``GRUClassifier`` are many-to-one: the head reads each
sequence's state at its last step. They run on the CPU, accept any numeric
``X`` (integers are converted, as scikit-learn does) and compute in ``dtype``;
predictions and probabilities come back as float64. ``sample_weight`` is not
supported.

``TextClassifier`` takes ``X`` as a list (or 1-D array) of strings, as
scikit-learn's text vectorizers do, and builds its vocabulary from the
training texts in ``fit``.

Needs scikit-learn >= 1.6 (``pip install 'numgru[sklearn]'``); ``import numgru``
does not import this module.
"""
import re
from numbers import Integral, Real

try:
    import sklearn
except ImportError as err:
    raise ImportError("numgru.sklearn needs scikit-learn, an optional extra: pip install 'numgru[sklearn]'") from err

if tuple(int(part) for part in re.match(r"(\d+)\.(\d+)", sklearn.__version__).groups()) < (1, 6):
    raise ImportError(f"numgru.sklearn needs scikit-learn >= 1.6, found {sklearn.__version__}: "
                      "pip install 'numgru[sklearn]'")

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context, is_regressor
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted, check_X_y, column_or_1d

from . import text, training
from .models import GRUModel
from .text_classifier import TextClassifierModel

__all__ = ["GRURegressor", "GRUClassifier", "TextClassifier"]

_PARAMETERS = """
    Parameters
    ----------
    hidden_size : int, default=32
        Units of each GRU layer.
    num_layers : int, default=1
        Stacked GRU layers.
    bidirectional : bool, default=False
        Read each sequence in both directions; the head sees both final states.
    dropout : float in [0, 1), default=0.0
        Dropout between GRU layers while training (no effect with ``num_layers=1``).
    reset_after : bool, default=True
        PyTorch's/cuDNN's GRU variant; False: Cho et al. (2014), Keras ``reset_after=False``.
    max_iter : int, default=100
        Most epochs (passes over the training data).
    batch_size : int, default=32
        Sequences per Adam step.
    learning_rate_init : float, default=1e-3
        Adam's learning rate.
    clip_norm : float or None, default=None
        Clip the global gradient norm of every batch to this.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified for
        the classifier), stop when its loss has not improved by ``tol`` for
        ``n_iter_no_change`` epochs and keep the weights of its best epoch.
        Without it, training stops when the training loss has not improved by
        ``tol`` for ``n_iter_no_change`` epochs (as in ``MLPRegressor``).
    validation_fraction : float in (0, 1), default=0.1
        Share of the training data held out by ``early_stopping``.
    n_iter_no_change : int, default=10
        Epochs without an improvement larger than ``tol`` before training stops.
    tol : float, default=1e-4
        The smallest decrease of the monitored loss that counts as an improvement.
    shuffle : bool, default=True
        Shuffle the training data every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the shuffling, dropout and the validation split:
        two fits with the same int give identical models.
    verbose : bool, default=False
        Show a progress bar while training.
    dtype : {"float32", "float64"}, default="float32"
        The precision the network computes in.
"""

_ATTRIBUTES = """
    model_ : numgru.GRUModel
        The trained network (``numgru.save`` writes it to a file).
    n_features_in_ : int
        Features per time step (1 for 2-D ``X``).
    history_ : numgru.History
        What ``numgru.fit`` did, epoch by epoch.
    n_iter_ : int
        Epochs run.
    loss_ : float
        Mean training loss of the last epoch.
    loss_curve_ : list of float
        Mean training loss of every epoch.
    validation_loss_curve_ : list of float or None
        Loss on the held-out data after every epoch with ``early_stopping``, else None.
"""


def _nan_padding_to_lengths(X):
    """NaN-padded sequences (n, T, F) -> (X with the padding zeroed, lengths (n,)), or (X, None) without padding."""
    finite = np.isfinite(X)
    if finite.all():
        return X, None
    padding = np.isnan(X).all(axis=2)                                      # (n, T): every feature NaN
    trailing = np.logical_and.accumulate(padding[:, ::-1], axis=1).sum(axis=1)
    lengths = X.shape[1] - trailing
    inside = np.arange(X.shape[1]) < lengths[:, None]                     # (n, T): steps before the padding
    bad = inside[:, :, None] & ~finite
    if bad.any():
        sample, step, _ = np.argwhere(bad)[0]
        raise ValueError(f"X contains NaN or inf inside sequence {sample} (step {step}): NaN is allowed only as "
                         "padding after a sequence's last step (every feature NaN), inf nowhere")
    if (lengths == 0).any():
        raise ValueError(f"X holds a sequence of padding only (sample {np.argmin(lengths)}, every value NaN): "
                         "each sequence needs at least one step")
    return np.where(inside[:, :, None], X, 0), lengths


class _GRUEstimator(BaseEstimator):
    """What the regressor and the classifier share: hyper-parameters, input rules, training.

    A subclass sets ``_loss`` (a ``numgru.losses`` name) and ``_encode_targets``.
    """

    _parameter_constraints = {
        "hidden_size": [Interval(Integral, 1, None, closed="left")],
        "num_layers": [Interval(Integral, 1, None, closed="left")],
        "bidirectional": ["boolean"],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "reset_after": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "clip_norm": [Interval(Real, 0, None, closed="neither"), None],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "dtype": [StrOptions({"float32", "float64"})],
    }

    def __init__(self, *, hidden_size=32, num_layers=1, bidirectional=False, dropout=0.0, reset_after=True,
                 max_iter=100, batch_size=32, learning_rate_init=1e-3, clip_norm=None, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4, shuffle=True, random_state=None,
                 verbose=False, dtype="float32"):
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.reset_after = reset_after
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.clip_norm = clip_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose
        self.dtype = dtype

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train a new network on sequences X (n_samples, n_timesteps[, n_features]) and targets y; returns self."""
        X, lengths, y = self._validate_sequences(X, y, reset=True)
        targets, output_size = self._encode_targets(y)
        rng = check_random_state(self.random_state)
        model_seed, shuffle_seed = (int(seed) for seed in rng.randint(np.iinfo(np.int32).max, size=2))
        train_data, validation_data = (X, targets, lengths), None
        if self.early_stopping:
            train, held_out = train_test_split(np.arange(len(X)), test_size=self.validation_fraction,
                                               random_state=rng, stratify=None if is_regressor(self) else targets)
            train_data, validation_data = ((X[rows], targets[rows], None if lengths is None else lengths[rows])
                                           for rows in (train, held_out))
        X_train, targets_train, lengths_train = train_data
        self.model_ = GRUModel(self.n_features_in_, self.hidden_size, output_size, self.num_layers, output="last",
                               bidirectional=self.bidirectional, dropout=self.dropout, reset_after=self.reset_after,
                               dtype=self.dtype, device="cpu", seed=model_seed)
        self.history_ = training.fit(self.model_, X_train, targets_train, loss=self._loss, lengths=lengths_train,
                                     lr=self.learning_rate_init, epochs=self.max_iter, batch_size=self.batch_size,
                                     validation_data=validation_data, patience=self.n_iter_no_change,
                                     min_delta=self.tol, clip_norm=self.clip_norm, shuffle=self.shuffle,
                                     seed=shuffle_seed, progress=bool(self.verbose), restore_best=self.early_stopping,
                                     desc=type(self).__name__)
        self.n_iter_ = len(self.history_)
        self.loss_curve_ = list(self.history_.loss)
        self.loss_ = self.loss_curve_[-1]
        self.validation_loss_curve_ = list(self.history_.val_loss) if self.early_stopping else None
        return self

    def _network_output(self, X):
        """The trained network's output (n_samples, output_size) for sequences X, dropout off."""
        check_is_fitted(self)
        X, lengths, _ = self._validate_sequences(X, reset=False)
        return self.model_.predict(X, lengths)

    def _validate_sequences(self, X, y=None, *, reset):
        """X -> (sequences (n, T, F) in ``dtype`` with padding zeroed, lengths or None, y as scikit-learn checks it).

        ``reset`` (fit) records ``n_features_in_``; otherwise X must have that many features per step.
        """
        options = dict(dtype=(np.float64, np.float32), ensure_2d=False, allow_nd=True, ensure_all_finite=False,
                       estimator=self)
        if reset:
            regression = is_regressor(self)
            X, y = check_X_y(X, y, multi_output=regression, y_numeric=regression, **options)
        else:
            X = check_array(X, input_name="X", **options)
        if X.ndim not in (2, 3):
            raise ValueError(f"X must be 2-D (n_samples, n_timesteps) or 3-D (n_samples, n_timesteps, n_features), "
                             f"got {X.ndim}-D shape {X.shape}. Reshape your data: X.reshape(1, -1) for one "
                             "univariate sequence, X.reshape(1, n_timesteps, n_features) for one multivariate one")
        shape = X.shape
        if X.ndim == 2:
            X = X[:, :, np.newaxis]
        if 0 in X.shape[1:]:
            raise ValueError(f"X must hold at least one time step and one feature, got shape {shape}")
        if reset:
            self.n_features_in_ = X.shape[2]
        elif X.shape[2] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[2]} features per time step, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features per time step as input (got X of shape {shape})")
        X, lengths = _nan_padding_to_lengths(X)
        return X.astype(self.dtype, copy=False), lengths, y


class GRURegressor(RegressorMixin, _GRUEstimator):
    __doc__ = """Sequence regression: GRU layers, then a linear head on each sequence's last state, trained on MSE.

    ``y`` is (n_samples,) or (n_samples, n_outputs); ``predict`` returns
    float64 of shape (n_samples,) when there is one output (as ``MLPRegressor``),
    else (n_samples, n_outputs). ``score`` is R². Targets are not scaled:
    wrap the estimator in ``TransformedTargetRegressor`` for large ones.
    """ + _PARAMETERS + """
    Attributes
    ----------
    n_outputs_ : int
        Columns of y.""" + _ATTRIBUTES

    _loss = "mse"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _encode_targets(self, y):
        targets = y.reshape(len(y), -1).astype(self.dtype)
        self.n_outputs_ = targets.shape[1]
        return targets, self.n_outputs_

    def predict(self, X):
        """Predicted targets for sequences X: (n_samples,) or (n_samples, n_outputs), float64."""
        pred = self._network_output(X).astype(np.float64)
        return pred.ravel() if self.n_outputs_ == 1 else pred


class GRUClassifier(ClassifierMixin, _GRUEstimator):
    __doc__ = """Sequence classification: GRU layers, then a linear head (one logit per class) on each sequence's
    last state, trained on softmax cross-entropy; binary and multi-class.

    ``y`` holds one label per sequence, of any type (integers, strings...);
    ``predict`` returns labels from ``classes_``, ``predict_proba`` float64
    probabilities (n_samples, n_classes) in the order of ``classes_``.
    ``score`` is the accuracy.
    """ + _PARAMETERS + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels seen in fit, sorted.""" + _ATTRIBUTES

    _loss = "cross_entropy"

    def _encode_targets(self, y):
        check_classification_targets(y)
        classes, labels = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes, got 1 class: {classes[0]!r}")
        self.classes_ = classes
        return labels.reshape(-1).astype(np.int64), len(classes)

    def predict_proba(self, X):
        """Class probabilities for sequences X: (n_samples, n_classes), float64, rows summing to 1."""
        logits = self._network_output(X).astype(np.float64)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, X):
        """The most probable class of each sequence in X, a label from ``classes_``."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]


_TEXT_CONSTRAINT_NAMES = ("hidden_size", "num_layers", "bidirectional", "dropout", "max_iter", "batch_size",
                          "learning_rate_init", "clip_norm", "early_stopping", "validation_fraction",
                          "n_iter_no_change", "tol", "shuffle", "random_state", "verbose", "dtype")


class TextClassifier(ClassifierMixin, BaseEstimator):
    """Text classification: tokens -> Embedding -> GRU -> pooling over each text's own tokens -> linear head,
    trained on softmax cross-entropy with Adam; binary and multi-class.

    ``X`` is a list or 1-D array of strings (one text each); ``y`` one label per
    text, of any type. ``fit`` tokenises the training texts (``tokenizer``,
    ``lower``), builds a ``numgru.text.Vocabulary`` of them (``min_freq``,
    ``max_vocab``; tokens never seen in training become ``<unk>`` at predict)
    and trains a ``numgru.TextClassifierModel``. ``predict`` returns labels from
    ``classes_``, ``predict_proba`` float64 probabilities (n_samples, n_classes)
    in the order of ``classes_``; ``score`` is the accuracy. An empty string (or,
    with ``tokenizer="word"``, one of white space only) raises ``ValueError``
    naming its index in ``X``.

    The defaults were chosen on the 3,000 review sentences of Kotzias et al.
    (``numgru.tasks.sentiment_sentences``; 10-fold accuracy next to TF-IDF +
    logistic regression: ``scripts/sentiment_cv.py``) and stop by early
    stopping on held-out data, not after a fixed number of epochs, so that
    they also serve larger data.

    Parameters
    ----------
    tokenizer : {"word", "char"}, default="word"
        ``numgru.text.word_tokenize`` (words and punctuation) or
        ``char_tokenize`` (code points).
    lower : bool, default=True
        Lower-case the texts before tokenising.
    min_freq : int, default=1
        Tokens seen fewer times in the training texts become ``<unk>``.
    max_vocab : int or None, default=None
        Keep at most this many (the most frequent) tokens, besides the specials.
    max_len : int or None, default=None
        Read at most the first ``max_len`` tokens of each text (None: all).
    embedding_dim : int, default=128
        Size of each token's vector.
    hidden_size : int, default=128
        Units of each GRU layer and direction.
    num_layers : int, default=1
        Stacked GRU layers.
    bidirectional : bool, default=True
        Read each text in both directions.
    pooling : {"max", "mean", "last"}, default="max"
        How the GRU's outputs over a text's tokens become one vector: their
        maximum, their mean, or the final states (forward direction at the
        last token, reverse direction at the first).
    dropout : float in [0, 1), default=0.5
        Dropout on the pooled vector (and between GRU layers) while training.
    embedding_dropout : float in [0, 1), default=0.3
        Dropout on the token vectors while training.
    max_iter : int, default=50
        Most epochs (passes over the training data).
    batch_size : int, default=32
        Texts per Adam step.
    learning_rate_init : float, default=2e-3
        Adam's learning rate.
    weight_decay : float, default=0.0
        Adam's L2 penalty.
    clip_norm : float or None, default=None
        Clip the global gradient norm of every batch to this.
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the training texts (stratified),
        stop when their loss has not improved by ``tol`` for
        ``n_iter_no_change`` epochs and keep the weights of the best epoch.
        Without it, training stops when the training loss has not improved by
        ``tol`` for ``n_iter_no_change`` epochs.
    validation_fraction : float in (0, 1), default=0.1
        Share of the training texts held out by ``early_stopping``.
    n_iter_no_change : int, default=5
        Epochs without an improvement larger than ``tol`` before training stops.
    tol : float, default=1e-4
        The smallest decrease of the monitored loss that counts as an improvement.
    shuffle : bool, default=True
        Shuffle the training texts every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the shuffling, dropout and the validation split:
        two fits with the same int give identical models.
    verbose : bool, default=False
        Show a progress bar while training.
    dtype : {"float32", "float64"}, default="float32"
        The precision the network computes in.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels seen in fit, sorted.
    vocabulary_ : numgru.text.Vocabulary
        The tokens of the training texts (the held-out part excluded).
    model_ : numgru.TextClassifierModel
        The trained network (``numgru.save`` writes it, vocabulary and
        classes included, to a file).
    history_ : numgru.History
        What training did, epoch by epoch.
    n_iter_ : int
        Epochs run.
    loss_ : float
        Mean training loss of the last epoch.
    loss_curve_ : list of float
        Mean training loss of every epoch.
    validation_loss_curve_ : list of float or None
        Loss on the held-out texts after every epoch with ``early_stopping``, else None.
    """

    _parameter_constraints = {
        "tokenizer": [StrOptions(set(text.TOKENIZERS))],
        "lower": ["boolean"],
        "min_freq": [Interval(Integral, 1, None, closed="left")],
        "max_vocab": [Interval(Integral, 1, None, closed="left"), None],
        "max_len": [Interval(Integral, 1, None, closed="left"), None],
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "pooling": [StrOptions({"max", "mean", "last"})],
        "embedding_dropout": [Interval(Real, 0, 1, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        **{name: _GRUEstimator._parameter_constraints[name] for name in _TEXT_CONSTRAINT_NAMES},
    }

    def __init__(self, *, tokenizer="word", lower=True, min_freq=1, max_vocab=None, max_len=None, embedding_dim=128,
                 hidden_size=128, num_layers=1, bidirectional=True, pooling="max", dropout=0.5,
                 embedding_dropout=0.3, max_iter=50, batch_size=32, learning_rate_init=2e-3, weight_decay=0.0,
                 clip_norm=None, early_stopping=True, validation_fraction=0.1, n_iter_no_change=5, tol=1e-4,
                 shuffle=True, random_state=None, verbose=False, dtype="float32"):
        self.tokenizer = tokenizer
        self.lower = lower
        self.min_freq = min_freq
        self.max_vocab = max_vocab
        self.max_len = max_len
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.pooling = pooling
        self.dropout = dropout
        self.embedding_dropout = embedding_dropout
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose
        self.dtype = dtype

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train a new network on texts X (a list of n_samples strings) and labels y; returns self."""
        tokens = text.tokenize_texts("X", X, self.tokenizer, self.lower)
        texts = list(X)
        y = column_or_1d(y, warn=True)
        check_consistent_length(texts, y)
        check_classification_targets(y)
        classes, labels = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes, got 1 class: {classes[0]!r}")
        labels = labels.reshape(-1).astype(np.int64)
        rng = check_random_state(self.random_state)
        model_seed, shuffle_seed = (int(seed) for seed in rng.randint(np.iinfo(np.int32).max, size=2))
        train, validation_data = np.arange(len(texts)), None
        if self.early_stopping:
            train, held_out = train_test_split(train, test_size=self.validation_fraction, random_state=rng,
                                               stratify=labels)
            validation_data = ([texts[i] for i in held_out], labels[held_out])
        self.classes_ = classes
        self.vocabulary_ = text.Vocabulary.build((tokens[i] for i in train), min_freq=self.min_freq,
                                                 max_size=self.max_vocab)
        json_labels = all(isinstance(c, (str, int, float, bool)) for c in classes.tolist())   # stored in model files
        self.model_ = TextClassifierModel(self.vocabulary_, len(classes), embedding_dim=self.embedding_dim,
                                          hidden_size=self.hidden_size, num_layers=self.num_layers,
                                          bidirectional=self.bidirectional, pooling=self.pooling,
                                          dropout=self.dropout, embedding_dropout=self.embedding_dropout,
                                          tokenizer=self.tokenizer, lower=self.lower,
                                          classes=classes.tolist() if json_labels else None, dtype=self.dtype,
                                          device="cpu", seed=model_seed)
        self.history_ = self.model_.fit([texts[i] for i in train], labels[train], validation_data=validation_data,
                                        epochs=self.max_iter, batch_size=self.batch_size, lr=self.learning_rate_init,
                                        weight_decay=self.weight_decay, patience=self.n_iter_no_change,
                                        min_delta=self.tol, clip_norm=self.clip_norm, max_len=self.max_len,
                                        shuffle=self.shuffle, seed=shuffle_seed, restore_best=self.early_stopping,
                                        progress=bool(self.verbose), desc=type(self).__name__)
        self.n_iter_ = len(self.history_)
        self.loss_curve_ = list(self.history_.loss)
        self.loss_ = self.loss_curve_[-1]
        self.validation_loss_curve_ = list(self.history_.val_loss) if self.early_stopping else None
        return self

    def predict_proba(self, X):
        """Class probabilities for texts X: (n_samples, n_classes), float64, rows summing to 1."""
        check_is_fitted(self)
        return self.model_._predict_proba("X", X, self.max_len)

    def predict(self, X):
        """The most probable class of each text in X, a label from ``classes_``."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
