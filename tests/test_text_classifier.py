"""TextClassifierModel (gradients against torch and finite differences, padding, files, bad input),
numgru.sklearn.TextClassifier (model selection, clone, pickle, scikit-learn's parameter checks) and the
sentiment task and CLI."""
import json
import os
import pickle

import numpy as np
import pytest

import numgru
from numgru import text
from numgru.text_classifier import POOLINGS, TextClassifierModel

VOCAB = text.Vocabulary([f"w{i}" for i in range(16)])
LENGTHS = np.array([7, 3, 1, 5, 2])


def padded_ids(lengths=LENGTHS, steps=7, seed=0, fill=0):
    """(B, steps) random ids of real tokens, ``fill`` past each row's length."""
    ids = np.random.default_rng(seed).integers(4, len(VOCAB), (len(lengths), steps))
    ids[np.arange(steps) >= lengths[:, None]] = fill
    return ids


def model64(pooling, bidirectional=True, num_layers=2, **kwargs):
    return TextClassifierModel(VOCAB, 3, embedding_dim=4, hidden_size=5, num_layers=num_layers,
                               bidirectional=bidirectional, pooling=pooling, dropout=0.0, embedding_dropout=0.0,
                               dtype="float64", seed=1, **kwargs)


def loss_and_grads(model, ids, lengths, labels):
    model.zero_grad()
    logits = model(ids, lengths)
    loss, dlogits = numgru.losses.cross_entropy(logits, labels)
    model.backward(dlogits)
    return logits, loss, {name: grad.copy() for name, grad in model.grads.items()}


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_logits_and_gradients_match_torch_autograd(pooling, bidirectional):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    model = model64(pooling, bidirectional)
    ids, labels = padded_ids(), np.array([0, 2, 1, 1, 0])
    logits, loss, grads = loss_and_grads(model, ids, LENGTHS, labels)

    D = 2 if bidirectional else 1
    emb, gru, head = nn.Embedding(len(VOCAB), 4, padding_idx=0), nn.GRU(4, 5, 2, bidirectional=bidirectional), \
        nn.Linear(D * 5, 3)
    state = model.state_dict()
    for prefix, layer in (("embedding.", emb), ("gru.", gru), ("head.", head)):
        layer.double().load_state_dict({k[len(prefix):]: torch.tensor(v) for k, v in state.items()
                                        if k.startswith(prefix)})
    lengths = torch.tensor(LENGTHS)
    packed = nn.utils.rnn.pack_padded_sequence(emb(torch.tensor(ids.T)), lengths, enforce_sorted=False)
    out, hn = gru(packed)
    out, _ = nn.utils.rnn.pad_packed_sequence(out, total_length=ids.shape[1])
    real = (torch.arange(ids.shape[1])[:, None] < lengths)[:, :, None]
    if pooling == "max":
        features = out.masked_fill(~real, -torch.inf).max(dim=0).values
    elif pooling == "mean":
        features = out.sum(dim=0) / lengths[:, None]
    else:
        features = torch.cat([hn[-2], hn[-1]], dim=-1) if bidirectional else hn[-1]
    torch_logits = head(features)
    nn.functional.cross_entropy(torch_logits, torch.tensor(labels)).backward()

    np.testing.assert_allclose(logits, torch_logits.detach().numpy(), rtol=1e-12, atol=0)
    for prefix, layer in (("embedding.", emb), ("gru.", gru), ("head.", head)):
        for name, param in layer.named_parameters():
            expected = param.grad.numpy()
            error = np.abs(grads[prefix + name] - expected).max() / np.abs(expected).max()
            assert error <= 1e-10, (prefix + name, error)
    assert not grads["embedding.weight"][0].any()       # <pad> gets no gradient


