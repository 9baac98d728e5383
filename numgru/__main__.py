"""The command line: ``python -m numgru train | generate | predict | transcribe | info | bench`` (also ``numgru``).

    python -m numgru train                      # adding problem T=50: 8 s idle on 2 cores, once compiled
    python -m numgru train --task sunspots --epochs 100 --out runs/
    python -m numgru train --task shakespeare   # a character-level LanguageModel, 10 minutes of training
    python -m numgru generate numgru-out/shakespeare.npz --prompt "ROMEO:" --length 400 --temperature 0.8 --seed 0
    python -m numgru train --task sentiment     # a word-level TextClassifierModel on 2,400 review sentences
    python -m numgru predict numgru-out/sentiment.npz numgru-out/sentiment-sentences.txt
    python -m numgru predict numgru-out/adding.npz numgru-out/adding-inputs.npy
    python -m numgru train --task digits        # spoken digits (FSDD): a bidirectional GRU classifier
    python -m numgru train --task digit-strings # connected digits: a 2-layer bidirectional GRU with CTC
    python -m numgru transcribe numgru-out/digits.npz recordings/7_theo_3.wav   # prints: path<TAB>digits
    python -m numgru info
    python -m numgru bench --quick --chart bench.png
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from . import bench

EXIT_USAGE = 2


class CLIError(Exception):
    """An error the user can fix: printed as one line, exit status 2."""


def _task_value(text):
    """A --task-arg value: an int, a float, true/false (any case) as a bool, None, else the string."""
    words = {"true": True, "false": False, "none": None}
    if text.lower() in words:
        return words[text.lower()]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _parse_task_args(items):
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"--task-arg takes KEY=VALUE (for example T=100), got {item!r}")
        out[key.replace("-", "_")] = _task_value(value)
    return out


def build_parser():
    from . import tasks
    parser = argparse.ArgumentParser(prog="python -m numgru",
                                     description="numgru: GRU training and inference on NumPy arrays.")
    sub = parser.add_subparsers(dest="command", metavar="{train,generate,predict,transcribe,translate,info,bench}")
    sub.required = True

    train = sub.add_parser("train", help="train a GRU on a built-in task, report the test metric, save model and plot",
                           description="Train GRU + Linear on a built-in task (no downloads). Unset options take "
                                       "the task's recipe (see numgru.tasks). Writes the model (.npz), a PNG plot, "
                                       "the history (.json) and a few test inputs (.npy) to --out.")
    train.add_argument("--task", default="adding", choices=list(tasks.TASKS) + list(_TRAINERS),
                       help="the task (default: adding, T=50)")
    train.add_argument("--epochs", type=int, help="maximum number of epochs")
    train.add_argument("--hidden", type=int, help="hidden units per layer")
    train.add_argument("--layers", type=int, help="number of stacked GRU layers")
    train.add_argument("--lr", type=float, help="Adam learning rate")
    train.add_argument("--batch", type=int, help="mini-batch size")
    _add_language_model_arguments(train)
    train.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to run (default: auto)")
    train.add_argument("--seed", type=int, default=0, help="seed of the data, the initial weights and the shuffling")
    train.add_argument("--out", default="numgru-out", help="output directory (default: ./numgru-out)")
    train.add_argument("--patience", type=int, help="stop after this many epochs without improvement")
    train.add_argument("--clip", type=float, help="clip the global gradient norm to this (0: off)")
    train.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="compute precision")
    train.add_argument("--task-arg", action="append", metavar="KEY=VALUE",
                       help="a task generator argument, e.g. --task-arg T=100 (repeatable)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    for size in ("n-train", "n-val", "n-test"):    # hidden: small budgets for tests and smoke runs
        train.add_argument(f"--{size}", type=int, help=argparse.SUPPRESS)

    predict = sub.add_parser("predict", help="run a saved model on a .npy file (a text classifier: on a text file)",
                             description="Run a model saved by `train` (or numgru.save) on the sequences in a .npy "
                                         "file: (B, T, input_size), or (B, T) when input_size is 1, or one "
                                         "sequence (T, input_size). Values are in the task's own units: a "
                                         "standardised series is scaled in and out as in training. A text "
                                         "classifier (train --task sentiment) reads a UTF-8 text file, one text a "
                                         "line, and prints one label a line (an empty or blank line is an error "
                                         "naming it).")
    predict.add_argument("model", help="model file (.npz) written by train or numgru.save")
    predict.add_argument("inputs", help="input sequences (.npy), or texts (one a line) for a text classifier")
    predict.add_argument("--lengths", help="sequence lengths (.npy of integers, one per sequence)")
    predict.add_argument("--out", help="write the predictions to this .npy file (a text classifier: this text file)")
    predict.add_argument("--raw", action="store_true", help="classification: write the logits, not the labels (a "
                                                            "text classifier: each class's probability, tab-separated)")
    predict.add_argument("--batch", type=int, default=1024, help="sequences per forward pass (default 1024)")
    predict.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])

    _add_generate_parser(sub)
    _add_transcribe_parser(sub)
    _add_translate_parser(sub)
    sub.add_parser("info", help="versions, threads, threading layer and which devices work")
    bench_parser = sub.add_parser("bench", help="numgru vs PyTorch side by side: ratios, GFLOP/s, optional PNG chart")
    bench.add_arguments(bench_parser)
    return parser


# ------------------------------------------------------------------------------------------- train

def _load_task(args):
    from . import tasks
    kwargs = _parse_task_args(args.task_arg)
    sizes = tasks.size_arguments(args.task)
    for flag, name in (("n_train", "n_train"), ("n_val", "n_val"), ("n_test", "n_test")):
        value = getattr(args, flag)
        if value is None:
            continue
        if name not in sizes:
            if name == "n_train" and "n_points" in sizes:   # a generated series: scale its length instead
                kwargs["n_points"] = max(value * 10 // 7, 200)
                continue
            raise CLIError(f"--{flag.replace('_', '-')} does not apply to task {args.task!r} (it has a fixed size)")
        kwargs[name] = value
    import inspect
    if "seed" in inspect.signature(tasks.TASKS[args.task]).parameters and "seed" not in kwargs:
        kwargs["seed"] = args.seed
    try:
        return tasks.load(args.task, **kwargs)
    except TypeError as err:
        raise CLIError(f"task {args.task!r}: {err}") from None


def _format_metric(value):
    return f"{value:.4g}" if value is None or abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"


def _verdict(task, value):
    if task.mode == "min":
        if value < task.baseline:
            ratio = task.baseline / value if value > 0 else float("inf")
            return f"{ratio:.0f}x lower than the baseline" if ratio >= 10 else f"{ratio:.2f}x lower than the baseline"
        return "does NOT beat the baseline"
    return "beats the baseline" if value > task.baseline else "does NOT beat the baseline"


def _raw_inputs(task, count=16):
    """A few test inputs in the task's own units (what `predict` expects)."""
    x = task.x_test[:count]
    if task.scaling is not None:
        x = x * task.scaling["std"] + task.scaling["mean"]
    return x.astype(np.float32)


def _print_model(model, out):
    n_params = sum(p.size for p in model.parameters().values())
    print(f"model: {model!r}, {n_params} parameters, on {model.device}", file=out)


