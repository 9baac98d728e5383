"""numgru past one machine, on Dask: inference over a chunked ``dask.array`` and data-parallel training.

    predict(model, X, lengths=None, client=None)     # dask array(s) out, chunk by chunk on the workers
    fit(model, X, y, client=..., ...)                # numgru.fit's arguments and History, batches split over workers

Needs the ``[dask]`` extra (``pip install "numgru[dask]"``: dask[array] and
distributed); ``import numgru`` never imports it, ``numgru.distributed`` does
on first use. Any ``distributed.Client`` works: a ``LocalCluster`` on one
machine, or a scheduler address (dask-jobqueue, SSH, Kubernetes).

Inference: the model is scattered to every worker once; each chunk of X (cut
along the batch axis only) runs the ordinary CPU engine in eval mode, so every
chunk of the result is bit-identical to numgru on that chunk in one process at
the same Numba thread count (a worker uses as many as it has threads).

Training: the rows of (X, y, lengths) are cut into one shard per worker, each
built by a task of its own (as is the model's template), so that Dask can
rebuild a shard lost with its worker. The global batches are ``numgru.fit``'s
(same shuffling generator, same seed, same order). Each step, every shard's
rows of the batch run forward, loss and backward where the shard lives, with
the current weights sent in the part's task; the client sums the parts'
gradients, each weighted by its share of what the batch's loss averages over
(samples, or valid steps under a sequence mask), and applies the optimiser
step (and clipping) to its model, whose weights the next step sends out: every
worker computes with the same weights. Nothing is scattered, so a worker that
dies mid-step has its tasks (and their inputs) rerun elsewhere by Dask's
scheduler, and each part's result is used exactly once: no batch is lost or
counted twice.
After every epoch a checkpoint (weights, optimiser state, shuffling generator,
history) can be written atomically, and ``resume=`` continues from it.

Against ``numgru.fit`` on the same batches and seed the weights agree to
rounding, not bit for bit: the batch mean of the loss's gradient is reordered
(each part's mean, times its share, summed over parts, where one process sums
every sample's contribution in one GEMM). Dropout masks are drawn on the
workers, so with dropout > 0 the runs differ by their masks.
"""
import copy
import json
import math
import os
import time

import numba
import numpy as np

try:
    import dask
    import dask.array as da
    import distributed
except ImportError as err:      # the optional extra; err.name says which module is missing
    raise ModuleNotFoundError(f'numgru.distributed needs Dask: pip install "numgru[dask]" '
                              f"(dask[array] and distributed); {err}", name=err.name) from None

from . import training, validation
from .grad_mode import no_grad
from .gru import GRU
from .language_model import LanguageModel
from .optim import Adam, clip_grad_norm
from .serialization import _write_npz_atomically
from .threads import one_blas_thread

__all__ = ["CHECKPOINT_FORMAT", "DistributedHistory", "fit", "predict"]

CHECKPOINT_FORMAT = "numgru-checkpoint"
CHECKPOINT_VERSION = 1
HEADER_KEY = "__checkpoint__"


def _running_client(client):
    if client is None:
        try:
            client = distributed.get_client()
        except ValueError:
            raise ValueError("client is None and no Dask client is running: pass client=distributed.Client(...) "
                             "(a LocalCluster, or a scheduler's address)") from None
    return validation.check_client(client)


def _use_worker_threads():
    """Numba's threads for this task: the worker's thread count (Numba's setting is per calling thread)."""
    numba.set_num_threads(min(distributed.get_worker().state.nthreads, numba.config.NUMBA_NUM_THREADS))


# ----------------------------------------------------------------------------------------------- inference

def _batch_axes(model):
    """(the batch axis of the input, those of the outputs). GRU and LanguageModel return (out, hn), hn being
    (layers * directions, B, H); a time-major GRU (batch_first=False) reads (T, B, I)."""
    axis = 1 if isinstance(model, GRU) and not model.batch_first else 0
    if isinstance(model, (GRU, LanguageModel)):
        return axis, (axis, 1)
    return axis, (axis,)


def _outputs(model, x, lengths):
    """The model's forward without a backward cache: what one process computes on a chunk."""
    with no_grad(), one_blas_thread():
        return training._forward(model, x, lengths)