@pytest.mark.parametrize("pooling", POOLINGS)
def test_gradients_match_central_finite_differences(pooling):
    model = model64(pooling, num_layers=1)
    ids, labels = padded_ids(), np.array([0, 2, 1, 1, 0])
    _, _, grads = loss_and_grads(model, ids, LENGTHS, labels)
    rng = np.random.default_rng(0)
    eps = 1e-6
    for name in ("embedding.weight", "gru.weight_ih_l0", "gru.weight_hh_l0_reverse", "gru.bias_hh_l0", "head.weight"):
        param = model.parameters()[name]
        if name == "embedding.weight":      # rows of tokens that occur in the text
            picks = [(int(ids[0, t]), int(j)) for t, j in zip(range(3), rng.integers(0, 4, 3))]
        else:
            picks = [tuple(int(rng.integers(0, n)) for n in param.shape) for _ in range(3)]
        for index in picks:
            saved = param[index]
            losses = []
            for step in (eps, -eps):
                param[index] = saved + step
                with numgru.no_grad():
                    losses.append(numgru.losses.cross_entropy(model(ids, LENGTHS), labels)[0])
            param[index] = saved
            numeric = (losses[0] - losses[1]) / (2 * eps)
            assert abs(numeric - grads[name][index]) <= 1e-7 * max(1.0, abs(numeric)), (name, index)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_padding_never_changes_the_logits(pooling):
    model = TextClassifierModel(VOCAB, 2, embedding_dim=6, hidden_size=8, pooling=pooling, seed=0)
    model.eval()
    ids = padded_ids()
    with numgru.no_grad():
        tight = model(ids, LENGTHS)
        # ten more steps, and ids other than <pad> past each length: read by nothing
        wide = model(np.concatenate([padded_ids(fill=5), np.full((5, 10), 7)], axis=1), LENGTHS)
    np.testing.assert_array_equal(tight, wide)
    # batches of other shapes: BLAS may round the products differently, nothing more
    np.testing.assert_allclose(model.predict_logits(ids, LENGTHS, batch_size=2), tight, rtol=1e-6)


def test_dropout_only_in_training_mode():
    model = TextClassifierModel(VOCAB, 2, embedding_dim=6, hidden_size=8, dropout=0.5, embedding_dropout=0.5, seed=0)
    ids = padded_ids()
    first, second = model(ids, LENGTHS), model(ids, LENGTHS)
    assert not np.array_equal(first, second)
    model.eval()
    assert np.array_equal(model(ids, LENGTHS), model(ids, LENGTHS))


def test_layers_arrays_are_the_models_parameters_and_a_seed_repeats():
    model = TextClassifierModel(VOCAB, 2, embedding_dim=6, hidden_size=8, seed=3)
    params = model.parameters()
    assert {name.split(".")[0] for name in params} == {"embedding", "gru", "head"}
    assert params["embedding.weight"] is model.embedding.weight
    assert params["gru.weight_hh_l0_reverse"] is model.gru.parameters()["weight_hh_l0_reverse"]
    assert not params["embedding.weight"][0].any()
    again = TextClassifierModel(VOCAB, 2, embedding_dim=6, hidden_size=8, seed=3)
    assert all(np.array_equal(value, again.parameters()[name]) for name, value in params.items())


def test_the_models_fit_learns_and_predicts_texts():
    texts = ["a fine film", "dull and slow", "fine, fine acting", "slow"]
    vocab = text.Vocabulary.build(text.word_tokenize(s) for s in texts)
    model = TextClassifierModel(vocab, 2, embedding_dim=8, hidden_size=8, classes=["neg", "pos"], seed=0)
    history = model.fit(texts, [1, 0, 1, 0], epochs=30, lr=0.03, batch_size=4, seed=0, progress=False)
    assert history.loss[-1] < history.loss[0] / 10
    assert model.predict_texts(texts) == ["pos", "neg", "pos", "neg"]
    proba = model.predict_proba(texts + ["never seen words"])       # unseen tokens read as <unk>
    assert proba.shape == (5, 2) and np.allclose(proba.sum(axis=1), 1)


# ---------------------------------------------------------------- files

def test_save_and_load_keep_weights_vocabulary_classes_and_tokenizer(tmp_path):
    model = TextClassifierModel(VOCAB, 3, embedding_dim=6, hidden_size=8, pooling="mean", tokenizer="char",
                                lower=False, classes=["a", 2, 3.5], seed=0)
    path = numgru.save(tmp_path / "m.npz", model)
    same = numgru.load(path)
    assert isinstance(same, TextClassifierModel) and same.vocabulary == VOCAB
    assert (same.classes, same.tokenizer, same.lower, same.pooling) == (["a", 2, 3.5], "char", False, "mean")
    assert json.loads(json.dumps(model.config())) == same.config()
    texts = ["w1w2", "W3"]
    np.testing.assert_array_equal(same.predict_proba(texts), model.predict_proba(texts))


