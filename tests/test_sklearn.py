"""numgru.sklearn: scikit-learn's estimator checks, meta-estimators, learning, reproducibility and bad input."""
import pickle
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone                                                  # noqa: E402
from sklearn.dummy import DummyClassifier, DummyRegressor                      # noqa: E402
from sklearn.exceptions import NotFittedError                                  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score              # noqa: E402
from sklearn.pipeline import make_pipeline                                     # noqa: E402
from sklearn.preprocessing import FunctionTransformer, StandardScaler         # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks             # noqa: E402

import numgru                                                                   # noqa: E402
from numgru.sklearn import GRUClassifier, GRURegressor                         # noqa: E402

# Small enough that the whole check suite runs in seconds, large enough to pass the checks
# that ask for a training score (R² > 0.5, accuracy > 0.83).
CHECK_PARAMS = dict(hidden_size=16, max_iter=50, learning_rate_init=0.01, batch_size=16)
FAST = dict(hidden_size=8, max_iter=5, learning_rate_init=0.01, random_state=0)

# The checks that cannot pass, each with why. scikit-learn >= 1.6 has no estimator tag that declares
# them; they are passed to parametrize_with_checks (and to check_estimator, for anyone running it).
N_FEATURES_IS_PER_STEP = ("n_features_in_ counts the features of one time step: a 2-D X (n_samples, "
                          "n_timesteps) holds univariate sequences, so it is 1, not X.shape[1]")
EXPECTED_FAILED_CHECKS = {
    "check_n_features_in": N_FEATURES_IS_PER_STEP,
    "check_n_features_in_after_fitting": N_FEATURES_IS_PER_STEP + "; and predict(X[:, [1]]) is valid: "
                                         "sequences of one step (a GRU reads any number of steps)",
}
CLASSIFIER_EXPECTED_FAILED_CHECKS = {
    **EXPECTED_FAILED_CHECKS,
    "check_classifiers_train": "asks predict(X.T) to raise, but X.T is valid input (n_timesteps univariate "
                               "sequences of n_samples steps); the rest of the check is test_classifier_train",
}




def _blas_rounds_rows_by_position():
    """Whether this BLAS's float32 GEMM rounds a row differently at another row position (measured:
    OpenBLAS's Haswell kernels, chosen here by OPENBLAS_CORETYPE=Haswell, differ by 1 ulp for (20, 16) @
    (16, 48); its SkylakeX and Sandybridge kernels do not)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 48)).astype(np.float32)
    h = rng.standard_normal((20, 16)).astype(np.float32)
    order = rng.permutation(20)
    return not np.array_equal((h @ w)[order], h[order] @ w)


SAMPLE_ORDER = ("the recurrent products go through BLAS, whose float32 GEMM here rounds a row by its position "
                "in the batch, so predictions move by ~1e-7 relative with the sample order (the check asks "
                "1e-7); test_predictions_do_not_depend_on_sample_order checks them to float32 rounding")


def expected_failed_checks(estimator):
    checks = CLASSIFIER_EXPECTED_FAILED_CHECKS if isinstance(estimator, GRUClassifier) else EXPECTED_FAILED_CHECKS
    if _blas_rounds_rows_by_position():
        checks = dict(checks, check_methods_sample_order_invariance=SAMPLE_ORDER)
    return checks


@pytest.fixture(autouse=True)
def _parallel_cpu_kernels():
    """Overrides conftest.py's fixture of this name, which sends tiny shapes through the parallel kernels:
    these tests fit hundreds of tiny models, which the dispatch runs serially, as it does for users (the
    parallel builds pay a thread hand-off per time step, minutes here on a busy 2-core machine)."""


@parametrize_with_checks([GRURegressor(**CHECK_PARAMS), GRUClassifier(**CHECK_PARAMS)],
                         expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---------------------------------------------------------------- data

def sum_data(n=120, steps=6, features=2, seed=0):
    """Sequences (n, steps, features); y: the sum of the first feature; labels: its sign, as strings."""
    X = np.random.default_rng(seed).standard_normal((n, steps, features)).astype(np.float32)
    y = X[:, :, 0].sum(axis=1)
    return X, y, np.where(y > 0, "up", "down")


def nan_padded(x, lengths):
    """Zero-padded sequences -> the same, padded with NaN after each one's last step."""
    x = x.copy()
    x[np.arange(x.shape[1]) >= lengths[:, None]] = np.nan
    return x