def _predict_chunk(model, x, lengths):
    _use_worker_threads()
    return _outputs(model, x, lengths)        # the model was scattered in eval mode


def predict(model, X, lengths=None, client=None):
    """The model's eval-mode outputs on a ``dask.array`` X chunked along its batch axis, as dask arrays.

    X: (B, T, F) batch-first (ids (B, T) for the text models), or (T, B, I) for
    a time-major ``GRU``; any chunk sizes along the batch axis, one chunk along
    every other. lengths: (B,) integers, a dask array chunked as X's batch
    axis or an array (cut like X), or None. client: a running
    ``distributed.Client`` (default: the current one). The model is scattered
    to every worker once. Returns one dask array (``GRUModel``, the speech and
    text classifiers, ``CTCModel``), or two for models that return
    ``(out, hn)`` (``GRU``, ``LanguageModel``; hn is chunked along its axis 1);
    nothing runs until they are computed.
    """
    client = _running_client(client)
    in_axis, out_axes = _batch_axes(model)
    batch_chunks = validation.check_batch_chunks("X", X, in_axis)
    steps = X.shape[1 - in_axis] if X.ndim > 1 else 1
    if lengths is not None:
        lengths, chunked = validation.check_chunked_lengths(lengths, batch_chunks, steps)
        if not chunked:
            lengths = da.from_array(lengths, chunks=(batch_chunks,))
    was_training = model.training
    model.eval()
    try:
        # The outputs' layout, from one sequence run here (the chunks' shapes differ only along the batch axis).
        probe = _outputs(model, np.zeros(X.shape[:in_axis] + (1,) + X.shape[in_axis + 1:], X.dtype), None)
        model.drop_cache()
        remote_model = client.scatter(model, broadcast=True, hash=False)      # sent (pickled) here, in eval mode
    finally:
        model.train(was_training)
    probe = probe if isinstance(probe, tuple) else (probe,)
    x_blocks = X.to_delayed().ravel()
    length_blocks = [None] * len(x_blocks) if lengths is None else lengths.to_delayed().ravel()
    nout = len(probe)
    run = dask.delayed(_predict_chunk, pure=True, nout=nout if nout > 1 else None)
    parts = [run(remote_model, xb, lb) for xb, lb in zip(x_blocks, length_blocks)]
    outputs = []
    for k, (axis, example) in enumerate(zip(out_axes, probe)):
        pieces = []
        for part, n in zip(parts, batch_chunks):
            shape = example.shape[:axis] + (n,) + example.shape[axis + 1:]
            pieces.append(da.from_delayed(part[k] if nout > 1 else part, shape, dtype=example.dtype))
        outputs.append(da.concatenate(pieces, axis=axis))
    return tuple(outputs) if nout > 1 else outputs[0]


# ------------------------------------------------------------------------------------------------ training

class DistributedHistory(training.History):
    """``History``, and where each step's time went: ``steps`` holds (compute, transfer, reduce) seconds per
    global batch: the slowest part's forward + backward on its worker; the rest of the round trip (weights out,
    gradients back, scheduling); the client's weighted sum, clipping and optimiser step."""

    def __init__(self, metric_name, mode):
        super().__init__(metric_name, mode)
        self.steps = []
        self.gradient_bytes = 0      # of one part's gradients (and of the weights each part's task carries)

    def as_dict(self):
        return dict(super().as_dict(), steps=self.steps, gradient_bytes=self.gradient_bytes)


def _shard(x, y, lengths):
    """A worker's rows, as a task's result (so that the scheduler can recompute it if its worker is lost)."""
    return np.asarray(x), np.asarray(y), None if lengths is None else np.asarray(lengths)


def _place_shards(client, x, y, lengths):
    """One shard of contiguous rows per worker: [(first row, end row, future)], in row order."""
    workers = sorted(client.scheduler_info()["workers"])
    bounds = np.linspace(0, len(x), len(workers) + 1).round().astype(int)
    shards = []
    for worker, first, end in zip(workers, bounds[:-1], bounds[1:]):
        rows = [None if a is None else _remote(client, a[first:end]) for a in (x, y, lengths)]
        future = client.submit(_shard, *rows, workers=[worker], allow_other_workers=True, pure=False)
        shards.append((int(first), int(end), future))
    return shards