def test_load_names_both_sizes_when_the_vocabulary_does_not_match_the_embedding(tmp_path):
    model = TextClassifierModel(VOCAB, 2, embedding_dim=6, hidden_size=8, seed=0)
    path = tmp_path / "m.npz"
    numgru.save(path, model)
    with np.load(path) as archive:
        arrays = dict(archive)
    header = json.loads(str(arrays["__numgru__"]))
    header["config"]["vocabulary"] = header["config"]["vocabulary"][:-3]
    arrays["__numgru__"] = np.array(json.dumps(header))
    np.savez(path, **arrays)
    with pytest.raises(numgru.ModelFileError, match=f"{len(VOCAB) - 3} tokens.*{len(VOCAB)} rows"):
        numgru.load(path)


# ---------------------------------------------------------------- bad input

def test_bad_ids_and_lengths_are_refused_naming_them():
    model = TextClassifierModel(VOCAB, 2, embedding_dim=4, hidden_size=4, seed=0)
    with pytest.raises(TypeError, match="ids"):
        model(padded_ids().astype(np.float64), LENGTHS)
    with pytest.raises(ValueError, match=r"ids.*\[0, 20\)"):
        model(padded_ids() + 100, LENGTHS)
    with pytest.raises(ValueError, match="ids"):
        model(np.array([4, 5, 6]))
    with pytest.raises(ValueError, match="lengths"):
        model(padded_ids(), LENGTHS + 1)
    with pytest.raises(RuntimeError, match="forward"):
        TextClassifierModel(VOCAB, 2, seed=0).backward(np.zeros((5, 2), np.float32))


@pytest.mark.parametrize("texts, error, match", [
    ([], ValueError, "texts must hold at least one text"),
    (["good", ""], ValueError, r"texts\[1\]"),
    (["good", "   "], ValueError, r"texts\[1\]"),
    (["good", 3], TypeError, r"texts\[1\] must be a str"),
    ("good", TypeError, "single str"),
    (np.array([["good", "bad"]]), ValueError, r"1-D.*\(1, 2\)"),
])
def test_bad_texts_are_refused_naming_them(texts, error, match):
    model = TextClassifierModel(VOCAB, 2, embedding_dim=4, hidden_size=4, seed=0)
    with pytest.raises(error, match=match):
        model.predict_texts(texts)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(pooling="sum"), ValueError, "pooling"),
    (dict(tokenizer="bytes"), ValueError, "tokenizer"),
    (dict(embedding_dropout=1.0), ValueError, "embedding_dropout"),
    (dict(classes=["a"]), ValueError, "classes"),
    (dict(classes=["a", ("b",)]), TypeError, r"classes\[1\]"),
    (dict(classes=["a", "a"]), ValueError, "distinct"),
    (dict(lower="yes"), TypeError, "lower"),
])
def test_bad_constructor_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        TextClassifierModel(VOCAB, 2, **kwargs)


def test_cuda_is_refused_naming_the_layer():
    with pytest.raises(RuntimeError, match="TextClassifierModel"):
        TextClassifierModel(VOCAB, 2, device="cuda")


# ---------------------------------------------------------------- the scikit-learn estimator

try:
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.utils import estimator_checks

    from numgru.sklearn import TextClassifier
except ImportError:           # scikit-learn is an optional extra: only its tests are skipped
    TextClassifier = None
needs_sklearn = pytest.mark.skipif(TextClassifier is None, reason="needs scikit-learn")

FAST = dict(embedding_dim=8, hidden_size=8, max_iter=15, learning_rate_init=0.02, batch_size=16, random_state=0)