def flat_to_sequences(X):
    """(n, steps * 2) -> (n, steps, 2): a FunctionTransformer step in a Pipeline."""
    return X.reshape(len(X), -1, 2)


# ---------------------------------------------------------------- optional dependency

def test_numgru_does_not_import_sklearn_and_the_module_says_how_to_install_it():
    script = (
        "import sys, numgru\n"
        "assert 'sklearn' not in sys.modules, 'import numgru imported sklearn'\n"
        "sys.modules['sklearn'] = None  # as if it were not installed\n"
        "try:\n"
        "    import numgru.sklearn\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    done = subprocess.run([sys.executable, "-P", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pip install 'numgru[sklearn]'" in done.stdout


# ---------------------------------------------------------------- meta-estimators, clone, pickle

def test_pipeline_with_a_scaler_on_univariate_sequences():
    X, y, _ = sum_data(features=1)
    pipe = make_pipeline(StandardScaler(), GRURegressor(**FAST)).fit(X[:, :, 0], y)
    assert pipe[-1].n_features_in_ == 1
    assert pipe.predict(X[:, :, 0]).shape == (len(X),)


def test_pipeline_with_a_function_transformer_reshaping_flat_rows():
    X, _, labels = sum_data()
    pipe = make_pipeline(FunctionTransformer(flat_to_sequences), GRUClassifier(**FAST))
    pipe.fit(X.reshape(len(X), -1), labels)
    assert pipe[-1].n_features_in_ == 2
    assert set(pipe.predict(X.reshape(len(X), -1))) <= {"up", "down"}


def test_grid_search_over_hidden_size_and_cross_val_score():
    X, y, labels = sum_data()
    search = GridSearchCV(GRURegressor(**FAST), {"hidden_size": [4, 8]}, cv=2).fit(X, y)
    assert search.best_params_["hidden_size"] in (4, 8)
    assert search.best_estimator_.model_.hidden_size == search.best_params_["hidden_size"]
    scores = cross_val_score(GRUClassifier(**FAST), X, labels, cv=3)
    assert scores.shape == (3,) and np.all((0 <= scores) & (scores <= 1))


def test_clone_gives_an_unfitted_estimator_with_the_same_parameters():
    X, y, _ = sum_data()
    fitted = GRURegressor(**FAST).fit(X, y)
    twin = clone(fitted)
    assert twin.get_params() == fitted.get_params()
    assert not hasattr(twin, "model_")


@pytest.mark.parametrize("Estimator, method, params", [
    (GRURegressor, "predict", dict(dtype="float64", bidirectional=True, reset_after=False)),
    (GRUClassifier, "predict_proba", dict(num_layers=2, dropout=0.2, clip_norm=1.0))])
def test_pickle_round_trip_predicts_identically(Estimator, method, params):
    X, y, labels = sum_data()
    fitted = Estimator(**FAST, **params).fit(X, y if Estimator is GRURegressor else labels)
    again = pickle.loads(pickle.dumps(fitted))
    assert np.array_equal(getattr(again, method)(X), getattr(fitted, method)(X))


# ---------------------------------------------------------------- learning

def test_regressor_learns_the_adding_problem():
    task = numgru.tasks.adding(T=10, n_train=1000, n_val=1, n_test=300, seed=0)
    model = GRURegressor(hidden_size=16, max_iter=10, learning_rate_init=0.01, random_state=0)
    model.fit(task.x_train, task.y_train)
    dummy = DummyRegressor().fit(task.x_train[:, :, 0], task.y_train)
    assert dummy.score(task.x_test[:, :, 0], task.y_test) < 0.05
    assert model.score(task.x_test, task.y_test) > 0.8
    assert model.n_iter_ == len(model.loss_curve_) and model.loss_ == model.loss_curve_[-1]


def test_classifier_learns_nan_padded_waveforms_with_string_labels():
    task = numgru.tasks.waveforms(min_len=20, max_len=40, n_train=600, n_val=1, n_test=300, seed=0)
    names = np.array(numgru.tasks.WAVEFORMS)
    X_train, X_test = nan_padded(task.x_train, task.lengths_train), nan_padded(task.x_test, task.lengths_test)
    model = GRUClassifier(hidden_size=16, max_iter=10, learning_rate_init=0.01, random_state=0)
    model.fit(X_train, names[task.y_train])
    assert list(model.classes_) == sorted(numgru.tasks.WAVEFORMS)
    dummy = DummyClassifier().fit(task.x_train[:, :, 0], names[task.y_train])      # the most frequent class
    assert model.score(X_test, names[task.y_test]) > dummy.score(task.x_test[:, :, 0], names[task.y_test]) + 0.2


def test_nan_padding_reads_each_sequence_up_to_its_last_step():
    X, y, _ = sum_data(n=40, steps=8)
    lengths = np.random.default_rng(1).integers(1, 9, size=40)
    X = nan_padded(X, lengths)
    model = GRURegressor(**FAST).fit(X, y)
    padded = model.predict(X)
    alone = [model.predict(X[i:i + 1, :lengths[i]])[0] for i in range(0, 40, 7)]
    np.testing.assert_allclose(padded[::7], alone, rtol=1e-5, atol=1e-6)


def test_classifier_train():
    """check_classifiers_train without its predict(X.T) part: blobs, as univariate sequences of 2 steps."""
    from sklearn.datasets import make_blobs
    X, y = make_blobs(n_samples=300, random_state=0)
    X = StandardScaler().fit_transform(X)
    for rows in (y != 2, slice(None)):                     # binary, then three classes
        data, labels = X[rows], y[rows]
        model = GRUClassifier(**CHECK_PARAMS, random_state=0).fit(data, labels)
        pred, proba = model.predict(data), model.predict_proba(data)
        assert np.mean(pred == labels) > 0.83
        assert proba.shape == (len(data), len(np.unique(labels)))
        np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], pred)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
        assert model.predict(data.T).shape == (2,)          # two sequences of len(data) steps