def _compile_kernels(model, out, forward, gradient=np.zeros_like):
    """One forward and backward of training's shapes before training (Numba compiles on first calls, which
    would otherwise sit inside the first epoch's timing); prints how long it took; returns its start time."""
    start = time.perf_counter()
    print("compiling the kernels (first call in a process) ...", end=" ", flush=True, file=out)
    model.backward(gradient(forward()))
    model.zero_grad()
    print(f"done in {time.perf_counter() - start:.1f} s", file=out, flush=True)
    return start


def cmd_train(args, out=None):
    out = sys.stdout if out is None else out
    if args.task in _TRAINERS:
        return _TRAINERS[args.task](args, out)
    _reject_language_model_arguments(args)
    from . import __version__
    from .models import GRUModel
    from .optim import Adam
    from .serialization import save
    from .training import evaluate, fit, predict

    task = _load_task(args)
    recipe = dict(task.recipe)
    for key in ("epochs", "hidden", "layers", "lr", "batch", "patience", "clip"):
        value = getattr(args, key)
        if value is not None:
            recipe[key] = value
    clip = recipe.get("clip") or None
    for key in ("epochs", "hidden", "layers", "batch"):
        if recipe[key] < 1:
            raise CLIError(f"--{key} must be at least 1, got {recipe[key]}")
    if recipe["lr"] <= 0:
        raise CLIError(f"--lr must be positive, got {recipe['lr']}")
    if recipe.get("patience") is not None and recipe["patience"] < 1:
        recipe["patience"] = None

    _make_out_dir(args)
    try:
        model = GRUModel(task.input_size, recipe["hidden"], task.num_outputs, recipe["layers"], output=task.output,
                         dtype=args.dtype, device=args.device, seed=args.seed)
    except RuntimeError as err:     # a device that cannot run here
        raise CLIError(str(err)) from None

    print(f"numgru {__version__} | task: {task.description}", file=out)
    lengths_note = " (variable lengths)" if task.lengths_train is not None else ""
    print(f"data: {len(task.x_train)} train / {len(task.x_val)} validation / {len(task.x_test)} test sequences, "
          f"x {task.x_train.shape[1:]}{lengths_note}, {task.kind}", file=out)
    _print_model(model, out)
    print(f"training: Adam lr={recipe['lr']:g}, batch {recipe['batch']}, up to {recipe['epochs']} epochs, "
          f"clip {clip}, patience {recipe.get('patience')}, seed {args.seed}", file=out)

    start = _compile_kernels(model, out, lambda: model(
        task.x_train[:2], **({} if task.lengths_train is None else {"lengths": task.lengths_train[:2]})))
    train_start = time.perf_counter()

    history = fit(model, task.x_train, task.y_train, loss=task.loss, optimizer=Adam([model], lr=recipe["lr"]),
                  epochs=recipe["epochs"], batch_size=recipe["batch"], lengths=task.lengths_train,
                  validation_data=(task.x_val, task.y_val, task.lengths_val), metric=task.metric, mode=task.mode,
                  patience=recipe.get("patience"), clip_norm=clip, seed=args.seed, progress=not args.quiet,
                  desc=task.name)
    _, test_metric = evaluate(model, task.x_test, task.y_test, loss=task.loss, metric=task.metric,
                              lengths=task.lengths_test)
    pred = predict(model, task.x_test, task.lengths_test)
    train_seconds = time.perf_counter() - train_start
    seconds = time.perf_counter() - start
    stop_note = " (early stop)" if history.stopped_early else ""
    best_note = f", weights of epoch {history.best_epoch}" if history.restored_best else ""
    print(f"trained {len(history)} epoch{'s' if len(history) > 1 else ''}{stop_note}{best_note} in "
          f"{train_seconds:.1f} s ({seconds:.1f} s with compilation)", file=out)
    print(f"test {task.metric_name}: {_format_metric(test_metric)}   baseline ({task.baseline_name}): "
          f"{_format_metric(task.baseline)}   -> {_verdict(task, test_metric)}", file=out)

    stem = os.path.join(args.out, task.name)
    metadata = dict(task=task.name, task_params=task.params, description=task.description, output=task.output,
                    loss=task.loss, metric_name=task.metric_name, mode=task.mode, test_metric=test_metric,
                    baseline=task.baseline, baseline_name=task.baseline_name, scaling=task.scaling,
                    classes=task.classes, recipe=recipe, seed=args.seed, seconds=seconds,
                    layout="batch-first (B, T, input_size)")
    model_path = save(stem + ".npz", model, metadata=metadata)
    with open(stem + "-history.json", "w") as f:
        json.dump(dict(history.as_dict(), test_metric=test_metric, baseline=task.baseline), f, indent=1)
    inputs_path = stem + "-inputs.npy"
    np.save(inputs_path, _raw_inputs(task))
    if task.lengths_test is not None:
        np.save(stem + "-lengths.npy", task.lengths_test[:16])
    print(f"model:   {model_path}", file=out)
    try:
        from .plotting import plot_run
        plot_path = plot_run(stem + ".png", history, task, pred, test_metric)
        print(f"plot:    {plot_path}", file=out)
    except ImportError as err:
        print(f"plot:    skipped: {err}", file=out)
    print(f"history: {stem}-history.json", file=out)
    lengths_flag = f" --lengths {stem}-lengths.npy" if task.lengths_test is not None else ""
    print(f"try:     python -m numgru predict {model_path} {inputs_path}{lengths_flag}", file=out)
    return 0


# ------------------------------------------------------------------------ train: a language model

_LM_FLAGS = {"bptt": "--bptt", "time_limit": "--time-limit", "lr_end": "--lr-end",
             "embedding_dim": "--embedding-dim", "eval_every": "--eval-every"}


def _add_language_model_arguments(train):
    group = train.add_argument_group("language models (--task shakespeare)")
    group.add_argument("--bptt", type=int, help="steps of truncated backpropagation through time per window")
    group.add_argument("--time-limit", type=float,
                       help="stop after this many seconds of training (evaluation excluded; 0: no limit); "
                            "--epochs alone drops the recipe's time limit")
    group.add_argument("--lr-end", type=float, help="the learning rate falls linearly from --lr to this over the "
                                                     "epochs or the time limit (equal to --lr: constant)")
    group.add_argument("--embedding-dim", type=int, help="size of the token embedding")
    group.add_argument("--eval-every", type=int, help="score the validation text every this many windows")


def _reject_language_model_arguments(args, allowed=()):
    from .tasks import TEXT_TASKS
    for key, flag in _LM_FLAGS.items():
        if getattr(args, key) is not None and key not in allowed:
            raise CLIError(f"{flag} applies to language-model tasks ({', '.join(TEXT_TASKS)}), not {args.task!r}")


def _language_model_recipe(args, task):
    """The task's recipe with the flags given on the command line."""
    recipe = dict(task.recipe)
    if args.epochs is not None and args.time_limit is None:
        recipe["time_limit"] = None
    for key in ("epochs", "hidden", "layers", "lr", "batch", "clip") + tuple(_LM_FLAGS):
        value = getattr(args, key)
        if value is not None:
            recipe[key] = value
    for key in ("epochs", "hidden", "layers", "batch", "bptt", "embedding_dim", "eval_every"):
        if recipe[key] is not None and recipe[key] < 1:
            raise CLIError(f"--{key.replace('_', '-')} must be at least 1, got {recipe[key]}")
    if recipe["lr"] <= 0 or recipe["lr_end"] < 0:
        raise CLIError(f"--lr must be positive and --lr-end not negative, got {recipe['lr']} and {recipe['lr_end']}")
    recipe["clip"] = recipe["clip"] or None                   # 0: no clipping
    recipe["time_limit"] = recipe["time_limit"] or None       # 0: no limit
    if recipe["epochs"] is None and recipe["time_limit"] is None:
        raise CLIError("--time-limit 0 needs --epochs: training would never stop")
    return recipe