def reviews(n=60, seed=0):
    """Short synthetic reviews whose label is carried by one word among fillers; labels as strings."""
    rng = np.random.default_rng(seed)
    fillers = ["the", "film", "was", "really", "a", "plot", "and", "acting", "quite"]
    words = {"good": ["great", "good", "lovely"], "bad": ["awful", "bad", "boring"]}
    texts, labels = [], []
    for i in range(n):
        label = "good" if i % 2 else "bad"
        tokens = list(rng.choice(fillers, rng.integers(2, 7)))
        tokens.insert(int(rng.integers(0, len(tokens) + 1)), str(rng.choice(words[label])))
        texts.append(" ".join(tokens) + rng.choice([".", "!", ""]))
        labels.append(label)
    return texts, np.array(labels)


@pytest.fixture(autouse=True)
def _parallel_cpu_kernels():
    """Overrides conftest.py's fixture of this name: these tests fit many tiny models, which the dispatch runs
    serially, as it does for users (the parallel builds are tested above)."""


@needs_sklearn
def test_fit_predict_proba_score_and_string_classes():
    X, y = reviews()
    clf = TextClassifier(**FAST).fit(X, y)
    assert list(clf.classes_) == ["bad", "good"] and clf.classes_.dtype.kind == "U"
    proba = clf.predict_proba(X)
    assert proba.shape == (60, 2) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-12)
    assert set(clf.predict(X)) <= {"bad", "good"}
    assert clf.score(X, y) >= 0.9
    assert clf.model_.classes == ["bad", "good"] and len(clf.vocabulary_) == len(clf.model_.vocabulary)
    assert clf.n_iter_ == len(clf.loss_curve_) == len(clf.validation_loss_curve_)


@needs_sklearn
def test_labels_of_any_type_come_back_as_given():
    X, y = reviews(40)
    ints = np.where(y == "good", 7, -1)
    assert set(TextClassifier(**FAST).fit(X, ints).predict(X)) <= {7, -1}
    days = np.where(y == "good", np.datetime64("2020-01-01"), np.datetime64("2021-06-30"))
    clf = TextClassifier(**FAST).fit(X, days)            # not JSON-able: the model stores no classes
    assert clf.model_.classes is None and clf.predict(X[:2]).dtype == days.dtype


@needs_sklearn
def test_cross_val_score_grid_search_and_pipeline():
    X, y = reviews()
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(TextClassifier(**FAST), X, y, cv=folds)
    assert scores.shape == (3,) and scores.mean() > 0.7
    grid = GridSearchCV(TextClassifier(**FAST), {"pooling": ["max", "last"], "tokenizer": ["word", "char"]},
                        cv=folds).fit(X, y)
    assert set(grid.best_params_) == {"pooling", "tokenizer"} and grid.best_score_ > 0.7
    pipeline = make_pipeline(FunctionTransformer(lambda texts: [s.upper() for s in texts]), TextClassifier(**FAST))
    assert pipeline.fit(X, y).score(X, y) > 0.8


@needs_sklearn
def test_clone_and_pickle():
    X, y = reviews(40)
    clf = TextClassifier(**FAST, pooling="mean")
    fresh = clone(clf)
    assert fresh.get_params() == clf.get_params() and not hasattr(fresh, "model_")
    clf.fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    assert not hasattr(clone(clf), "model_")


@needs_sklearn
def test_same_random_state_gives_identical_models_and_early_stopping_off_uses_every_text():
    X, y = reviews(40)
    first, second = (TextClassifier(**FAST).fit(X, y) for _ in range(2))
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    full = TextClassifier(**dict(FAST, early_stopping=False, max_iter=3)).fit(X, y)
    assert full.validation_loss_curve_ is None and full.n_iter_ == 3
    assert len(full.vocabulary_) > len(first.vocabulary_) - 1     # built from all 40 texts, not 36


@needs_sklearn
@pytest.mark.parametrize("check", ["check_parameters_default_constructible", "check_no_attributes_set_in_init",
                                   "check_get_params_invariance", "check_set_params", "check_estimator_repr",
                                   "check_estimator_cloneable", "check_valid_tag_types", "check_param_validation"])
def test_scikit_learn_checks_that_apply_to_text_input(check):
    """scikit-learn's own suite needs 2-D numeric X (it skips estimators of strings): these checks do not."""
    getattr(estimator_checks, check)("TextClassifier", TextClassifier(**FAST))