def test_same_random_state_gives_identical_predictions():
    X, y, labels = sum_data()
    params = dict(FAST, dropout=0.3, num_layers=2, early_stopping=True)
    first, second = (GRUClassifier(**params).fit(X, labels).predict_proba(X) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    other = GRUClassifier(**dict(params, random_state=1)).fit(X, labels).predict_proba(X)
    assert not np.array_equal(first, other)
    rng = np.random.RandomState(0)                       # a RandomState moves on: two fits differ
    a, b = (GRURegressor(**dict(FAST, random_state=rng)).fit(X, y).predict(X) for _ in range(2))
    assert not np.array_equal(a, b)


def test_early_stopping_holds_out_data_and_keeps_the_best_epoch():
    X, y, _ = sum_data()
    model = GRURegressor(**dict(FAST, max_iter=40, early_stopping=True, n_iter_no_change=2, tol=0.0)).fit(X, y)
    assert len(model.validation_loss_curve_) == model.n_iter_
    assert model.history_.best_metric == min(model.validation_loss_curve_)
    assert GRURegressor(**FAST).fit(X, y).validation_loss_curve_ is None


def test_regressor_output_shapes_follow_y():
    X, y, _ = sum_data()
    assert GRURegressor(**FAST).fit(X, y[:, None]).predict(X).shape == (len(X),)
    two = GRURegressor(**FAST).fit(X, np.stack([y, -y], axis=1))
    assert two.n_outputs_ == 2 and two.predict(X).shape == (len(X), 2)
    assert two.predict(X).dtype == np.float64


def test_progress_bar_only_when_verbose(capfd):
    X, y, _ = sum_data(n=8)
    GRURegressor(**FAST).fit(X, y)
    assert capfd.readouterr().err == ""
    GRURegressor(**FAST, verbose=True).fit(X, y)
    assert "GRURegressor" in capfd.readouterr().err


def test_univariate_rows_and_any_number_of_steps_at_predict():
    X, y, _ = sum_data(features=1)
    model = GRURegressor(**FAST).fit(X[:, :, 0], y)
    assert model.n_features_in_ == 1
    np.testing.assert_array_equal(model.predict(X[:, :, 0]), model.predict(X))
    assert model.predict(np.zeros((3, 20))).shape == (3,)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("shape", [(12,), (2, 3, 4, 1)])
def test_wrong_ndim_is_refused(shape):
    with pytest.raises(ValueError, match=r"X must be 2-D .* or 3-D .*got \d-D shape"):
        GRURegressor(**FAST).fit(np.zeros(shape), np.zeros(shape[0]))


def test_wrong_number_of_features_at_predict():
    X, y, labels = sum_data(features=2)
    for model in (GRURegressor(**FAST).fit(X, y), GRUClassifier(**FAST).fit(X, labels)):
        with pytest.raises(ValueError, match=r"X has 3 features per time step, but GRU\w+ is expecting 2 "
                                             r"features per time step .*got X of shape \(4, 6, 3\)"):
            model.predict(np.zeros((4, 6, 3)))


@pytest.mark.parametrize("Estimator, method", [(GRURegressor, "predict"), (GRUClassifier, "predict"),
                                               (GRUClassifier, "predict_proba")])
def test_predict_before_fit(Estimator, method):
    with pytest.raises(NotFittedError):
        getattr(Estimator(), method)(np.zeros((2, 3)))


@pytest.mark.parametrize("name, value", [("hidden_size", 0), ("num_layers", 0), ("dropout", 1.0), ("max_iter", 0),
                                         ("batch_size", 0), ("learning_rate_init", 0.0), ("clip_norm", -1.0),
                                         ("validation_fraction", 1.0), ("n_iter_no_change", 0), ("tol", -1.0),
                                         ("dtype", "float16"), ("random_state", "seed"), ("bidirectional", "yes")])
def test_bad_hyper_parameters_are_refused_at_fit(name, value):
    X, y, _ = sum_data(n=8)
    model = GRURegressor(**{name: value})                   # stored unchanged, as scikit-learn wants
    assert model.get_params()[name] == value
    with pytest.raises(ValueError, match=f"'{name}' parameter of GRURegressor"):
        model.fit(X, y)


@pytest.mark.parametrize("where, message", [((0, 2, 0), "NaN or inf inside sequence 0 \\(step 2\\)"),
                                            ((1, slice(None), slice(None)), "padding only \\(sample 1")])
def test_nan_other_than_trailing_padding_is_refused(where, message):
    X, y, _ = sum_data(n=8)
    X[where] = np.nan
    with pytest.raises(ValueError, match=message):
        GRURegressor(**FAST).fit(X, y)


def test_inf_is_refused():
    X, y, _ = sum_data(n=8)
    model = GRURegressor(**FAST).fit(X, y)
    X[3, -1, 1] = np.inf
    with pytest.raises(ValueError, match="inf inside sequence 3"):
        model.predict(X)


def test_bad_targets():
    X, y, labels = sum_data(n=8)
    with pytest.raises(ValueError, match="at least 2 classes, got 1 class"):
        GRUClassifier(**FAST).fit(X, np.full(8, "up"))
    with pytest.raises(ValueError, match="Unknown label type"):
        GRUClassifier(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        GRURegressor(**FAST).fit(X, y[:-1])


@pytest.mark.parametrize("make", [GRURegressor, GRUClassifier])
def test_predictions_do_not_depend_on_sample_order(make):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 12, 2)).astype(np.float32)
    y = X.sum(axis=(1, 2)) if make is GRURegressor else (X[:, :, 0].sum(axis=1) > 0).astype(int)
    model = make(**FAST).fit(X, y)
    order = rng.permutation(len(X))
    predict = model.predict if make is GRURegressor else model.predict_proba
    np.testing.assert_allclose(predict(X[order]), predict(X)[order], rtol=2e-6, atol=1e-7)