def _remote(client, rows):
    """A dask array's rows as a future computed on the cluster; NumPy rows travel in the shard's task."""
    return client.compute(rows) if isinstance(rows, da.Array) else rows


def _part_gradients(template, weights, shard, rows, loss_fn):
    """Forward, loss and backward of a shard's rows of the batch: (grads, loss, what it averages over, seconds)."""
    _use_worker_threads()
    start = time.perf_counter()
    x, y, lengths = shard
    model = copy.deepcopy(template)       # the worker's template stays untouched, for the next step's task
    model.load_state_dict(weights)
    model.train()
    with one_blas_thread():
        value, dpred, mask = training._batch_loss(model, loss_fn, x[rows].astype(model.dtype, copy=False),
                                                  y[rows], None if lengths is None else lengths[rows])
        if math.isfinite(value):
            model.backward(dpred)
    count = len(rows) if mask is None else int(mask.sum())
    return model.grads, value, count, time.perf_counter() - start


def _check_data(model, x, y, lengths):
    """NumPy data as numgru.fit checks it; a dask X (N, T, F) and y by shape and dtype (their rows stay on the
    cluster), lengths brought here (N integers) to check their values."""
    if not any(isinstance(a, da.Array) for a in (x, y, lengths)):
        return training._check_training_data(model, x, y, lengths)
    if x.ndim != 3:
        raise ValueError(f"X must be (N, T, input_size): N sequences, batch-first, got shape {x.shape}")
    validation.check_float_dtype("X", x.dtype)
    if np.ndim(y) == 0 or y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have {x.shape[0]} targets along its first axis (as X has), got shape {y.shape}")
    if lengths is not None:
        lengths = validation.check_lengths(np.asarray(lengths), x.shape[0], x.shape[1])
    return x, y, lengths


def fit(model, X, y, *, client=None, loss="mse", optimizer=None, lr=1e-3, epochs=10, batch_size=32, lengths=None,
        validation_data=None, metric=None, mode=None, patience=None, min_delta=0.0, clip_norm=None, shuffle=True,
        seed=None, progress=True, restore_best=True, desc="train", checkpoint=None, resume=None, on_batch=None):
    """``numgru.fit`` with every global batch split over the Dask workers; returns a ``DistributedHistory``.

    Every argument of ``numgru.fit`` means what it means there (the same
    batches for the same seed; validation runs on the client). X, y, lengths:
    NumPy arrays, or dask arrays whose rows stay on the cluster. client: a
    running ``distributed.Client`` (default: the current one); its workers at
    the start hold one shard of rows each. checkpoint: a path written
    atomically after every epoch (weights, optimiser state, shuffling
    generator, history); resume: a checkpoint to continue from (the model's
    weights are replaced by its own; the run ends at the same weights as one
    never interrupted), and where checkpoints go unless ``checkpoint`` says.
    on_batch: called as ``on_batch(epoch, batch)`` after every global batch's step.
    """
    client = _running_client(client)
    x, y, lengths = _check_data(model, X, y, lengths)
    run = training._FitArguments(model, x, y, loss=loss, epochs=epochs, batch_size=batch_size, lengths=lengths,
                                 validation_data=validation_data, metric=metric, mode=mode, patience=patience,
                                 min_delta=min_delta, clip_norm=clip_norm, check_data=False)
    if optimizer is None:
        optimizer = Adam([model], lr=lr)
    checkpoint = resume if checkpoint is None else os.fspath(checkpoint)
    state = training._EpochState(np.random.default_rng(seed), DistributedHistory(run.metric_name, run.mode))
    if resume is not None:
        state = _load_checkpoint(resume, model, optimizer, run)

    model.drop_cache()
    template = client.submit(copy.copy, model, pure=False)    # built by a task, as the shards are
    shards = _place_shards(client, x, y, lengths)
    state.history.gradient_bytes = sum(g.nbytes for g in model.grads.values())

    def train_batch(epoch, start, idx):
        began = time.perf_counter()
        weights = model.state_dict()
        parts = []
        for first, end, shard in shards:
            rows = idx[(idx >= first) & (idx < end)] - first
            if len(rows):
                parts.append(client.submit(_part_gradients, template, weights, shard, rows, run.loss_fn,
                                           pure=False))
        results = client.gather(parts)
        received = time.perf_counter()
        value = _reduce(model, results)
        training._check_loss(value, epoch, start, len(idx))
        if run.clip_norm is not None:
            clip_grad_norm([model], run.clip_norm)
        optimizer.step()
        compute = max(seconds for *_, seconds in results)
        state.history.steps.append((compute, received - began - compute, time.perf_counter() - received))
        if on_batch is not None:
            on_batch(epoch, start // run.batch_size)
        return value

    after_epoch = None if checkpoint is None else (lambda s: _save_checkpoint(checkpoint, model, optimizer, s, run))
    return training._train_epochs(model, run, state, train_batch, shuffle=shuffle, restore_best=restore_best,
                                  progress=progress, desc=desc, after_epoch=after_epoch)


def _reduce(model, results):
    """Into model.grads: the parts' gradients weighted by their shares of the batch, summed in part order.

    Returns the batch's loss, weighted alike."""
    total = sum(count for _, _, count, _ in results)
    value = 0.0
    for k, (grads, part_value, count, _) in enumerate(results):
        share = count / total
        value += share * part_value
        for name, g in model.grads.items():
            if k == 0:
                np.multiply(grads[name], share, out=g)
            else:
                g += share * grads[name]
    return value


# ---------------------------------------------------------------------------------------------- checkpoints

def _save_checkpoint(path, model, optimizer, state, run):
    """What resuming needs, in one .npz written atomically: weights, best weights, optimiser state (arrays),
    and a JSON header with the epoch, the shuffling generator's state, the history and the run's shape."""
    arrays = {f"model/{name}": value for name, value in model.state_dict().items()}
    if state.best_state is not None:
        arrays.update({f"best/{name}": value for name, value in state.best_state.items()})
    optim_scalars = {}
    for (i, name), entry in optimizer.state.items():
        for field, value in entry.items():
            if isinstance(value, np.ndarray):
                arrays[f"optim/{i}/{name}/{field}"] = value
            else:
                optim_scalars[f"{i}/{name}/{field}"] = value
    header = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "N": run.N, "batch_size": run.batch_size,
              "optimizer": type(optimizer).__name__, "step_count": optimizer.step_count,
              "optim_scalars": optim_scalars, "rng": state.rng.bit_generator.state, "waited": state.waited,
              "history": state.history.as_dict()}
    arrays[HEADER_KEY] = np.array(json.dumps(header))
    _write_npz_atomically(path, arrays)