@needs_sklearn
@pytest.mark.parametrize("X, error, match", [
    ([], ValueError, "X must hold at least one text"),
    (["good film", ""], ValueError, r"X\[1\]"),
    (["good film", 3.0], TypeError, r"X\[1\] must be a str"),
    (np.array([["good film", "bad"], ["a", "b"]]), ValueError, r"X must be 1-D"),
    ("good film", TypeError, "X must be a list"),
])
def test_bad_texts_are_refused_naming_X(X, error, match):
    y = ["a", "b"][:max(1, len(X))] if not isinstance(X, str) else ["a"]
    with pytest.raises(error, match=match):
        TextClassifier(**FAST).fit(X, y)
    fitted = TextClassifier(**dict(FAST, max_iter=1, early_stopping=False)).fit(["good", "bad"], ["a", "b"])
    with pytest.raises(error, match=match):
        fitted.predict(X)


@needs_sklearn
def test_bad_labels_and_parameters():
    X, y = reviews(20)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        TextClassifier(**FAST).fit(X, y[:-1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        TextClassifier(**FAST).fit(X, ["same"] * 20)
    with pytest.raises(ValueError, match="pooling"):
        TextClassifier(pooling="sum").fit(X, y)


# ---------------------------------------------------------------- the sentiment task and the CLI

def test_sentiment_task_is_a_stratified_seeded_split():
    task = numgru.tasks.sentiment(seed=0)
    assert (len(task.texts_train), len(task.texts_val), len(task.texts_test)) == (2400, 300, 300)
    assert np.bincount(task.y_test).tolist() == [150, 150] and task.classes == ["negative", "positive"]
    sentences = numgru.tasks.sentiment_sentences()[0]
    assert set(task.texts_train) | set(task.texts_val) | set(task.texts_test) == set(sentences)   # a partition
    again, other = numgru.tasks.sentiment(seed=0), numgru.tasks.sentiment(seed=1)
    assert again.texts_test == task.texts_test and other.texts_test != task.texts_test


def test_cli_trains_a_sentiment_model_and_predicts_one_label_a_line(tmp_path, capsys):
    from numgru.__main__ import main
    out = tmp_path / "run"
    assert main(["train", "--task", "sentiment", "--n-train", "48", "--n-val", "16", "--n-test", "16",
                 "--epochs", "2", "--hidden", "8", "--embedding-dim", "8", "--quiet", "--out", str(out)]) == 0
    report = capsys.readouterr().out
    assert "test accuracy" in report and "TF-IDF + LogisticRegression" in report and "majority class" in report
    files = set(os.listdir(out))
    assert {"sentiment.npz", "sentiment-history.json", "sentiment-sentences.txt"} <= files
    model, meta = numgru.load(out / "sentiment.npz", return_metadata=True)
    assert isinstance(model, TextClassifierModel) and model.classes == ["negative", "positive"]
    assert meta["task"] == "sentiment" and 0 <= meta["test_accuracy"] <= 1

    sentences = tmp_path / "in.txt"
    sentences.write_text("What a wonderful phone.\r\nTerrible service\u0085 never again.\nzzqx unseen\n", "utf-8")
    assert main(["predict", str(out / "sentiment.npz"), str(sentences)]) == 0
    labels = capsys.readouterr().out.splitlines()
    assert len(labels) == 3 and set(labels) <= {"negative", "positive"}
    assert main(["predict", str(out / "sentiment.npz"), str(sentences), "--raw"]) == 0
    rows = [[float(p) for p in line.split("\t")] for line in capsys.readouterr().out.splitlines()]
    assert np.allclose(np.sum(rows, axis=1), 1, atol=1e-5)

    sentences.write_text("fine\n\nbad\n", "utf-8")
    assert main(["predict", str(out / "sentiment.npz"), str(sentences)]) == 2
    assert "line 2 is empty" in capsys.readouterr().err
    assert main(["train", "--task", "sentiment", "--bptt", "10", "--out", str(out)]) == 2
    assert "--bptt applies to language-model tasks (shakespeare)" in capsys.readouterr().err