def _named_task(args, registry, sizes, seeded=True):
    """Task ``args.task`` of ``registry``, built from --task-arg, the size flags named in ``sizes`` that were
    given and (``seeded``) --seed; a task's own error becomes a CLIError naming it."""
    kwargs = _parse_task_args(args.task_arg)
    kwargs.update({name: getattr(args, name) for name in sizes if getattr(args, name) is not None})
    if seeded:
        kwargs.setdefault("seed", args.seed)
    try:
        return registry[args.task](**kwargs)
    except (TypeError, ValueError) as err:
        raise CLIError(f"task {args.task!r}: {err}") from None


def _make_out_dir(args):
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as err:
        raise CLIError(f"cannot create the output directory {args.out!r}: {err}") from None


def _train_language_model(args, out):
    """`train --task shakespeare`: a LanguageModel by truncated BPTT; saves it, its curve and a sample of it."""
    import shlex

    from . import __version__, tasks, text
    from .language_model import LanguageModel
    from .serialization import save

    if args.n_test is not None or args.patience is not None:
        raise CLIError(f"--{'n-test' if args.n_test is not None else 'patience'} does not apply to task {args.task!r}")
    task = _named_task(args, tasks.TEXT_TASKS, ("n_train", "n_val"), seeded=False)
    recipe = _language_model_recipe(args, task)
    _make_out_dir(args)
    vocab = text.Vocabulary.build([text.tokenize(task.train_text, task.tokenizer, task.lower)])
    try:
        model = LanguageModel(vocab, recipe["embedding_dim"], recipe["hidden"], recipe["layers"],
                              dropout=recipe["dropout"], tokenizer=task.tokenizer, lower=task.lower, dtype=args.dtype,
                              device=args.device, seed=args.seed)
    except (RuntimeError, ValueError) as err:     # a device that cannot run it
        raise CLIError(str(err)) from None
    unit = "char" if task.tokenizer == "char" else "token"
    print(f"numgru {__version__} | task: {task.description}", file=out)
    print(f"data: {len(task.train_text)} training / {len(task.val_text)} validation characters, "
          f"vocabulary of {len(vocab)} tokens ({task.tokenizer}-level, specials included)", file=out)
    _print_model(model, out)
    limit = "none" if recipe["time_limit"] is None else f"{recipe['time_limit']:g} s"
    print(f"training: truncated BPTT, {recipe['batch']} streams x {recipe['bptt']} steps a window, Adam "
          f"lr={recipe['lr']:g} -> {recipe['lr_end']:g}, clip {recipe['clip']}, epochs "
          f"{recipe['epochs'] or 'unlimited'}, time limit {limit}, seed {args.seed}", file=out)

    warm = model.encode(task.train_text[:recipe["batch"] * recipe["bptt"]])
    # a window of the shape training uses (the text repeated if short), so its kernels are the ones compiled
    window = np.resize(warm, (recipe["batch"], max(1, min(recipe["bptt"], len(warm) // recipe["batch"]))))
    start = _compile_kernels(model, out, lambda: model(window)[0])
    try:
        history = model.fit(task.train_text, task.val_text, batch_size=recipe["batch"], bptt=recipe["bptt"],
                            epochs=recipe["epochs"], lr=recipe["lr"], lr_end=recipe["lr_end"], clip_norm=recipe["clip"],
                            time_limit=recipe["time_limit"], eval_every=recipe["eval_every"], seed=args.seed,
                            progress=not args.quiet)
    except ValueError as err:           # a text too short for the batch, ...
        raise CLIError(str(err)) from None
    seconds = time.perf_counter() - start
    nats = history.val_nats[-1]
    stop = "time limit" if history.stopped_by_time else "epochs done"
    print(f"trained {history.windows[-1]} windows ({history.epochs[-1]:.2f} epochs, {stop}) in "
          f"{history.seconds[-1]:.1f} s of training ({seconds:.1f} s with compilation and evaluation)", file=out)
    print(f"validation: {nats:.4f} nats/{unit}, perplexity {history.val_perplexity[-1]:.3f}, "
          f"{history.val_bits[-1]:.4f} bits/{unit}", file=out)

    stem = os.path.join(args.out, task.name)
    metadata = dict(task=task.name, task_params=task.params, description=task.description, recipe=recipe,
                    seed=args.seed, seconds=seconds, val_nats=nats, val_bits=history.val_bits[-1],
                    val_perplexity=history.val_perplexity[-1])
    model_path = save(stem + ".npz", model, metadata=metadata)
    with open(stem + "-history.json", "w") as f:
        json.dump(dict(history.as_dict(), recipe=recipe, seed=args.seed), f, indent=1)
    print(f"model:   {model_path}", file=out)
    try:
        from .plotting import plot_language_model
        plot_path = plot_language_model(stem + ".png", history, f"numgru LanguageModel: {task.description}")
        print(f"plot:    {plot_path}", file=out)
    except ImportError as err:
        print(f"plot:    skipped: {err}", file=out)
    print(f"history: {stem}-history.json", file=out)
    sample_args = dict(prompt=task.prompt, length=400, temperature=0.8, seed=args.seed)
    print(f"sample ({', '.join(f'{k}={v!r}' for k, v in sample_args.items() if k != 'prompt')}):", file=out)
    print(task.prompt + ("" if task.tokenizer == "char" else " ") + model.generate(**sample_args), file=out)
    print(f"try:     python -m numgru generate {model_path} --prompt {shlex.quote(task.prompt)} --length 400 "
          f"--temperature 0.8 --seed {args.seed}", file=out)
    return 0


# ------------------------------------------------------------------- train: a text classifier

def _tfidf_accuracy(task):
    """Test accuracy of scikit-learn's TfidfVectorizer() + LogisticRegression() (defaults) trained on the same
    training texts, or None without scikit-learn."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
    except ImportError:
        return None
    baseline = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(task.texts_train, task.y_train)
    return float(baseline.score(task.texts_test, task.y_test))


def _train_text_classifier(args, out):
    """`train --task sentiment`: a TextClassifierModel with early stopping on the validation split; test accuracy
    next to TF-IDF + logistic regression and the majority class; saves the model, a plot and test sentences."""
    from . import __version__, tasks, text
    from .serialization import save
    from .text_classifier import TextClassifierModel

    _reject_language_model_arguments(args, allowed=("embedding_dim",))
    task = _named_task(args, tasks.TEXT_CLASSIFICATION_TASKS, ("n_train", "n_val", "n_test"))
    for key in ("epochs", "hidden", "layers", "batch", "patience", "embedding_dim"):
        value = getattr(args, key)
        if value is not None and value < 1:
            raise CLIError(f"--{key.replace('_', '-')} must be at least 1, got {value}")
    if args.lr is not None and args.lr <= 0:
        raise CLIError(f"--lr must be positive, got {args.lr}")
    model_args = {name: getattr(args, flag) for name, flag in (("embedding_dim", "embedding_dim"),
                  ("hidden_size", "hidden"), ("num_layers", "layers")) if getattr(args, flag) is not None}
    import inspect
    defaults = inspect.signature(TextClassifierModel.fit).parameters
    fit_args = {name: defaults[name].default if getattr(args, flag) is None else getattr(args, flag)
                for name, flag in (("epochs", "epochs"), ("lr", "lr"), ("batch_size", "batch"),
                                   ("patience", "patience"))}
    fit_args["clip_norm"] = args.clip or None                      # 0: no clipping
    _make_out_dir(args)
    vocab = text.Vocabulary.build(text.tokenize_texts("texts_train", task.texts_train, task.tokenizer, task.lower))
    try:
        model = TextClassifierModel(vocab, len(task.classes), tokenizer=task.tokenizer, lower=task.lower,
                                    classes=task.classes, dtype=args.dtype, device=args.device, seed=args.seed,
                                    **model_args)
    except RuntimeError as err:     # a device that cannot run it
        raise CLIError(str(err)) from None
    print(f"numgru {__version__} | task: {task.description}", file=out)
    print(f"data: {len(task.texts_train)} train / {len(task.texts_val)} validation / {len(task.texts_test)} test "
          f"texts, vocabulary of {len(vocab)} tokens ({task.tokenizer}-level, from the training texts, specials "
          f"included; unseen tokens read as <unk>)", file=out)
    _print_model(model, out)
    print(f"training: Adam lr={fit_args['lr']:g}, batch {fit_args['batch_size']}, up to {fit_args['epochs']} epochs, "
          f"clip {fit_args['clip_norm']}, early stop after {fit_args['patience']} epochs without a lower validation "
          f"loss, seed {args.seed}", file=out)

    start = _compile_kernels(model, out, lambda: model(*model.encode(task.texts_train[:2])))
    history = model.fit(task.texts_train, task.y_train, validation_data=(task.texts_val, task.y_val), seed=args.seed,
                        progress=not args.quiet, desc=task.name, **fit_args)
    pred = model.predict_logits(*model.encode(task.texts_test)).argmax(axis=1)
    accuracy = float((pred == task.y_test).mean())
    seconds = time.perf_counter() - start
    stop_note = " (early stop)" if history.stopped_early else ""
    best_note = f", weights of epoch {history.best_epoch}" if history.restored_best else ""
    print(f"trained {len(history)} epoch{'s' if len(history) > 1 else ''}{stop_note}{best_note} in "
          f"{sum(history.seconds):.1f} s ({seconds:.1f} s with compilation)", file=out)
    majority = float((task.y_test == np.bincount(task.y_train, minlength=len(task.classes)).argmax()).mean())
    tfidf = _tfidf_accuracy(task)
    tfidf_note = "skipped (needs scikit-learn)" if tfidf is None else f"{tfidf:.4f}"
    print(f"test accuracy: {accuracy:.4f}   TF-IDF + LogisticRegression (scikit-learn defaults, same training texts): "
          f"{tfidf_note}   majority class: {majority:.4f}", file=out)

    stem = os.path.join(args.out, task.name)
    metadata = dict(task=task.name, task_params=task.params, description=task.description, test_accuracy=accuracy,
                    tfidf_logistic_regression_accuracy=tfidf, majority_accuracy=majority, seed=args.seed,
                    seconds=seconds, model_args=model_args, fit_args=fit_args)
    model_path = save(stem + ".npz", model, metadata=metadata)
    with open(stem + "-history.json", "w") as f:
        json.dump(dict(history.as_dict(), test_accuracy=accuracy, tfidf_logistic_regression_accuracy=tfidf,
                       majority_accuracy=majority), f, indent=1)
    sentences_path = stem + "-sentences.txt"
    with open(sentences_path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(sentence.strip() + "\n" for sentence in task.texts_test[:16])
    print(f"model:   {model_path}", file=out)
    try:
        from .plotting import plot_text_classifier
        label = f"test accuracy {accuracy:.4f} (TF-IDF + LR {tfidf_note}, majority {majority:.4f})"
        plot_path = plot_text_classifier(stem + ".png", history, task.y_test, pred, task.classes, label,
                                         f"numgru TextClassifierModel: {task.description}")
        print(f"plot:    {plot_path}", file=out)
    except ImportError as err:
        print(f"plot:    skipped: {err}", file=out)
    print(f"history: {stem}-history.json", file=out)
    print(f"try:     python -m numgru predict {model_path} {sentences_path}   (the first 16 test sentences, one a "
          "line)", file=out)
    return 0


_TEXT_TRAINERS = {"shakespeare": _train_language_model, "sentiment": _train_text_classifier}


# ------------------------------------------------------------------- train: speech

def _task_recipe(args, task):
    """The task's recipe with the flags given on the command line (checked); --clip 0 turns clipping off."""
    recipe = dict(task.recipe)
    for key in ("epochs", "hidden", "layers", "batch", "patience"):
        value = getattr(args, key)
        if value is not None:
            if value < 1:
                raise CLIError(f"--{key} must be at least 1, got {value}")
            recipe[key] = value
    if args.lr is not None:
        if args.lr <= 0:
            raise CLIError(f"--lr must be positive, got {args.lr}")
        recipe["lr"] = args.lr
    recipe["clip"] = recipe.get("clip") if args.clip is None else args.clip or None
    return recipe


def _ctc_targets(label_lists):
    """Digit sequences -> fit's CTC targets (N, S): output k+1 is digit k, -1 past each end."""
    targets = np.full((len(label_lists), max(len(y) for y in label_lists)), -1, np.int64)
    for row, labels in zip(targets, label_lists):
        row[:len(labels)] = np.asarray(labels) + 1
    return targets


def _fsdd_examples(task, count=3):
    """Paths of a few test recordings in ../shared/datasets/fsdd (when it is there) for the `try:` line."""
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "datasets",
                        "fsdd", "recordings")
    if not os.path.isdir(root):
        return []
    names = sorted(n for n in os.listdir(root) if n.endswith(".wav") and int(n[:-4].rsplit("_", 1)[1]) < 5)
    return [os.path.relpath(os.path.join(root, n)) for n in names[::max(1, len(names) // count)][:count]]


def _train_speech(args, out):
    """`train --task digits|digit-strings`: a SpeechClassifierModel or a CTCModel on FSDD with early stopping;
    the test metric next to baselines computed in the same run; saves the model, a plot and its history."""
    from . import __version__, speech, tasks
    from .serialization import save
    from .training import fit

    _reject_language_model_arguments(args)
    task = _named_task(args, tasks.SPEECH_TASKS, ("n_train", "n_val", "n_test"))
    recipe = _task_recipe(args, task)
    _make_out_dir(args)
    front_args = {k: recipe[k] for k in ("kind", "n_mfcc", "deltas", "normalize", "stride") if k in recipe}
    if front_args["normalize"] == "global":
        front_args["mean"], front_args["std"] = speech.global_statistics(
            task.x_train, speech.front_end(settings=task.settings, **dict(front_args, normalize="none")))
    front = speech.front_end(settings=task.settings, **front_args)
    ctc_task = task.kind == "ctc"
    try:
        if ctc_task:
            model = speech.CTCModel(front, task.classes, recipe["hidden"], recipe["layers"],
                                    bidirectional=recipe.get("bidirectional", True), dropout=recipe["dropout"],
                                    dtype=args.dtype, device=args.device, seed=args.seed)
        else:
            model = speech.SpeechClassifierModel(front, len(task.classes), recipe["hidden"], recipe["layers"],
                                                 pooling=recipe["pooling"], dropout=recipe["dropout"],
                                                 classes=task.classes, dtype=args.dtype, device=args.device,
                                                 seed=args.seed)
    except (RuntimeError, ValueError) as err:     # a device that cannot run it
        raise CLIError(str(err)) from None
    splits = [speech.prepare(x, front) for x in (task.x_train, task.x_val, task.x_test)]
    (x_train, len_train), (x_val, len_val), (x_test, len_test) = splits
    if ctc_task:
        y_train, y_val = _ctc_targets(task.y_train), _ctc_targets(task.y_val)
        loss, metric, mode = speech.ctc_objective, speech.label_error_rate, "min"
    else:
        y_train, y_val = task.y_train, task.y_val
        loss, metric, mode = "cross_entropy", "accuracy", "max"
    print(f"numgru {__version__} | task: {task.description}", file=out)
    frames = f"{front['kind']}{' + ' + str(front['deltas']) + ' deltas' if front['deltas'] else ''}, " \
             f"{front['normalize']} normalisation, {front['stride']} frame(s) a step"
    print(f"data: {len(x_train)} train / {len(x_val)} validation / {len(x_test)} test utterances, {frames}: "
          f"{front['size']} features a step, {int(len_train.mean())} steps on average", file=out)
    _print_model(model, out)
    print(f"training: Adam lr={recipe['lr']:g}, batch {recipe['batch']}, up to {recipe['epochs']} epochs, clip "
          f"{recipe['clip']}, early stop after {recipe['patience']} epochs without a better validation "
          f"{'label error rate' if ctc_task else 'accuracy'}, seed {args.seed}", file=out)

    warm_mask = np.arange(x_train.shape[1]) < len_train[:2, None]
    start = _compile_kernels(model, out, lambda: model(x_train[:2], lengths=len_train[:2]),
                             (lambda warm: loss(warm, y_train[:2], mask=warm_mask)[1]) if ctc_task else np.zeros_like)
    history = fit(model, x_train, y_train, loss=loss, lr=recipe["lr"], epochs=recipe["epochs"],
                  batch_size=recipe["batch"], lengths=len_train, validation_data=(x_val, y_val, len_val),
                  metric=metric, mode=mode, patience=recipe["patience"], clip_norm=recipe["clip"], seed=args.seed,
                  progress=not args.quiet, desc=task.name)
    train_seconds = sum(history.seconds)
    stop_note = " (early stop)" if history.stopped_early else ""
    best_note = f", weights of epoch {history.best_epoch}" if history.restored_best else ""
    print(f"trained {len(history)} epoch{'s' if len(history) > 1 else ''}{stop_note}{best_note} in "
          f"{train_seconds:.1f} s ({time.perf_counter() - start:.1f} s with compilation)", file=out)
    results = (_report_ctc if ctc_task else _report_classifier)(model, task, x_test, len_test, recipe, out)
    seconds = time.perf_counter() - start

    stem = os.path.join(args.out, task.name)
    metadata = dict(task=task.name, task_params=task.params, description=task.description, recipe=recipe,
                    seed=args.seed, total_seconds=seconds, train_seconds=train_seconds,
                    **{k: v for k, v in results.items() if k not in ("plot", "label")})
    model_path = save(stem + ".npz", model, metadata=metadata)
    with open(stem + "-history.json", "w") as f:
        json.dump(dict(history.as_dict(), **metadata), f, indent=1, default=str)
    print(f"model:   {model_path}", file=out)
    try:
        from . import plotting
        if ctc_task:
            plot_path = plotting.plot_ctc(stem + ".png", history, *results["plot"])
        else:
            plot_path = plotting.plot_text_classifier(stem + ".png", history, task.y_test, results["plot"],
                                                      task.classes, results["label"],
                                                      f"numgru SpeechClassifierModel: {task.description}")
        print(f"plot:    {plot_path}", file=out)
    except ImportError as err:
        print(f"plot:    skipped: {err}", file=out)
    print(f"history: {stem}-history.json", file=out)
    examples = _fsdd_examples(task)
    if examples:
        print(f"try:     python -m numgru transcribe {model_path} {' '.join(examples)}", file=out)
    return 0


def _report_classifier(model, task, x_test, len_test, recipe, out):
    """Test accuracy next to the majority class and logistic regression on MFCC statistics."""
    from . import speech
    pred = model.predict_logits(x_test, len_test).argmax(axis=1)
    accuracy = float((pred == task.y_test).mean())
    majority = float((task.y_test == np.bincount(task.y_train, minlength=len(task.classes)).argmax()).mean())
    baseline = speech.summary_logistic_regression(task.x_train, task.y_train, task.x_test, len(task.classes),
                                                  task.settings)
    summary = float((baseline == task.y_test).mean())
    print(f"test accuracy: {accuracy:.4f} ({int((pred == task.y_test).sum())}/{len(pred)})   logistic regression on "
          f"MFCC + deltas mean/std (same training recordings): {summary:.4f}   majority class: {majority:.4f}",
          file=out)
    label = f"test accuracy {accuracy:.4f}\n(MFCC-statistics LR {summary:.4f}, majority {majority:.4f})"
    return dict(test_accuracy=accuracy, summary_logistic_regression_accuracy=summary, majority_accuracy=majority,
                plot=pred, label=label)


def _report_ctc(model, task, x_test, len_test, recipe, out):
    """Test digit error rates of greedy and beam decoding next to segmentation + a classifier, and hearing nothing."""
    from . import ctc, speech
    refs = [np.asarray(y) for y in task.y_test]
    index = {label: k for k, label in enumerate(task.classes)}
    rates = {}
    for name, width in (("greedy", None), (f"beam {recipe['beam_width']}", recipe["beam_width"])):
        t0 = time.perf_counter()
        hyps = [np.array([index[label] for label in path], np.int64)
                for path in model.decode(x_test, len_test, beam_width=width)]
        rates[name] = (ctc.error_rate(refs, hyps), time.perf_counter() - t0, hyps)
    segmented = ctc.error_rate(refs, speech.segment_and_classify(task.x_train, task.y_train, task.x_test,
                                                                 len(task.classes), task.settings))
    exact = {name: float(np.mean([len(h) == len(r) and (h == r).all() for h, r in zip(hyps, refs)]))
             for name, (_, _, hyps) in rates.items()}
    line = "   ".join(f"{name} {rate:.4f} ({exact[name]:.3f} strings exact, {seconds:.1f} s)"
                      for name, (rate, seconds, _) in rates.items())
    print(f"test digit error rate: {line}   energy segmentation + logistic regression on MFCC statistics "
          f"(same training strings): {segmented:.4f}   nothing heard: 1.0000", file=out)
    for ref, hyp in list(zip(refs, rates["greedy"][2]))[:3]:
        print(f"  said {' '.join(map(str, ref)):15s} heard {' '.join(map(str, hyp))}", file=out)
    greedy, beam = (rates[name][0] for name in rates)
    streaming = {}
    if not model.bidirectional:
        streaming = _stream_test_strings(model, task, rates["greedy"][2])
        print(f"streamed 100 ms at a time (SpeechStream): {streaming['stream_equal']}/{len(refs)} test strings heard "
              f"as in one call; {streaming['stream_us_per_frame']:.0f} us per 10 ms frame at B=1", file=out)
    log_probs = model.predict_log_probs(x_test[:1], len_test[:1])[0, :len_test[0]]
    title = f"numgru CTCModel: {task.description}\ntest digit error rate greedy {greedy:.4f}, beam {beam:.4f}"
    return dict(test_der_greedy=greedy, test_der_beam=beam, segmentation_der=segmented,
                exact_greedy=exact["greedy"], **streaming, plot=(log_probs, ["blank"] + task.classes,
                                                    " ".join(map(str, refs[0])), title))


# `train --task NAME` for the tasks that are not numgru.tasks.TASKS (GRUModel + fit)
def _stream_test_strings(model, task, whole_hyps, chunk_frames=10):
    """Greedy decoding of each test string through ``SpeechStream``, ``chunk_frames`` log-mel frames (100 ms) a push,
    against the whole-string decoding: how many agree, and the time per 10 ms frame."""
    stream = model.stream()
    stream.push_frames(task.x_test[0][:chunk_frames])          # compile the stream's kernels before timing
    stream.reset()
    index = {label: k for k, label in enumerate(task.classes)}
    equal, frames, start = 0, 0, time.perf_counter()
    for log_mel, whole in zip(task.x_test, whole_hyps):
        heard = []
        for i in range(0, len(log_mel), chunk_frames):
            heard += stream.push_frames(log_mel[i:i + chunk_frames])
        heard += stream.finish()
        equal += [index[label] for label in heard] == whole.tolist()
        frames += len(log_mel)
    return dict(stream_equal=equal, stream_us_per_frame=(time.perf_counter() - start) / frames * 1e6)


# ------------------------------------------------------------------- train: translation

def _train_translation(args, out):
    """`train --task translate`: Seq2Seq with attention and, as a baseline, without it, on the same pairs with
    early stopping; test BLEU of greedy and beam decoding next to copying the source; saves both models, the
    histories and a plot of the losses and of one test sentence's attention weights."""
    import shlex

    from . import __version__, bleu, tasks, text
    from .seq2seq import Seq2Seq
    from .serialization import save

    _reject_language_model_arguments(args, allowed=("embedding_dim",))
    task = _named_task(args, tasks.TRANSLATION_TASKS, ("n_train", "n_test"))
    recipe = _task_recipe(args, task)
    if args.embedding_dim is not None:
        if args.embedding_dim < 1:
            raise CLIError(f"--embedding-dim must be at least 1, got {args.embedding_dim}")
        recipe["embedding_dim"] = args.embedding_dim
    _make_out_dir(args)
    vocabularies = [text.Vocabulary.build(text.tokenize_texts(name, sentences, task.tokenizer, lower))
                    for name, sentences, lower in (("sources_train", task.sources_train, task.source_lower),
                                                   ("targets_train", task.targets_train, task.target_lower))]
    print(f"numgru {__version__} | task: {task.description}", file=out)
    print(f"data: {len(task.sources_train)} training / {len(task.sources_val)} validation pairs, "
          f"{len(task.sources_test)} test sentences with {sum(map(len, task.references_test))} references; "
          f"vocabularies of {len(vocabularies[0])} source and {len(vocabularies[1])} target tokens "
          f"({task.tokenizer}-level, from the training pairs, specials included)", file=out)
    print(f"training: Adam lr={recipe['lr']:g}, batch {recipe['batch']}, dropout {recipe['dropout']}, up to "
          f"{recipe['epochs']} epochs, clip {recipe['clip']}, early stop after {recipe['patience']} epochs without "
          f"a lower validation loss, seed {args.seed}", file=out)
    models, histories = {}, {}
    start = time.perf_counter()
    for attention in (recipe["attention"], None):
        try:
            model = Seq2Seq(*vocabularies, recipe["embedding_dim"], recipe["hidden"], recipe["layers"],
                            attention=attention, dropout=recipe["dropout"], tokenizer=task.tokenizer,
                            source_lower=task.source_lower, target_lower=task.target_lower, dtype=args.dtype,
                            device=args.device, seed=args.seed)
        except (RuntimeError, ValueError) as err:      # a device that cannot run it
            raise CLIError(str(err)) from None
        _print_model(model, out)
        if attention is not None:
            source, source_lengths = model.encode_sources(task.sources_train[:2])
            target_in, _, target_lengths = model.encode_targets(task.targets_train[:2])
            start = _compile_kernels(model, out, lambda: model(source, target_in, source_lengths, target_lengths))
        histories[attention] = model.fit(
            task.sources_train, task.targets_train, validation_data=(task.sources_val, task.targets_val),
            epochs=recipe["epochs"], batch_size=recipe["batch"], lr=recipe["lr"], patience=recipe["patience"],
            clip_norm=recipe["clip"], seed=args.seed, progress=not args.quiet,
            desc="attention" if attention else "no attention")
        models[attention] = model
        history = histories[attention]
        print(f"  trained {len(history)} epochs{' (early stop)' if history.stopped_early else ''}, weights of epoch "
              f"{history.best_epoch}, {sum(history.seconds):.1f} s; validation loss {history.best_metric:.4f} "
              "nats/token", file=out)
    decode = dict(max_len=recipe["max_len"], length_penalty=recipe["length_penalty"])
    scores = {"copy the source": bleu.corpus_bleu(task.sources_test, task.references_test)}
    translations = {}
    for attention, name in ((recipe["attention"], "attention"), (None, "no attention")):
        for width in (1, recipe["beam"]):
            key = f"{name}, {'greedy' if width == 1 else f'beam {width}'}"
            translations[key] = models[attention].translate(task.sources_test, beam_width=width, **decode)
            scores[key] = bleu.corpus_bleu(translations[key], task.references_test)
    seconds = time.perf_counter() - start
    print(f"test BLEU ({len(task.sources_test)} sentences, corpus BLEU as sacrebleu computes it, every reference; "
          f"{seconds:.1f} s with compilation and decoding):", file=out)
    for key, score in scores.items():
        print(f"  {key:24s} {score.score:6.2f}   {score}", file=out)
    best = f"attention, beam {recipe['beam']}"
    print(f"examples ({best}):", file=out)
    for i in range(min(5, len(task.sources_test))):
        print(f"  {task.sources_test[i]}  ->  {translations[best][i]}   (references: "
              f"{' | '.join(task.references_test[i])})", file=out)

    stem = os.path.join(args.out, task.name)
    bleu_scores = {key: score.score for key, score in scores.items()}
    metadata = dict(task=task.name, task_params=task.params, description=task.description, recipe=recipe,
                    seed=args.seed, seconds=seconds, test_bleu=bleu_scores)
    model_path = save(stem + ".npz", models[recipe["attention"]], metadata=metadata)
    baseline_path = save(stem + "-no-attention.npz", models[None], metadata=metadata)
    with open(stem + "-history.json", "w") as f:
        json.dump(dict(attention=histories[recipe["attention"]].as_dict(), no_attention=histories[None].as_dict(),
                       test_bleu=bleu_scores, recipe=recipe, seed=args.seed), f, indent=1)
    print(f"model:   {model_path} (baseline: {baseline_path})", file=out)
    try:
        from .plotting import plot_translation
        model = models[recipe["attention"]]
        shown = next((i for i, t in enumerate(translations[best]) if len(t.split()) >= 3), 0)
        sentence, said = task.sources_test[shown], translations[best][shown]
        said = said.split(" ") if said else []
        target_in = model.target_vocabulary.encode(said, add_bos=True)[None]
        source, source_lengths = model.encode_sources([sentence])
        weights = model.attention_weights(source, target_in, source_lengths)[0]
        plot_path = plot_translation(stem + ".png", histories[recipe["attention"]], histories[None],
                                     text.tokenize(sentence, task.tokenizer, task.source_lower), said + [text.EOS],
                                     weights, f"numgru Seq2Seq: {task.description}")
        print(f"plot:    {plot_path}", file=out)
    except ImportError as err:
        print(f"plot:    skipped: {err}", file=out)
    print(f"history: {stem}-history.json", file=out)
    print(f"try:     python -m numgru translate {model_path} {shlex.quote(task.sources_test[0])}", file=out)
    return 0


_TRAINERS = dict(_TEXT_TRAINERS, **{"digits": _train_speech, "digit-strings": _train_speech,
                                    "translate": _train_translation})


# ---------------------------------------------------------------------------------------- generate

def _load_model(path, kinds, runs):
    """The model saved at ``path``, on the CPU, if it is one of ``kinds``; else a CLIError ending in ``runs``."""
    from .serialization import ModelFileError, load
    try:
        model = load(path, device="cpu")
    except (FileNotFoundError, ModelFileError, RuntimeError) as err:
        raise CLIError(str(err)) from None
    if not isinstance(model, kinds):
        raise CLIError(f"{path} holds a {type(model).__name__}; {runs}")
    return model


def _add_generate_parser(sub):
    generate = sub.add_parser("generate", help="write text with a saved language model",
                              description="Continue a prompt with a LanguageModel saved by `train --task "
                                          "shakespeare` (or numgru.save): prints the prompt and the new text.")
    generate.add_argument("model", help="model file (.npz) holding a LanguageModel")
    generate.add_argument("--prompt", required=True, help="the text to continue (characters the model never saw "
                                                          "read as <unk>)")
    generate.add_argument("--length", type=int, default=400, help="new tokens to write (default 400)")
    generate.add_argument("--temperature", type=float, default=1.0,
                          help="divides the logits: below 1 safer, above 1 wilder (default 1)")
    generate.add_argument("--top-k", type=int, help="draw only among the k likeliest tokens (1: greedy)")
    generate.add_argument("--seed", type=int, help="sampling seed: the same seed writes the same text "
                                                   "(default: a fresh one each run)")


def cmd_generate(args, out=None):
    out = sys.stdout if out is None else out
    from .language_model import LanguageModel
    model = _load_model(args.model, LanguageModel, "generate runs a LanguageModel (what `python -m numgru train "
                                                   "--task shakespeare` writes)")
    try:
        new = model.generate(args.prompt, args.length, temperature=args.temperature, top_k=args.top_k,
                             seed=args.seed)
    except (TypeError, ValueError) as err:
        raise CLIError(str(err)) from None
    print(args.prompt + ("" if model.tokenizer == "char" or not new else " ") + new, file=out)
    return 0


# -------------------------------------------------------------------------------------- transcribe

def _add_transcribe_parser(sub):
    transcribe = sub.add_parser("transcribe", help="say what was spoken in WAV files, with a saved speech model",
                                description="Run a SpeechClassifierModel or CTCModel saved by `train --task digits` "
                                            "or `--task digit-strings` on audio files and print one line a file: "
                                            "its path, a tab, and the labels heard separated by spaces. A file "
                                            "that cannot be used (unreadable, stereo, empty, silent, too short) "
                                            "is reported on standard error, naming it; the others are still "
                                            "transcribed, and the exit status is then 1.")
    transcribe.add_argument("model", help="model file (.npz) holding a SpeechClassifierModel or CTCModel")
    transcribe.add_argument("files", nargs="+", help="audio files: WAV (PCM or float); FLAC/OGG with numgru[audio]")
    transcribe.add_argument("--beam", type=int, help="CTC models: prefix beam search of this width (default: "
                                                     "greedy, the best path)")
    transcribe.add_argument("--no-resample", action="store_true",
                            help="refuse a file whose sample rate is not the model's (default: resample it)")
    transcribe.add_argument("--mix", choices=["error", "mean"], default="error",
                            help="multi-channel files: refuse them (default) or average the channels")


def cmd_transcribe(args, out=None):
    out = sys.stdout if out is None else out
    from .speech import CTCModel, SpeechClassifierModel
    model = _load_model(args.model, (SpeechClassifierModel, CTCModel),
                        "transcribe runs a SpeechClassifierModel or a CTCModel (what `python -m numgru train --task "
                        "digits` or `--task digit-strings` writes)")
    if args.beam is not None:
        if not isinstance(model, CTCModel):
            raise CLIError(f"--beam applies to CTC models; {args.model} holds a {type(model).__name__}")
        if args.beam < 1:
            raise CLIError(f"--beam must be at least 1, got {args.beam}")
    options = dict(resample=not args.no_resample, mix=args.mix)
    if isinstance(model, CTCModel):
        options["beam_width"] = args.beam
    failed = 0
    for path in args.files:
        try:
            (labels,) = model.transcribe([path], **options)
        except (FileNotFoundError, ValueError, TypeError) as err:
            print(f"numgru transcribe: error: {err}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path}\t{' '.join(str(label) for label in labels)}", file=out, flush=True)
    return 1 if failed else 0


# --------------------------------------------------------------------------------------- translate

def _add_translate_parser(sub):
    translate = sub.add_parser("translate", help="translate sentences with a saved Seq2Seq model",
                               description="Translate sentences with a Seq2Seq saved by `train --task translate` "
                                           "(or numgru.save): one translation a line, in the order given. A "
                                           "sentence that cannot be translated (empty, or no word the model "
                                           "knows) is reported on standard error, naming it, and gets an empty "
                                           "line; the exit status is then 1.")
    translate.add_argument("model", help="model file (.npz) holding a Seq2Seq with its vocabularies")
    translate.add_argument("sentences", nargs="+", help="sentences to translate; - reads them from standard input, "
                                                       "one a line")
    translate.add_argument("--beam", type=int, default=5, help="beam width (default 5; 1: greedy)")
    translate.add_argument("--max-len", type=int, default=50, help="at most this many tokens a translation "
                                                                   "(default 50)")
    translate.add_argument("--length-penalty", type=float, default=1.0,
                           help="beam search ranks log-probability / length ** this (default 1; 0: none)")


def cmd_translate(args, out=None):
    out = sys.stdout if out is None else out
    from .seq2seq import Seq2Seq
    for flag, value in (("--beam", args.beam), ("--max-len", args.max_len)):
        if value < 1:
            raise CLIError(f"{flag} must be at least 1, got {value}")
    if args.length_penalty < 0:
        raise CLIError(f"--length-penalty must not be negative, got {args.length_penalty}")
    model = _load_model(args.model, Seq2Seq, "translate runs a Seq2Seq (what `python -m numgru train --task "
                                             "translate` writes)")
    if model.source_vocabulary is None or model.target_vocabulary is None:
        raise CLIError(f"{args.model} holds a Seq2Seq without its vocabularies (it was built on vocabulary sizes), "
                       "so it cannot read or write sentences: build it from numgru.text.Vocabulary objects")
    sentences = []
    for sentence in args.sentences:
        sentences += sys.stdin.read().splitlines() if sentence == "-" else [sentence]
    failed = set()
    for k, sentence in enumerate(sentences, 1):
        reason = model.why_untranslatable(sentence)
        if reason is not None:
            print(f"numgru translate: error: sentence {k} {sentence!r} cannot be translated: {reason}",
                  file=sys.stderr)
            failed.add(k - 1)
    good = [s for i, s in enumerate(sentences) if i not in failed]
    translations = iter(model.translate(good, beam_width=args.beam, max_len=args.max_len,
                                        length_penalty=args.length_penalty) if good else [])
    for i in range(len(sentences)):
        print("" if i in failed else next(translations), file=out, flush=True)
    return 1 if failed else 0


# ----------------------------------------------------------------------------------------- predict

def _load_array(path, what):
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CLIError(f"{what} file not found: {path}") from None
    except (ValueError, OSError, EOFError) as err:
        raise CLIError(f"cannot read {what} from {path}: {err} (expected a .npy array)") from None
    if not isinstance(arr, np.ndarray):
        raise CLIError(f"{path} holds several arrays (.npz); save one array with np.save")
    return arr


def _load_inputs(path, input_size):
    arr = _load_array(path, "inputs")
    if arr.dtype.kind not in "biuf":
        raise CLIError(f"{path} holds {arr.dtype.name} values; expected numbers")
    arr = arr.astype(np.float64) if arr.dtype.kind != "f" else arr
    if arr.ndim == 3:
        return arr, True
    if arr.ndim == 2 and input_size == 1:
        return arr[..., None], True               # (B, T) univariate windows
    if arr.ndim == 2 and arr.shape[1] == input_size:
        return arr[None], False                   # one sequence (T, input_size)
    if arr.ndim == 1 and input_size == 1:
        return arr[None, :, None], False          # one univariate sequence (T,)
    raise CLIError(f"{path} has shape {arr.shape}; the model expects (B, T, {input_size})"
                   + (", (B, T) or (T,)" if input_size == 1 else f" or one sequence (T, {input_size})"))


def _read_lines(path):
    """The lines of a UTF-8 text file, split at line feeds only (review sentences hold U+0085), a final one
    and each line's carriage return dropped; an empty or blank line is an error naming it."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            content = f.read()
    except FileNotFoundError:
        raise CLIError(f"texts file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CLIError(f"cannot read texts from {path}: {err} (expected UTF-8 text, one text a line)") from None
    lines = content.split("\n")
    if lines[-1] == "":
        lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if not lines:
        raise CLIError(f"{path} holds no text: expected one text a line")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise CLIError(f"{path}, line {number} is empty: expected one text a line, each with something to "
                           "classify")
    return lines


def _predict_texts(args, model, out):
    """`predict` for a TextClassifierModel: one label (or, with --raw, the class probabilities) a line."""
    if args.lengths:
        raise CLIError("--lengths applies to sequence models: a text classifier reads each line to its end")
    texts = _read_lines(args.inputs)
    try:
        proba = model.predict_proba(texts, batch_size=args.batch)
    except (TypeError, ValueError) as err:
        raise CLIError(f"cannot run the model on {args.inputs}: {err}") from None
    if args.raw:
        lines = ["\t".join(f"{p:.6f}" for p in row) for row in proba]
    else:
        labels = range(model.num_classes) if model.classes is None else model.classes
        lines = [str(labels[i]) for i in proba.argmax(axis=1)]
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)
    else:
        print("\n".join(lines), file=out)
    return 0


def cmd_predict(args, out=None):
    out = sys.stdout if out is None else out
    from .models import GRUModel
    from .serialization import ModelFileError, load
    from .text_classifier import TextClassifierModel
    try:
        model, meta = load(args.model, device=args.device, return_metadata=True)
    except FileNotFoundError as err:
        raise CLIError(str(err)) from None
    except (ModelFileError, RuntimeError) as err:
        raise CLIError(str(err)) from None
    if isinstance(model, TextClassifierModel):
        return _predict_texts(args, model, out)
    if not isinstance(model, GRUModel):
        raise CLIError(f"{args.model} holds a {type(model).__name__}; predict runs a GRUModel "
                       "(what `python -m numgru train` and numgru.save(path, GRUModel(...)) write)")
    x, batched = _load_inputs(args.inputs, model.input_size)
    lengths = None
    if args.lengths:
        lengths = np.atleast_1d(_load_array(args.lengths, "lengths"))
    scaling = meta.get("scaling")
    if scaling:
        x = (x - scaling["mean"]) / scaling["std"]
    x = x.astype(model.dtype)
    try:
        pred = model.predict(x, lengths=lengths, batch_size=args.batch)
    except (TypeError, ValueError) as err:
        raise CLIError(f"cannot run the model on {args.inputs}: {err}") from None
    classification = meta.get("loss") == "cross_entropy"
    if classification and not args.raw:
        result = pred.argmax(axis=-1)
    else:
        result = pred * scaling["std"] + scaling["mean"] if scaling else pred
    if not batched:
        result = result[0]
    task = meta.get("task", "unknown task")
    print(f"{args.model} ({task}): {len(x)} sequence(s) of {x.shape[1]} steps -> predictions of shape {result.shape}",
          file=out)
    if classification and not args.raw and meta.get("classes") and result.ndim == 1:
        names = meta["classes"]
        print("classes: " + " ".join(names[int(i)] for i in result[:20]) + (" ..." if result.size > 20 else ""),
              file=out)
    with np.printoptions(precision=4, suppress=True, threshold=40, edgeitems=5):
        print(result, file=out)
    if args.out:
        np.save(args.out, result)
        print(f"written to {args.out}", file=out)
    return 0


# -------------------------------------------------------------------------------------------- info

def _version(dist):
    from importlib import metadata
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cmd_info(args, out=None):
    out = sys.stdout if out is None else out
    import platform

    import numba

    from . import GRU, __version__
    from .devices import DEVICES

    print(f"numgru {__version__} ({os.path.dirname(os.path.abspath(__file__))})", file=out)
    print(f"python {platform.python_version()} ({platform.platform()})", file=out)
    for dist in ("numpy", "numba", "llvmlite", "scipy", "threadpoolctl", "tqdm"):
        print(f"  {dist:14s}{_version(dist) or 'NOT INSTALLED'}", file=out)
    for dist, why in (("matplotlib", "plots"), ("torch", "tests only")):
        print(f"  {dist:14s}{_version(dist) or 'not installed'} (optional: {why})", file=out)

    results = {}
    for device in (d for d in DEVICES if d != "auto"):
        try:
            gru = GRU(3, 4, device=device, seed=0)
            x = np.ones((5, 2, 3), np.float32)
            out_, _ = gru(x)
            gru.backward(np.ones_like(out_))
            results[device] = "works (GRU forward and backward ran)"
        except Exception as err:   # anything that stops a device from running is what info reports
            results[device] = f"not available: {err}"
    try:
        layer = numba.threading_layer()
    except ValueError as err:
        layer = f"unknown ({err})"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"threads: numba {numba.get_num_threads()} (NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}), "
          f"{cores} usable cores, threading layer: {layer}", file=out)
    try:
        from threadpoolctl import threadpool_info
        for lib in threadpool_info():
            if lib.get("user_api") == "blas":
                print(f"blas: {lib.get('internal_api')} {lib.get('version')} ({lib.get('num_threads')} threads, "
                      f"{os.path.basename(lib.get('filepath', ''))})", file=out)
    except Exception:   # threadpoolctl is informative only here
        pass
    print("devices:", file=out)
    for device, status in results.items():
        print(f"  {device:5s} {status}", file=out)
    return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"train": cmd_train, "generate": cmd_generate, "predict": cmd_predict, "transcribe": cmd_transcribe,
                "translate": cmd_translate,
                "info": cmd_info, "bench": bench.main}
    try:
        return commands[args.command](args)
    except CLIError as err:
        print(f"numgru {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as Unix tools do, with stdout pointed at
        # /dev/null so that Python's flush at exit does not raise again.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):      # a replaced sys.stdout without a file descriptor
            pass
        return 128 + 13                                     # SIGPIPE's exit status


if __name__ == "__main__":
    sys.exit(main())
