"""10-fold cross-validated accuracy on the 3,000 review sentences: numgru.sklearn.TextClassifier with its
defaults next to scikit-learn's TfidfVectorizer() + LogisticRegression() (defaults), on the same folds.

    python scripts/sentiment_cv.py                      # StratifiedKFold(10, shuffle=True, random_state=0)
    python scripts/sentiment_cv.py --folds 3 --seed 1 --set hidden_size=64 --set pooling=mean

Prints each fold's accuracy and fit time for both, then the means. ``--threads`` sets Numba's thread
count (default: Numba's); on a machine shared with other work one thread is often the faster.
"""
import argparse
import time

import numpy as np


def _value(text):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"True": True, "False": False, "None": None}.get(text, text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="random_state of the folds")
    parser.add_argument("--random-state", type=int, default=0, help="random_state of the TextClassifier")
    parser.add_argument("--threads", type=int, help="Numba threads")
    parser.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE",
                        help="a TextClassifier parameter other than its default (repeatable)")
    args = parser.parse_args(argv)
    if args.threads:
        import numba
        numba.set_num_threads(args.threads)

    from sklearn.base import clone
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline

    from numgru import tasks
    from numgru.sklearn import TextClassifier

    sentences, labels, _ = tasks.sentiment_sentences()
    params = dict(item.split("=", 1) for item in args.set)
    estimators = {"numgru TextClassifier": TextClassifier(random_state=args.random_state,
                                                          **{k: _value(v) for k, v in params.items()}),
                  "TF-IDF + LogisticRegression": make_pipeline(TfidfVectorizer(), LogisticRegression())}
    print(f"{len(sentences)} sentences, StratifiedKFold({args.folds}, shuffle=True, random_state={args.seed})")
    print(f"numgru: {estimators['numgru TextClassifier']!r}")
    scores = {name: [] for name in estimators}
    seconds = {name: 0.0 for name in estimators}
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    start = time.perf_counter()
    for fold, (train, test) in enumerate(folds.split(sentences, labels)):
        line = [f"fold {fold:2d}"]
        for name, estimator in estimators.items():
            t = time.perf_counter()
            fitted = clone(estimator).fit([sentences[i] for i in train], labels[train])
            scores[name].append(fitted.score([sentences[i] for i in test], labels[test]))
            seconds[name] += time.perf_counter() - t
            epochs = f" ({fitted.n_iter_} epochs)" if hasattr(fitted, "n_iter_") else ""
            line.append(f"{name} {scores[name][-1]:.4f}{epochs}")
        print("   ".join(line), flush=True)
    for name in estimators:
        print(f"{name:28s} mean {np.mean(scores[name]):.4f} (std {np.std(scores[name]):.4f}), "
              f"{seconds[name]:.1f} s for {args.folds} fits and scores")
    first, second = (np.mean(scores[name]) for name in estimators)
    print(f"difference {100 * (first - second):+.2f} points; whole run {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