def _load_checkpoint(path, model, optimizer, run):
    """Restore the model, the optimiser and the epoch state from a checkpoint; errors name ``resume``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"resume: no checkpoint at {path!r}")
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(str(arrays.pop(HEADER_KEY, np.array("{}"))[()]))
    if header.get("format") != CHECKPOINT_FORMAT or header.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"resume: {path!r} is not a numgru checkpoint of version {CHECKPOINT_VERSION}")
    if (header["N"], header["batch_size"]) != (run.N, run.batch_size):
        raise ValueError(f"resume: {path!r} was written for N={header['N']} samples in batches of "
                         f"{header['batch_size']}; this run has N={run.N}, batch_size={run.batch_size}")
    if header["optimizer"] != type(optimizer).__name__:
        raise ValueError(f"resume: {path!r} holds the state of a {header['optimizer']} optimiser, this run "
                         f"uses {type(optimizer).__name__}")
    try:
        model.load_state_dict(_prefixed(arrays, "model/"))
    except ValueError as err:
        raise ValueError(f"resume: {path!r} does not hold this model's weights: {err}") from None
    for (i, name), entry in optimizer.state.items():
        entry.clear()
        entry.update(_prefixed(arrays, f"optim/{i}/{name}/"))
        entry.update(_prefixed(header["optim_scalars"], f"{i}/{name}/"))
    optimizer.step_count = header["step_count"]

    rng = np.random.default_rng()
    rng.bit_generator.state = header["rng"]
    history = DistributedHistory(header["history"]["metric_name"], header["history"]["mode"])
    for key, value in header["history"].items():
        setattr(history, key, [tuple(step) for step in value] if key == "steps" else value)
    best = _prefixed(arrays, "best/")
    return training._EpochState(rng, history, best or None, header["waited"])


def _prefixed(mapping, prefix):
    return {key[len(prefix):]: value for key, value in mapping.items() if key.startswith(prefix)}
