"""scikit-learn estimators: ``GRURegressor`` and ``GRUClassifier``, a ``numgru.GRUModel`` trained by ``numgru.fit``.

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

Both estimators are many-to-one: the head reads each sequence's state at its
last step. They run on the CPU, accept any numeric ``X`` (integers are
converted, as scikit-learn does) and compute in ``dtype``; predictions and
probabilities come back as float64. ``sample_weight`` is not supported.

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
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from . import training
from .models import GRUModel

__all__ = ["GRURegressor", "GRUClassifier"]

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
