"""The benchmark harness, defined once: what numgru is timed on against PyTorch and onnxruntime, and how.

``numgru.bench`` (``python -m numgru bench``: tables, charts, the command line)
and the asv suite (``asv_bench/benchmarks``) both take from here:

- the shapes: ``SEQ_LEN``, ``BATCHES``, ``HIDDEN``, ``FULL_GRID``, ``QUICK_GRID``;
- the engines (``ENGINES``: numgru or torch, on the CPU or CUDA, and onnxruntime's
  CPU GRU for inference) and their model builders, ``sequence_model`` and ``step_model``;
- thread pinning (``pin_threads``, ``pinned_threads``): both engines get the
  same number of threads (Numba's pool, torch's intra-op pool, BLAS capped too);
- the ragged-batch cases (``RAGGED_CASES``, ``ragged_lengths``);
- the GEMM ceiling (``gemm_ceiling``) and the read-bandwidth floor (``read_bandwidth``,
  ``forward_floor``);
- the in-process measurements (``run_bench``, ``run_ragged``), and numgru against
  onnxruntime both in one process and each engine alone in fresh processes
  (``run_onnx_bench``, ``alone_process``);
- the first-call (cold/warm start) sources and their measurement in fresh
  processes (``first_call_source``, ``measure_first_call``).

asv benchmarks older commits too, so this file must stay importable on its own,
outside the package (the suite loads it by path, from the installed numgru or,
for commits from before it existed, from its own checkout): absolute imports
only, nothing of numgru but its public API (with fallbacks for what older
commits lack), and numba, torch and numgru itself imported lazily, so that a
torch benchmark process never loads numgru and vice versa (an onnxruntime process
does load numgru: its graph is numgru's export). ``HARNESS_VERSION``
changes whenever a name the suite uses changes.
"""
import collections
import contextlib
import functools
import gc
import importlib.util
import itertools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HARNESS_VERSION = 4

SEQ_LEN = 200
BATCHES = (1, 16, 64)
HIDDEN = (64, 256, 1024)
FULL_GRID = tuple((SEQ_LEN, B, H) for H in HIDDEN for B in BATCHES)
QUICK_GRID = ((SEQ_LEN, 1, 64), (SEQ_LEN, 16, 256))
DEFAULT_REPS = 5
QUICK_REPS = 3
DEFAULT_THREADS = 2          # the cores of the project's benchmark machine
DTYPES = ("float32", "float64")
ENGINES = ("numgru-cpu", "numgru-cuda", "torch-cpu", "torch-cuda", "onnxruntime-cpu")
# onnxruntime is an inference runtime: it runs the forward of numgru's exported graph and nothing else
# (no training, streaming, ragged batches or JIT), so the other benchmarks are numgru's and torch's.
TRAINING_ENGINES = ENGINES[:4]


def flops_forward(T, B, H, I=None):
    """FLOPs of one forward pass: the input and recurrent products, 2·T·B·3H·(I+H)."""
    I = H if I is None else I
    return 2 * T * B * 3 * H * (I + H)


def flops_train(T, B, H, I=None):
    """Forward + backward, with backward ≈ 2 × forward."""
    return 3 * flops_forward(T, B, H, I)


def gflops(flops, seconds):
    return None if seconds is None else flops / seconds / 1e9


def import_torch():
    """torch, or None where it is not installed (it is optional: only the yardstick)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


# --------------------------------------------------------------------------------------- engines

def library(engine):
    """'numgru', 'torch' or 'onnxruntime'."""
    return engine.split("-")[0]


def device(engine):
    """'cpu' or 'cuda'."""
    return engine.split("-")[1]


@functools.lru_cache(maxsize=None)
def unavailable(engine):
    """Why ``engine`` cannot run here (a string), or None when it can."""
    if engine not in ENGINES:
        return f"unknown engine {engine!r}"
    lib, dev = library(engine), device(engine)
    if importlib.util.find_spec(lib) is None:
        return f"{lib} is not installed"
    if lib == "onnxruntime":
        return None if importlib.util.find_spec("onnx") is not None else "onnx (numgru's exporter) is not installed"
    if lib == "torch":
        import torch
        if dev == "cuda" and not torch.cuda.is_available():
            return "torch.cuda.is_available() is False"
        return None
    if dev == "cuda":
        import numba
        if numba.config.ENABLE_CUDASIM:
            return "NUMBA_ENABLE_CUDASIM=1: the CUDA simulator is no GPU to time"
        import numgru
        try:
            numgru.GRU(1, 1, device="cuda")
        except Exception as exc:  # RuntimeError where no GPU works; whatever an older build raises
            return f"numgru device='cuda': {exc}"
    return None


def require(engine):
    """Skip the benchmark the asv way (NotImplementedError) if ``engine`` cannot run here."""
    reason = unavailable(engine)
    if reason is not None:
        raise NotImplementedError(f"{engine} unavailable: {reason}")


# --------------------------------------------------------------------------------------- threads

def pin_threads(threads, engine=None):
    """Give the engines ``threads`` threads: Numba's pool, torch's intra-op pool and BLAS.

    ``engine`` None pins both libraries (torch only where it is installed);
    an engine name pins only its own library, so that a numgru process never
    imports torch and vice versa. onnxruntime has no process-wide pool: its
    threads are given to each session (``OnnxruntimeSequence``), so for it only
    BLAS is capped here. Returns what ``restore_threads`` needs to
    undo it. Numba's count is capped at NUMBA_NUM_THREADS; the returned state
    holds the count actually given, under "threads".
    """
    from threadpoolctl import threadpool_limits
    threads = max(1, int(threads))
    state = {"blas": threadpool_limits(limits=threads, user_api="blas")}
    if engine is None or library(engine) == "numgru":
        import numba
        state["numba"] = numba.get_num_threads()
        threads = min(threads, numba.config.NUMBA_NUM_THREADS)
        numba.set_num_threads(threads)
    torch = import_torch() if engine is None else (None if library(engine) != "torch" else import_torch())
    if torch is not None:
        state["torch"] = torch.get_num_threads()
        torch.set_num_threads(threads)
    state["threads"] = threads
    return state


def restore_threads(state):
    """Undo ``pin_threads``."""
    state["blas"].restore_original_limits()
    if "numba" in state:
        import numba
        numba.set_num_threads(state["numba"])
    if "torch" in state:
        import torch
        torch.set_num_threads(state["torch"])


@contextlib.contextmanager
def pinned_threads(threads, engine=None):
    """``pin_threads`` for the duration of a ``with`` block; yields the thread count given."""
    state = pin_threads(threads, engine)
    try:
        yield state["threads"]
    finally:
        restore_threads(state)


# ---------------------------------------------------------------------------------------- models

def inputs(shape, seed, dtype="float32"):
    """Standard normal values of ``shape`` from a fixed seed."""
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _noop():
    pass


class NumgruSequence:
    """numgru's GRU over a (T, B, I) sequence: ``forward()`` (under ``no_grad``) and ``train_step()``.

    Only public API, with fallbacks for older commits (no ``no_grad``: a plain
    forward; ``dtype``/``lengths`` passed only when they are not the defaults).
    """

    def __init__(self, dev, T, B, H, I, training=False, dtype="float32", lengths=None, seed=0):
        import numgru
        kwargs = {} if dtype == "float32" else {"dtype": dtype}
        self.gru = numgru.GRU(I, H, device=dev, seed=seed, **kwargs)
        # inference keeps no backward cache, as torch's inference_mode
        self.inference = getattr(numgru, "no_grad", contextlib.nullcontext)
        self.call_kwargs = {} if lengths is None else {"lengths": np.asarray(lengths, np.int64)}
        self.x = inputs((T, B, I), seed + 1, dtype)
        self.dout = inputs((T, B, H), seed + 2, dtype)
        self.sync = _noop
        if dev == "cuda":
            from numgru.kernels import cuda     # numgru's one module that imports numba.cuda
            self.x, self.dout, self.sync = cuda.asarray(self.x, dtype), cuda.asarray(self.dout, dtype), cuda.synchronize
        self.gru.train(training)

    def forward(self):
        with self.inference():
            out = self.gru(self.x, **self.call_kwargs)
        self.sync()
        return out

    def train_step(self):
        self.gru.zero_grad()
        self.gru(self.x, **self.call_kwargs)
        self.gru.backward(self.dout)
        self.sync()

    def state_dict(self):
        return self.gru.state_dict()

    def output(self):
        """The forward's output as a NumPy array (to check both engines agree)."""
        out = self.forward()[0]
        return out.copy_to_host() if hasattr(out, "copy_to_host") else np.asarray(out)


class TorchSequence:
    """torch.nn.GRU on the same computation; ragged batches go through pack/pad_packed_sequence.

    ``state_dict``: numgru's weights to load (same numbers in both engines);
    None: torch's own initialisation from ``torch.manual_seed(seed)``.
    """

    def __init__(self, dev, T, B, H, I, training=False, dtype="float32", lengths=None, seed=0,
                 state_dict=None):
        import torch
        torch.manual_seed(seed)
        self.torch = torch
        self.T = T
        self.gru = torch.nn.GRU(I, H, dtype=getattr(torch, dtype)).to(dev).train(training)
        if state_dict is not None:
            self.gru.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state_dict.items()})
        # pack_padded_sequence wants the lengths on the CPU, as int64
        self.lengths = None if lengths is None else torch.as_tensor(np.asarray(lengths, np.int64))
        self.x = torch.from_numpy(inputs((T, B, I), seed + 1, dtype)).to(dev).requires_grad_(training)
        self.dout = torch.from_numpy(inputs((T, B, H), seed + 2, dtype)).to(dev)
        self.sync = torch.cuda.synchronize if dev == "cuda" else _noop

    def _run(self):
        if self.lengths is None:
            return self.gru(self.x)
        rnn = self.torch.nn.utils.rnn
        packed = rnn.pack_padded_sequence(self.x, self.lengths, enforce_sorted=False)
        out, hn = self.gru(packed)
        out, _ = rnn.pad_packed_sequence(out, total_length=self.T)
        return out, hn

    def forward(self):
        with self.torch.inference_mode():
            out = self._run()
        self.sync()
        return out

    def train_step(self):
        self.gru.zero_grad(set_to_none=True)
        self.x.grad = None
        out, _ = self._run()
        out.backward(self.dout)      # also computes dx (x.requires_grad), as numgru's backward does
        self.sync()

    def output(self):
        return self.forward()[0].cpu().numpy()


class OnnxruntimeSequence:
    """onnxruntime's CPU GRU on numgru's own graph (``numgru.export_onnx``): ``forward()`` only.

    The weights are those of ``numgru.GRU(I, H, seed=seed)``, as ``NumgruSequence``
    has them, or ``state_dict``'s. ``threads``: the session's intra-op threads
    (None: onnxruntime's default, one per core), with inter-op parallelism off
    (one GRU node). ``spinning``: whether its idle intra-op threads spin waiting
    for work (``session.intra_op.allow_spinning``; None: its default, they do),
    which in a shared process takes the cores from numgru's threads.
    NotImplementedError for what it cannot run: training, float64 (its GRU
    kernel is float32 only), ragged batches, and a numgru without ``export_onnx``.
    """

    def __init__(self, dev, T, B, H, I, training=False, dtype="float32", lengths=None, seed=0, state_dict=None,
                 threads=None, spinning=None):
        if training or dtype != "float32" or lengths is not None:
            raise NotImplementedError("onnxruntime-cpu runs only the float32 forward of a full batch")
        import numgru
        import onnxruntime
        if not hasattr(numgru, "export_onnx"):
            raise NotImplementedError("this numgru has no export_onnx")
        gru = numgru.GRU(I, H, device="cpu", seed=seed)
        if state_dict is not None:
            gru.load_state_dict(state_dict)
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        if spinning is not None:
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self.session = onnxruntime.InferenceSession(numgru.export_onnx(gru).SerializeToString(), options,
                                                    providers=["CPUExecutionProvider"])
        self.feed = {"x": inputs((T, B, I), seed + 1, dtype)}

    def forward(self):
        return self.session.run(None, self.feed)

    def output(self):
        return self.forward()[0]


class NumgruStep:
    """numgru's streaming interface (GRUStream, CPU) where it exists, else a GRUCell carrying h."""

    def __init__(self, dev, B, H, I, dtype="float32", seed=0):
        import numgru
        kwargs = {} if dtype == "float32" else {"dtype": dtype}
        self.cell = numgru.GRUCell(I, H, device=dev, seed=seed, **kwargs)
        self.x = inputs((B, I), seed + 1, dtype)
        self.h = inputs((B, H), seed + 2, dtype)
        self.sync = _noop
        self.stream = None
        if dev == "cuda":
            from numgru.kernels import cuda     # numgru's one module that imports numba.cuda
            self.x, self.h, self.sync = cuda.asarray(self.x, dtype), cuda.asarray(self.h, dtype), cuda.synchronize
        elif hasattr(numgru, "GRUStream"):
            self.stream = numgru.GRUStream(self.cell, batch_size=B, h0=self.h[None])

    def step(self):
        if self.stream is not None:
            self.stream.step(self.x)
        else:
            self.h = self.cell(self.x, self.h)
        self.sync()

    def state_dict(self):
        return self.cell.state_dict()


class TorchStep:
    """torch.nn.GRUCell under ``no_grad``, carrying h."""

    def __init__(self, dev, B, H, I, dtype="float32", seed=0, state_dict=None):
        import torch
        torch.manual_seed(seed)
        self.torch = torch
        self.cell = torch.nn.GRUCell(I, H, dtype=getattr(torch, dtype)).to(dev)
        if state_dict is not None:
            self.cell.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state_dict.items()})
        self.x = torch.from_numpy(inputs((B, I), seed + 1, dtype)).to(dev)
        self.h = torch.from_numpy(inputs((B, H), seed + 2, dtype)).to(dev)
        self.sync = torch.cuda.synchronize if dev == "cuda" else _noop

    def step(self):
        with self.torch.no_grad():
            self.h = self.cell(self.x, self.h)
        self.sync()


def _build(engine, cls, *args, **kwargs):
    """Construct an engine's model; a device the layer does not implement is a skip, not a failure."""
    try:
        return cls(device(engine), *args, **kwargs)
    except RuntimeError as exc:
        if device(engine) == "cpu":
            raise
        raise NotImplementedError(f"{engine} unavailable: {exc}") from exc


def sequence_model(engine, T, B, H, I=None, *, training=False, lengths=None, dtype="float32", seed=0,
                   threads=None, state_dict=None, spinning=None, warm_up=True):
    """A GRU of ``engine`` over a (T, B, I) sequence: ``.forward()`` / ``.train_step()``.

    I defaults to H. ``lengths`` (B,) makes the batch ragged (numgru's
    ``lengths=``, torch's packed sequence). ``threads``: pin them first (None:
    leave the thread counts alone; onnxruntime's session gets them).
    ``state_dict`` (torch and onnxruntime engines): load these weights.
    ``spinning`` (onnxruntime): let its idle threads spin (None: its default).
    ``warm_up``: one call first (it compiles numgru's kernels).
    Skips (NotImplementedError) when ``engine`` is unavailable or cannot run it.
    """
    require(engine)
    if threads is not None:
        pin_threads(threads, engine)
    I = H if I is None else I
    kwargs = dict(training=training, dtype=dtype, lengths=lengths, seed=seed)
    if library(engine) == "numgru":
        model = _build(engine, NumgruSequence, T, B, H, I, **kwargs)
    elif library(engine) == "onnxruntime":
        model = _build(engine, OnnxruntimeSequence, T, B, H, I, state_dict=state_dict, threads=threads,
                       spinning=spinning, **kwargs)
    else:
        model = _build(engine, TorchSequence, T, B, H, I, state_dict=state_dict, **kwargs)
    if warm_up:
        (model.train_step if training else model.forward)()
    return model


def step_model(engine, H, I=None, B=1, *, dtype="float32", seed=0, threads=None, state_dict=None, warm_up=True):
    """A GRU cell of ``engine`` for streaming one step at a time: ``.step()`` carries h."""
    require(engine)
    if engine not in TRAINING_ENGINES:
        raise NotImplementedError(f"{engine} runs whole sequences only, not a streaming step")
    if threads is not None:
        pin_threads(threads, engine)
    I = H if I is None else I
    if library(engine) == "numgru":
        model = _build(engine, NumgruStep, B, H, I, dtype=dtype, seed=seed)
    else:
        model = _build(engine, TorchStep, B, H, I, dtype=dtype, seed=seed, state_dict=state_dict)
    if warm_up:
        model.step()
    return model


# ---------------------------------------------------------------------------------------- ragged

RAGGED_SHAPE = (SEQ_LEN, 64, 256)                     # T, B, H (I = H), float32
RAGGED_CASES = ("full", "uniform", "short", "one-long")
# The seed of the lengths: fixed, and one whose samples (B=64) sit near the shares the cases are
# meant to have (seed 5: uniform 0.52, short 0.13; one-long is 0.065 whatever the seed).
RAGGED_SEED = 5
RAGGED_DESCRIPTIONS = {
    "full": "every sequence of length T",
    "uniform": "lengths uniform in 1..T (about half of T·B real)",
    "short": "mostly short: geometric with mean T/8, clipped to [1, T] (about 1/8 real)",
    "one-long": "one sequence of length T, the others 10 (about 6% real at B=64)",
}


def ragged_lengths(case, T=RAGGED_SHAPE[0], B=RAGGED_SHAPE[1], seed=RAGGED_SEED):
    """The (B,) int64 lengths of a ragged-batch case of ``RAGGED_CASES``, in [1, T], from a fixed seed.

    "full": all T; "uniform": integers uniform in 1..T; "short": geometric
    with mean T/8 clipped to [1, T]; "one-long": one sequence (at a seeded
    position) of length T, the rest min(10, T). Unsorted, as real batches are.
    """
    if case not in RAGGED_CASES:
        raise ValueError(f"case must be one of {RAGGED_CASES}, got {case!r}")
    T, B = int(T), int(B)
    if T < 1 or B < 1:
        raise ValueError(f"T and B must be positive, got T={T}, B={B}")
    rng = np.random.default_rng([seed, RAGGED_CASES.index(case)])
    if case == "full":
        lengths = np.full(B, T)
    elif case == "uniform":
        lengths = rng.integers(1, T + 1, size=B)
    elif case == "short":
        lengths = np.clip(rng.geometric(min(1.0, 8 / T), size=B), 1, T)
    else:
        lengths = np.full(B, min(10, T))
        lengths[rng.integers(B)] = T
    return lengths.astype(np.int64)


def real_share(lengths, T):
    """The share of the T·B padded batch that is real steps: sum(lengths) / (T·B)."""
    lengths = np.asarray(lengths)
    return float(lengths.sum()) / (T * lengths.size)


# ---------------------------------------------------------------------------------------- timing

def time_per_call(fn, number):
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def calls_per_sample(fn, min_time):
    """Warm ``fn`` up (the first call compiles) and pick how many calls make one ≥ min_time sample."""
    fn()
    fn()
    once = time_per_call(fn, 1)
    return max(1, math.ceil(min_time / max(once, 1e-9)))


def median_seconds(fn, reps, min_time):
    """Seconds per call of ``fn``, warmed up: the median of ``reps`` samples of at least ``min_time`` s."""
    number = calls_per_sample(fn, min_time)
    return statistics.median(time_per_call(fn, number) for _ in range(reps))


class Pair:
    """numgru and torch versions of the same computation, timed alternately, repetition by repetition."""

    def __init__(self, numgru_fn, torch_fn, min_time):
        self.fns = [numgru_fn] + ([torch_fn] if torch_fn is not None else [])
        self.numbers = [calls_per_sample(fn, min_time) for fn in self.fns]
        self.times = [[] for _ in self.fns]

    def repetition(self):
        for fn, number, times in zip(self.fns, self.numbers, self.times):
            times.append(time_per_call(fn, number))

    def summary(self):
        """(median numgru seconds, median torch seconds or None, median per-repetition ratio or None)."""
        t_numgru = statistics.median(self.times[0])
        if len(self.fns) == 1:
            return t_numgru, None, None
        t_torch = statistics.median(self.times[1])
        ratio = statistics.median(a / b for a, b in zip(*self.times))
        return t_numgru, t_torch, ratio


# ---------------------------------------------------------------------------------- GEMM ceiling

GemmBest = collections.namedtuple("GemmBest", "gflops seconds variant threads measured")
GemmBest.__doc__ = """The fastest way NumPy's BLAS computes one product: GFLOP/s, seconds a call, the
variant's name and BLAS thread count that won, and ``measured``, a dict
(variant, threads) -> GFLOP/s of every candidate."""


def gemm_variants(M, K, N, dtype="float32", seed=0):
    """Callables that each compute the same product, 2·M·K·N FLOPs, in another operand layout.

    For the recurrent product M=B, K=H, N=3H: activations ``a`` (M, K) against
    weights ``W`` (N, K) (PyTorch's layout of W_hh):

    - ``a@w``: (M, K) @ (K, N), w = W.T copied contiguous;
    - ``a@W.T``: the same with the transposed view of W (what ``h @ W_hh.T`` is);
    - ``W@a.T``: (N, K) @ (K, M), weights on the left, the transposed view of a;
    - ``W@b``: the same with b = a.T copied contiguous.

    Each writes into a preallocated output (no allocation in the timed call).
    """
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((M, K)).astype(dtype)
    W = rng.standard_normal((N, K)).astype(dtype)
    w, b = np.ascontiguousarray(W.T), np.ascontiguousarray(a.T)
    out_mn, out_nm = np.empty((M, N), dtype), np.empty((N, M), dtype)
    return {
        "a@w": lambda: np.matmul(a, w, out=out_mn),
        "a@W.T": lambda: np.matmul(a, W.T, out=out_mn),
        "W@a.T": lambda: np.matmul(W, a.T, out=out_nm),
        "W@b": lambda: np.matmul(W, b, out=out_nm),
    }


def blas_thread_counts(threads):
    """The BLAS thread counts a ceiling is the best over: 1, 2, 4, ... up to ``threads``, and ``threads``."""
    threads = max(1, int(threads))
    counts = {threads}
    t = 1
    while t <= threads:
        counts.add(t)
        t *= 2
    return sorted(counts)


def _best_seconds(fn, min_time, samples):
    number = calls_per_sample(fn, min_time)
    return min(time_per_call(fn, number) for _ in range(samples))


def gemm_best(M, K, N, dtype="float32", threads=DEFAULT_THREADS, min_time=0.05, seed=0, samples=5):
    """The fastest of ``gemm_variants`` over ``blas_thread_counts(threads)``, each the best of ``samples``."""
    from threadpoolctl import threadpool_limits
    variants = gemm_variants(M, K, N, dtype, seed)
    flops = 2 * M * K * N
    measured, best = {}, None
    for t in blas_thread_counts(threads):
        with threadpool_limits(limits=t, user_api="blas"):
            for name, fn in variants.items():
                seconds = _best_seconds(fn, min_time, samples)
                measured[(name, t)] = gflops(flops, seconds)
                if best is None or seconds < best[0]:
                    best = (seconds, name, t)
    seconds, name, t = best
    return GemmBest(gflops(flops, seconds), seconds, name, t, measured)


def gemm_ceiling(T, B, H, I=None, dtype="float32", threads=DEFAULT_THREADS, min_time=0.05, seed=0, samples=5):
    """The GEMM ceiling of a forward over a (T, B, I) sequence: what BLAS needs for the same FLOPs.

    A forward's FLOPs (``flops_forward``) are two products: the input
    projection of all steps at once, (T·B, I) @ (I, 3H), and T recurrent
    products (B, H) @ (H, 3H). Each is timed in NumPy's matmul as the best
    over operand orientations and layouts that compute the same FLOPs
    (``gemm_variants``: (B, H) @ (H, 3H) or (3H, H) @ (H, B), each with a
    transposed view or a contiguous copy) and over BLAS thread counts 1, 2, ...
    up to ``threads`` (threadpoolctl); the best is taken, because an engine
    may use whichever is fastest. The ceiling time of the forward is
    ``projection + T × recurrent``; its GFLOP/s are ``flops_forward`` over
    that time. Taking only the recurrent product's rate, as an earlier version
    did, let the forward reach up to 2× "the ceiling" at small B: half of its
    FLOPs are the projection, which runs far faster than a (1, H) @ (H, 3H) step.

    Returns a dict: ``gflops`` (the forward's ceiling), ``seconds`` (its
    time), ``recurrent`` and ``projection`` (``GemmBest`` of each product).
    """
    I = H if I is None else I
    kwargs = dict(dtype=dtype, threads=threads, min_time=min_time, seed=seed, samples=samples)
    recurrent = gemm_best(B, H, 3 * H, **kwargs)
    projection = gemm_best(T * B, I, 3 * H, **kwargs)
    seconds = projection.seconds + T * recurrent.seconds
    return dict(gflops=gflops(flops_forward(T, B, H, I), seconds), seconds=seconds,
                recurrent=recurrent, projection=projection)


# ------------------------------------------------------------------------------- bandwidth floor

MEMORY_PROBE_BYTES = 256 * 2 ** 20     # 8x the benchmark machine's 32 MB L3: a read from memory, not a cache


def read_bandwidth(nbytes, threads=1, min_time=0.05, samples=5):
    """GB/s at which ``threads`` cores read a float32 array of ``nbytes`` again and again (STREAM-like, NumPy).

    The array is cut into ``threads`` contiguous parts, each read by its own
    Python thread as ``np.dot(part, part)`` (BLAS sdot held to one thread:
    vectorised, one multiply-add per value read, as a matrix-vector product;
    NumPy releases the GIL inside), repeated to fill ``min_time``; the rate is
    the best of ``samples``. An array several times the last-level cache
    measures memory (``MEMORY_PROBE_BYTES``); one the size of a weight matrix,
    whichever cache holds it. Each dot also costs about 1 µs of call, which
    understates the rate of arrays under about 1 MB.
    """
    from concurrent.futures import ThreadPoolExecutor
    from threadpoolctl import threadpool_limits
    threads = max(1, int(threads))
    array = np.ones(max(threads, int(nbytes) // 4), np.float32)
    parts = np.array_split(array, threads)

    def seconds_per_read(repeats):
        def read(part):
            for _ in range(repeats):
                np.dot(part, part)
        start = time.perf_counter()
        list(pool.map(read, parts))
        return (time.perf_counter() - start) / repeats

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        repeats = 1
        while seconds_per_read(repeats) * repeats < min_time:
            repeats *= 2
        seconds = min(seconds_per_read(repeats) for _ in range(samples))
    return array.nbytes / seconds / 1e9


def forward_floor_bytes(T, H, I=None, itemsize=4):
    """The bytes a forward over T steps at B=1 must read: W_hh (3H, H) at every step, W_ih (3H, I) once.

    At B=1 a step's recurrent product is a matrix-vector product that reads
    all of W_hh and needs the step before it, so no two steps share a read;
    the input projection of all T steps is one product, which reads W_ih once.
    The activations (x, the projected gates written and read back, the
    outputs: T·(I + 7H) values) are left out: 4 % of the total at H=64, 1 % at
    256, 0.3 % at 1024.
    """
    I = H if I is None else I
    return itemsize * (T * 3 * H * H + 3 * H * I)


def weights_bandwidth(H, threads=DEFAULT_THREADS, min_time=0.05, samples=5):
    """{threads: GB/s} of ``read_bandwidth`` on an array of W_hh's float32 size (3H·H·4 bytes), for
    ``blas_thread_counts(threads)``: the rate at which a step can re-read W_hh from wherever it stays cached."""
    return {t: read_bandwidth(3 * H * H * 4, t, min_time, samples) for t in blas_thread_counts(threads)}


# ---------------------------------------------------------------------------------- peak memory

def _read_status_kb(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def peak_memory_mb(fn):
    """How far one call of ``fn`` raises the process's peak resident set, in MB; None off Linux.

    Freed heap memory is handed back to the system first (glibc's malloc_trim),
    so that neither engine is measured inside memory the other left cached.
    """
    try:
        import ctypes
        gc.collect()
        ctypes.CDLL(None).malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                 # resets VmHWM to the current resident set
        before = _read_status_kb("VmRSS")
        fn()
        return (_read_status_kb("VmHWM") - before) / 1024
    except (OSError, AttributeError, StopIteration):
        return None


# ------------------------------------------------------------------------------ in-process runs

def _sequence_pairs(torch, T, B, H, min_time, seed, dtype, lengths=None):
    """forward and train ``Pair``s of numgru and torch with the same weights and inputs, and their max |diff|."""
    dev = "cpu"
    numgru_model = sequence_model(f"numgru-{dev}", T, B, H, training=True, lengths=lengths, dtype=dtype,
                                  seed=seed, warm_up=False)
    torch_model = None
    max_abs_diff = None
    if torch is not None:
        torch_model = sequence_model(f"torch-{dev}", T, B, H, training=True, lengths=lengths, dtype=dtype,
                                     seed=seed, state_dict=numgru_model.state_dict(), warm_up=False)
        # Same weights, same inputs: the two engines compute the same numbers.
        max_abs_diff = float(np.max(np.abs(numgru_model.output() - torch_model.output())))
    forward = Pair(numgru_model.forward, None if torch_model is None else torch_model.forward, min_time)
    train = Pair(numgru_model.train_step, None if torch_model is None else torch_model.train_step, min_time)
    return forward, train, max_abs_diff


def _step_pair(torch, H, min_time, seed, dtype):
    numgru_model = step_model("numgru-cpu", H, dtype=dtype, seed=seed, warm_up=False)
    torch_model = None
    if torch is not None:
        torch_model = step_model("torch-cpu", H, dtype=dtype, seed=seed, state_dict=numgru_model.state_dict(),
                                 warm_up=False)
    return Pair(numgru_model.step, None if torch_model is None else torch_model.step, min_time)


def _check_common(reps, dtype):
    reps = int(reps)
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return reps


def _check_grid(grid):
    grid = [tuple(int(v) for v in shape) for shape in grid]
    if not grid:
        raise ValueError("grid must hold at least one (T, B, H) shape")
    if any(len(shape) != 3 or min(shape) < 1 for shape in grid):
        raise ValueError(f"grid must hold (T, B, H) triples of positive integers, got {grid}")
    return grid


def _ms(seconds):
    return None if seconds is None else seconds * 1e3


def run_bench(grid=FULL_GRID, reps=DEFAULT_REPS, threads=DEFAULT_THREADS, progress=True, step=True,
              min_time=0.05, seed=0, dtype="float32", ceiling=True):
    """Time numgru against torch on every (T, B, H) of ``grid`` (CPU, I = H); return one dict per row.

    Rows with ``kind == "sequence"`` (one per shape) hold forward and train
    times in ms, the median per-repetition ratios numgru/torch and GFLOP/s;
    rows with ``kind == "step"`` (one per distinct H, when ``step``) hold the
    streaming step at B=1 in µs. Sequence rows also hold the GEMM ceiling
    (``gemm_ceiling``; ``ceiling=False`` skips it): ``gemm_gflops`` of the
    recurrent product and ``gemm_variant`` (its winning layout and threads),
    ``forward_ceiling_gflops`` and ``forward_ceiling_pct`` (the forward's
    GFLOP/s as a percentage of it), and the peak memory of one training step of
    each engine. torch columns are None when torch is not installed.
    ``min_time``: seconds of calls per timed sample (short calls are repeated
    to reach it). Ctrl-C stops early and returns the rows finished so far.
    """
    from tqdm.auto import tqdm
    grid = _check_grid(grid)
    reps = _check_common(reps, dtype)
    torch = import_torch()
    hiddens = sorted({H for _, _, H in grid}) if step else []
    bar = tqdm(total=(len(grid) + len(hiddens)) * reps, desc="numgru bench", unit="rep",
               disable=not progress, file=sys.stderr)
    rows = []
    try:
        with pinned_threads(threads) as threads:
            for T, B, H in grid:
                bar.set_postfix_str(f"T={T} B={B} H={H}")
                forward, train, diff = _sequence_pairs(torch, T, B, H, min_time, seed, dtype)
                for _ in range(reps):
                    forward.repetition()
                    train.repetition()
                    bar.update()
                (fn, ft, fr), (tn, tt, tr) = forward.summary(), train.summary()
                ff, tf = flops_forward(T, B, H), flops_train(T, B, H)
                peaks = [peak_memory_mb(f) for f in train.fns] + [None]
                row = dict(
                    kind="sequence", T=T, B=B, H=H, I=H, threads=threads, dtype=dtype,
                    gemm_gflops=None, gemm_variant=None, forward_ceiling_gflops=None, forward_ceiling_pct=None,
                    train_peak_mb_numgru=peaks[0], train_peak_mb_torch=peaks[1],
                    forward_ms_numgru=_ms(fn), forward_ms_torch=_ms(ft), forward_ratio=fr,
                    forward_gflops_numgru=gflops(ff, fn), forward_gflops_torch=gflops(ff, ft),
                    train_ms_numgru=_ms(tn), train_ms_torch=_ms(tt), train_ratio=tr,
                    train_gflops_numgru=gflops(tf, tn), train_gflops_torch=gflops(tf, tt),
                    forward_max_abs_diff=diff)
                del forward, train
                gc.collect()
                if ceiling:
                    c = gemm_ceiling(T, B, H, dtype=dtype, threads=threads, min_time=min_time, seed=seed)
                    rec = c["recurrent"]
                    row.update(gemm_gflops=rec.gflops,
                               gemm_variant=f"{rec.variant}, {rec.threads} thread{'s' * (rec.threads > 1)}",
                               forward_ceiling_gflops=c["gflops"],
                               forward_ceiling_pct=100 * row["forward_gflops_numgru"] / c["gflops"])
                rows.append(row)
            for H in hiddens:
                bar.set_postfix_str(f"step B=1 H={H}")
                pair = _step_pair(torch, H, min_time, seed, dtype)
                for _ in range(reps):
                    pair.repetition()
                    bar.update()
                sn, st, sr = pair.summary()
                rows.append(dict(kind="step", T=1, B=1, H=H, I=H, threads=threads, dtype=dtype,
                                 step_us_numgru=sn * 1e6, step_us_torch=None if st is None else st * 1e6,
                                 step_ratio=sr))
    except KeyboardInterrupt:
        print(f"\ninterrupted: returning the {len(rows)} rows finished so far", file=sys.stderr)
    finally:
        bar.close()
    return rows


def run_ragged(cases=RAGGED_CASES, shape=RAGGED_SHAPE, reps=DEFAULT_REPS, threads=DEFAULT_THREADS,
               progress=True, min_time=0.05, seed=0, dtype="float32", lengths_seed=RAGGED_SEED):
    """Ragged batches: numgru with ``lengths=`` against torch's packed sequences, one row per case.

    For each case of ``RAGGED_CASES`` at ``shape`` (T, B, H), I = H, the
    lengths from ``ragged_lengths``: numgru ``gru(x, lengths=...)`` (forward
    under ``no_grad``) against torch ``pack_padded_sequence(x, lengths,
    enforce_sorted=False)``, ``nn.GRU``, ``pad_packed_sequence(...,
    total_length=T)`` (forward under ``inference_mode``), and the training
    step of each (forward + backward, the input gradient included). Rows
    (``kind == "ragged"``) hold ``share`` (the share of T·B that is real), the
    times in ms and the median per-repetition ratios numgru/torch.
    """
    from tqdm.auto import tqdm

    T, B, H = (int(v) for v in shape)
    reps = _check_common(reps, dtype)
    cases = list(cases)
    for case in cases:
        if case not in RAGGED_CASES:
            raise ValueError(f"ragged cases must be among {RAGGED_CASES}, got {case!r}")
    torch = import_torch()
    bar = tqdm(total=len(cases) * reps, desc="numgru bench ragged", unit="rep", disable=not progress,
               file=sys.stderr)
    rows = []
    try:
        with pinned_threads(threads) as threads:
            for case in cases:
                bar.set_postfix_str(case)
                lengths = ragged_lengths(case, T, B, lengths_seed)
                forward, train, diff = _sequence_pairs(torch, T, B, H, min_time, seed, dtype, lengths=lengths)
                for _ in range(reps):
                    forward.repetition()
                    train.repetition()
                    bar.update()
                (fn, ft, fr), (tn, tt, tr) = forward.summary(), train.summary()
                rows.append(dict(kind="ragged", case=case, T=T, B=B, H=H, I=H, threads=threads, dtype=dtype,
                                 share=real_share(lengths, T), forward_ms_numgru=_ms(fn), forward_ms_torch=_ms(ft),
                                 forward_ratio=fr, train_ms_numgru=_ms(tn), train_ms_torch=_ms(tt),
                                 train_ratio=tr, forward_max_abs_diff=diff))
                del forward, train
                gc.collect()
    except KeyboardInterrupt:
        print(f"\ninterrupted: returning the {len(rows)} ragged rows finished so far", file=sys.stderr)
    finally:
        bar.close()
    return rows


# -------------------------------------------------------------------------------- language models

# The character language model of the benchmark: Embedding + 2-layer GRU (H=512) + Linear
# over 65 symbols, trained on windows of B=64 streams x bptt=100 steps (char-rnn's TBPTT).
LM_SHAPE = dict(vocab=65, embedding_dim=64, hidden=512, layers=2, batch=64, bptt=100)
LM_GENERATE_LENGTH = 200       # characters per timed generate() call
LM_GENERATE_TEMPERATURE = 0.8


def _lm_vocabulary(size):
    """A numgru Vocabulary of exactly ``size`` symbols (its four specials included)."""
    from numgru import text
    specials = len(text.Vocabulary([]))
    return text.Vocabulary([chr(0x21 + i) for i in range(size - specials)])


def lm_windows(vocab, batch, bptt, windows=1, seed=0):
    """(inputs, targets) int64 (batch, bptt) windows of a random symbol stream, targets one step ahead."""
    stream = np.random.default_rng(seed).integers(0, vocab, (batch, windows * bptt + 1))
    return [(stream[:, k * bptt:(k + 1) * bptt], stream[:, k * bptt + 1:(k + 1) * bptt + 1]) for k in range(windows)]


class NumgruLanguageModel:
    """numgru.LanguageModel: ``train_step(inputs, targets)`` (one TBPTT window: forward, cross-entropy,
    backward, clip, Adam, state carried) and ``generate(length)`` at B=1."""

    def __init__(self, vocab, embedding_dim, hidden, layers, lr=2e-3, clip=5.0, seed=0):
        import numgru
        self.numgru = numgru
        self.model = numgru.LanguageModel(_lm_vocabulary(vocab), embedding_dim=embedding_dim, hidden_size=hidden,
                                          num_layers=layers, seed=seed)
        self.optimizer = numgru.optim.Adam([self.model], lr=lr)
        self.clip = clip
        self.h = None

    def state_dict(self):
        return self.model.state_dict()

    def train_step(self, inputs, targets):
        self.optimizer.zero_grad()
        logits, self.h = self.model(inputs, h0=self.h)
        loss, dlogits = self.numgru.losses.cross_entropy(logits, targets)
        self.model.backward(dlogits)
        self.numgru.optim.clip_grad_norm([self.model], self.clip)
        self.optimizer.step()
        return loss

    def generate(self, length, temperature=LM_GENERATE_TEMPERATURE, seed=0):
        return self.model.generate(self.model.vocabulary.tokens[-1], length, temperature=temperature, seed=seed)


class TorchLanguageModel:
    """The same model in torch: nn.Embedding + nn.GRU (time-major) + nn.Linear, Adam, clip_grad_norm_.

    ``state_dict``: numgru's weights (``embedding.weight``, ``gru.*``, ``head.*``: the same names).
    ``generate`` steps the GRU one token at a time under ``inference_mode``, carrying h, sampling
    with ``torch.multinomial`` from softmax(logits / temperature): what a torch user writes.
    """

    def __init__(self, vocab, embedding_dim, hidden, layers, lr=2e-3, clip=5.0, seed=0, state_dict=None):
        import torch
        self.torch = torch
        torch.manual_seed(seed)

        class LanguageModel(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.embedding = torch.nn.Embedding(vocab, embedding_dim)
                self.gru = torch.nn.GRU(embedding_dim, hidden, layers)
                self.head = torch.nn.Linear(hidden, vocab)

            def forward(self, ids, h0=None):          # ids (T, B)
                out, hn = self.gru(self.embedding(ids), h0)
                return self.head(out), hn

        self.model = LanguageModel()
        if state_dict is not None:
            self.model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state_dict.items()})
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.clip = clip
        self.h = None

    def train_step(self, inputs, targets):
        torch = self.torch
        self.optimizer.zero_grad(set_to_none=True)
        x = torch.from_numpy(np.ascontiguousarray(inputs.T))
        y = torch.from_numpy(np.ascontiguousarray(targets.T))
        logits, h = self.model(x, self.h)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        self.h = h.detach()           # TBPTT: the state goes on, its gradient stops at the cut
        return loss.item()

    def generate(self, length, temperature=LM_GENERATE_TEMPERATURE, seed=0):
        torch = self.torch
        generator = torch.Generator().manual_seed(seed)
        token = torch.full((1, 1), 4, dtype=torch.int64)
        h, out = None, []
        with torch.inference_mode():
            for _ in range(length):
                logits, h = self.model(token, h)
                probs = torch.softmax(logits[0, 0] / temperature, dim=-1)
                token = torch.multinomial(probs, 1, generator=generator).reshape(1, 1)
                out.append(int(token))
        return out


def race_language_models(train_text, validation_text, recipe, seconds, eval_every=50, epochs=None, seed=0,
                         threads=DEFAULT_THREADS, progress=True):
    """numgru and torch train the same character model from the same weights for ``seconds`` each.

    ``recipe``: dict(embedding_dim, hidden, layers, batch, bptt, lr, clip, and optionally lr_end).
    numgru runs ``LanguageModel.fit(..., time_limit=seconds, eval_every=eval_every)``; then torch runs
    ``TorchLanguageModel.train_step`` over the same windows in the same order (``fit``'s
    batching: ``batch`` contiguous streams, ``bptt`` steps a window, state carried, a zero
    state at each epoch, the learning rate falling linearly to ``lr_end`` as fit's does), for
    the same training time (or ``epochs`` epochs, if sooner). Both are scored every ``eval_every``
    windows by the same evaluator, numgru's ``LanguageModel.evaluate`` (torch's weights
    copied into a numgru model: the names are the same), outside the timed training.
    One after the other, in one process, threads pinned: run it on an idle machine.
    Returns {"numgru": curve, "torch": curve}, each a dict of lists windows, epochs, seconds
    (training only), val_nats, and ``reach``: {1.8: seconds, 1.6: seconds} (None: not reached),
    the training time at which the curve first gets to each level (``reach_time``).
    """
    import numgru
    from numgru import text
    vocab = text.Vocabulary.build([text.char_tokenize(train_text)])
    sizes = dict(embedding_dim=recipe["embedding_dim"], hidden_size=recipe["hidden"], num_layers=recipe["layers"])
    curves = {}
    with pinned_threads(threads) as threads:
        ours = numgru.LanguageModel(vocab, seed=seed, **sizes)
        initial = ours.state_dict()
        history = ours.fit(train_text, validation_text, batch_size=recipe["batch"], bptt=recipe["bptt"], epochs=epochs,
                           lr=recipe["lr"], lr_end=recipe.get("lr_end"), clip_norm=recipe["clip"],
                           time_limit=seconds, eval_every=eval_every,
                           seed=seed, progress=progress)
        curves["numgru"] = dict(windows=history.windows, epochs=history.epochs, seconds=history.seconds,
                                val_nats=history.val_nats)
        if import_torch() is not None:
            scorer = numgru.LanguageModel(vocab, seed=seed, **sizes)
            theirs = TorchLanguageModel(len(vocab), recipe["embedding_dim"], recipe["hidden"], recipe["layers"],
                                        lr=recipe["lr"], clip=recipe["clip"], seed=seed, state_dict=initial)
            curves["torch"] = _train_torch_for(theirs, scorer, ours.encode(train_text), validation_text, recipe,
                                               seconds, epochs, eval_every, progress)
    for curve in curves.values():
        curve["reach"] = {level: reach_time(curve["seconds"], curve["val_nats"], level) for level in (1.8, 1.6)}
    return curves


def reach_time(seconds, values, level):
    """The training time at which a curve first gets to ``level``, linear between its evaluation points
    (the first point's time if it starts there; None if it never does)."""
    for k, (t, v) in enumerate(zip(seconds, values)):
        if v <= level:
            if k == 0:
                return t
            t0, v0 = seconds[k - 1], values[k - 1]
            return t0 + (t - t0) * (v0 - level) / (v0 - v)
    return None


def _train_torch_for(model, scorer, ids, validation_text, recipe, seconds, epochs, eval_every, progress):
    """``LanguageModel.fit``'s TBPTT loop for a ``TorchLanguageModel``, scored by the numgru ``scorer``."""
    from tqdm.auto import tqdm
    B, bptt = recipe["batch"], recipe["bptt"]
    lr, lr_end = recipe["lr"], recipe.get("lr_end")
    n = (len(ids) - 1) // B
    inputs = ids[:B * n].reshape(B, n)              # row b is stream b, as fit cuts them
    targets = ids[1:B * n + 1].reshape(B, n)
    starts = range(0, n, bptt)
    curve = dict(windows=[], epochs=[], seconds=[], val_nats=[])
    trained, windows, epoch = 0.0, 0, 0
    bar = tqdm(desc="torch windows", unit=" windows", disable=not progress, file=sys.stderr)

    def record(epoch_fraction):
        scorer.load_state_dict({k: v.detach().numpy() for k, v in model.model.state_dict().items()})
        curve["windows"].append(windows)
        curve["epochs"].append(epoch_fraction)
        curve["seconds"].append(trained)
        curve["val_nats"].append(scorer.evaluate(validation_text)["nats"])
        bar.set_postfix_str(f"val {curve['val_nats'][-1]:.3f} nats/char")

    try:
        while trained < seconds and (epochs is None or epoch < epochs):
            model.h = None                          # each epoch starts from a zero state, as fit does
            for w, start in enumerate(starts):
                began = time.perf_counter()
                if lr_end is not None:                  # LanguageModel.fit's schedule: by the budget spent
                    spent = max(0.0 if epochs is None else windows / (epochs * len(starts)), trained / seconds)
                    for group in model.optimizer.param_groups:
                        group["lr"] = lr + (lr_end - lr) * min(spent, 1.0)
                model.train_step(inputs[:, start:start + bptt], targets[:, start:start + bptt])
                trained += time.perf_counter() - began
                windows += 1
                bar.update()
                last = w == len(starts) - 1
                if last or trained >= seconds or windows % eval_every == 0:
                    record(epoch + (w + 1) / len(starts))
                if trained >= seconds:
                    break
            epoch += 1
    finally:
        bar.close()
    return curve


def language_model(engine, hidden=LM_SHAPE["hidden"], seed=0, threads=None, warm_up=True):
    """One engine's language model (``LM_SHAPE`` with ``hidden``) and a training window: (model, inputs, targets).

    For asv: each engine alone, so a torch process never imports numgru. Skips
    (NotImplementedError) where the engine is unavailable, on CUDA (the text layers
    are CPU-only), and for a numgru without ``LanguageModel`` (older commits).
    ``warm_up``: one training step and one short generation first (compiles).
    """
    require(engine)
    if device(engine) != "cpu":
        raise NotImplementedError(f"{engine}: the language model runs on the CPU only")
    if threads is not None:
        pin_threads(threads, engine)
    shape = dict(LM_SHAPE, hidden=hidden)
    args = (shape["vocab"], shape["embedding_dim"], shape["hidden"], shape["layers"])
    if library(engine) == "numgru":
        import numgru
        if not hasattr(numgru, "LanguageModel"):
            raise NotImplementedError("this numgru has no LanguageModel")
        model = NumgruLanguageModel(*args, seed=seed)
    else:
        model = TorchLanguageModel(*args, seed=seed)
    inputs, targets = lm_windows(shape["vocab"], shape["batch"], shape["bptt"], seed=seed + 1)[0]
    if warm_up:
        model.train_step(inputs, targets)
        model.generate(2)
    return model, inputs, targets


def language_models(vocab=LM_SHAPE["vocab"], embedding_dim=LM_SHAPE["embedding_dim"], hidden=LM_SHAPE["hidden"],
                    layers=LM_SHAPE["layers"], seed=0):
    """numgru's and torch's language model with the same weights: (numgru, torch or None)."""
    ours = NumgruLanguageModel(vocab, embedding_dim, hidden, layers, seed=seed)
    theirs = None
    if import_torch() is not None:
        theirs = TorchLanguageModel(vocab, embedding_dim, hidden, layers, seed=seed, state_dict=ours.state_dict())
    return ours, theirs


def run_text_bench(shape=None, reps=DEFAULT_REPS, threads=DEFAULT_THREADS, progress=True, min_time=0.05, seed=0,
                   generate_length=LM_GENERATE_LENGTH):
    """Language-model training throughput and generation speed, numgru against torch, one row each.

    ``kind == "lm-train"``: one TBPTT window a call (``shape``'s batch x bptt characters:
    forward, cross-entropy, backward, clip, Adam), characters per second and the median
    per-repetition time ratio numgru/torch (< 1: numgru faster). ``kind == "lm-generate"``:
    ``generate_length`` characters at B=1 a call (numgru ``LanguageModel.generate``, one
    compiled step a character; torch stepping its GRU, see ``TorchLanguageModel``), characters
    per second and the ratio of rates numgru/torch (> 1: numgru faster).
    """
    from tqdm.auto import tqdm
    shape = dict(LM_SHAPE, **(shape or {}))
    reps = _check_common(reps, "float32")
    bar = tqdm(total=2 * reps, desc="numgru bench text", unit="rep", disable=not progress, file=sys.stderr)
    rows = []
    try:
        with pinned_threads(threads) as threads:
            ours, theirs = language_models(shape["vocab"], shape["embedding_dim"], shape["hidden"], shape["layers"],
                                           seed)
            inputs, targets = lm_windows(shape["vocab"], shape["batch"], shape["bptt"], seed=seed + 1)[0]
            base = dict(threads=threads, dtype="float32", **shape)
            train = Pair(lambda: ours.train_step(inputs, targets),
                         None if theirs is None else lambda: theirs.train_step(inputs, targets), min_time)
            generate = Pair(lambda: ours.generate(generate_length),
                            None if theirs is None else lambda: theirs.generate(generate_length), min_time)
            for pair in (train, generate):
                for _ in range(reps):
                    pair.repetition()
                    bar.update()
            chars = shape["batch"] * shape["bptt"]
            tn, tt, tr = train.summary()
            rows.append(dict(base, kind="lm-train", chars=chars, seconds_numgru=tn, seconds_torch=tt,
                             chars_per_s_numgru=chars / tn, chars_per_s_torch=None if tt is None else chars / tt,
                             ratio=tr))
            gn, gt, gr = generate.summary()
            rows.append(dict(base, kind="lm-generate", chars=generate_length, seconds_numgru=gn, seconds_torch=gt,
                             chars_per_s_numgru=generate_length / gn,
                             chars_per_s_torch=None if gt is None else generate_length / gt,
                             ratio=None if gr is None else 1.0 / gr))
    except KeyboardInterrupt:
        print(f"\ninterrupted: returning the {len(rows)} text rows finished so far", file=sys.stderr)
    finally:
        bar.close()
    return rows


# ------------------------------------------------------------------------------------ first call

FIRST_CALL_MARKER = "NUMGRU_FIRST_CALL "
ALONE_MARKER = "NUMGRU_ALONE "

# Each entry point that compiles: a list of (stage, code); the stages run in
# order in one fresh process and each is timed up to its end. "import" comes
# first; {dev} is the device. The shapes are those the issue fixed.
_GRU_STAGES = [
    ("import", "import numgru, numpy as np"),
    ("forward", "gru = numgru.GRU(32, 64, device='{dev}', dtype='{dtype}', seed=0)\n"
                "x = np.ones((50, 16, 32), '{dtype}')\n"
                "out, hn = gru(x)"),
    ("backward", "gru.backward(np.ones_like(out))"),
]
FIRST_CALL_ENTRIES = {
    "GRU-float32": [(s, c.replace("{dtype}", "float32")) for s, c in _GRU_STAGES],
    "GRU-float64": [(s, c.replace("{dtype}", "float64")) for s, c in _GRU_STAGES],
    "GRUCell": [
        ("import", "import numgru, numpy as np"),
        ("forward", "cell = numgru.GRUCell(32, 64, device='{dev}', seed=0)\n"
                    "h = cell(np.ones((16, 32), 'float32'))"),
        ("backward", "cell.backward(np.ones_like(h))"),
    ],
    "GRUStream.step": [
        ("import", "import numgru, numpy as np"),
        ("forward", "stream = numgru.GRUStream(numgru.GRU(32, 64, device='{dev}', seed=0), batch_size=1)\n"
                    "h = stream.step(np.ones((1, 32), 'float32'))"),
    ],
    # The command line's start-up, timed as a whole process: the smallest run `train` offers.
    "train-CLI": ["-m", "numgru", "train", "--task", "adding", "--task-arg", "T=10", "--n-train", "32",
                  "--n-val", "16", "--n-test", "16", "--hidden", "8", "--batch", "16", "--epochs", "1",
                  "--device", "{dev}", "--quiet", "--out", "{out}"],
}
FIRST_CALL_ENTRY = "GRU-float32"      # the one asv times, for every engine
_TORCH_FIRST_CALL = [
    ("import", "import torch, numpy as np\ntorch.set_num_threads({threads})"),
    ("forward", "gru = torch.nn.GRU(32, 64).to('{dev}')\n"
                "x = torch.from_numpy(np.ones((50, 16, 32), np.float32)).to('{dev}').requires_grad_(True)\n"
                "out, hn = gru(x)"),
    ("backward", "out.backward(torch.ones_like(out))\n"
                 "if '{dev}' == 'cuda': torch.cuda.synchronize()"),
]


def first_call_stages(entry=FIRST_CALL_ENTRY, engine="numgru-cpu", threads=DEFAULT_THREADS):
    """The (stage, code) list of a first-call entry point for ``engine`` (torch: only ``FIRST_CALL_ENTRY``)."""
    if library(engine) == "torch":
        if entry != FIRST_CALL_ENTRY:
            raise ValueError(f"torch has only the {FIRST_CALL_ENTRY!r} first-call source, not {entry!r}")
        stages = _TORCH_FIRST_CALL
    else:
        stages = FIRST_CALL_ENTRIES[entry]
        if not isinstance(stages[0], tuple):
            raise ValueError(f"{entry!r} is a command, not Python source")
    return [(name, code.format(dev=device(engine), threads=threads)) for name, code in stages]


def first_call_source(engine="numgru-cpu", entry=FIRST_CALL_ENTRY, threads=DEFAULT_THREADS):
    """Python source that imports ``engine``'s library and runs its first forward + backward (asv's timeraw)."""
    return "\n".join(code for _, code in first_call_stages(entry, engine, threads)) + "\n"


def timed_source(stages):
    """``stages`` as one program that prints, on its last line, the seconds from its start to each stage's end.

    The line is ``FIRST_CALL_MARKER`` followed by a JSON object {stage: seconds},
    cumulative (time.perf_counter), so "import" is the import alone and the
    last stage is import + every first call.
    """
    lines = ["import time as _numgru_time, json as _numgru_json", "_numgru_marks = {}",
             "_numgru_start = _numgru_time.perf_counter()"]
    for name, code in stages:
        lines.append(code)
        lines.append(f"_numgru_marks[{name!r}] = _numgru_time.perf_counter() - _numgru_start")
    lines.append(f"print({FIRST_CALL_MARKER!r} + _numgru_json.dumps(_numgru_marks), flush=True)")
    return "\n".join(lines) + "\n"


def first_call_env(engine="numgru-cpu", threads=DEFAULT_THREADS):
    """Environment variables of a first-call process: the thread counts pinned the same way."""
    env = {"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    if library(engine) == "numgru":
        env["NUMBA_NUM_THREADS"] = str(threads)
    return env


def numba_cache_files(directory):
    """How many Numba cache files (index .nbi and data .nbc) lie under ``directory``."""
    return sum(name.endswith((".nbi", ".nbc")) for _, _, names in os.walk(directory) for name in names)


def _run_process(argv, env, cwd, timeout, marker=FIRST_CALL_MARKER):
    """Run a benchmark process: (its wall seconds, the JSON it printed after ``marker``, or None)."""
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip()[-2000:]
        raise RuntimeError(f"benchmark process {argv[1:3]} failed with status {proc.returncode}:\n{tail}")
    marks = None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(marker):
            marks = json.loads(line[len(marker):])
            break
    return wall, marks


def alone_process(function, *args, engine, threads, timeout=900):
    """``benchmarks.<function>(*args)`` in a fresh process of this interpreter: what it returns (as JSON).

    The process holds one engine (``engine``), its threads pinned by the
    environment (``first_call_env``), so that no other engine's idle threads
    (OpenMP's and onnxruntime's spin after their parallel regions) share its
    cores, and each library runs with its own defaults. ``args``: reprs that
    Python reads back (numbers, strings, tuples, dicts).
    """
    call = f"benchmarks.{function}({', '.join(map(repr, args))})"
    code = f"import json\nfrom numgru import benchmarks\nprint({ALONE_MARKER!r} + json.dumps({call}))"
    env = {**os.environ, **first_call_env(engine, threads)}
    _, result = _run_process([sys.executable, "-c", code], env, os.getcwd(), timeout, ALONE_MARKER)
    return result


def first_call_once(entry, cache_dir, engine="numgru-cpu", threads=DEFAULT_THREADS, python=None, timeout=900):
    """One fresh process of a first-call entry with NUMBA_CACHE_DIR=``cache_dir``; a dict of seconds.

    ``entry``: a name of ``FIRST_CALL_ENTRIES``, or directly a list of
    (stage, code) or a command's argument list (after the interpreter). The
    process is the same interpreter (``python``, default ``sys.executable``)
    with the caller's environment plus the cache directory and pinned threads,
    run in an empty temporary working directory, so it imports numgru exactly
    as the user would, never a source tree by accident. Keys: ``wall``
    (the whole process, from outside), and for Python entries ``import`` and
    ``total`` (import + every first call, timed inside) and each stage.
    """
    spec = FIRST_CALL_ENTRIES[entry] if isinstance(entry, str) else entry
    python = sys.executable if python is None else python
    env = {**os.environ, **first_call_env(engine, threads), "NUMBA_CACHE_DIR": os.fspath(cache_dir)}
    workdir = tempfile.mkdtemp(prefix="numgru-first-call-cwd-")
    try:
        if spec and isinstance(spec[0], tuple):
            stages = [(name, code.format(dev=device(engine), threads=threads)) for name, code in spec]
            wall, marks = _run_process([python, "-c", timed_source(stages)], env, workdir, timeout)
            if marks is None:
                raise RuntimeError("first-call process printed no timings")
            return dict(marks, wall=wall, total=marks[stages[-1][0]])
        argv = [arg.format(dev=device(engine), out=os.path.join(workdir, "out")) for arg in spec]
        wall, _ = _run_process([python, *argv], env, workdir, timeout)
        return dict(wall=wall, total=wall, **{"import": None})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def measure_first_call(entries=None, engine="numgru-cpu", threads=DEFAULT_THREADS, reps=1, python=None,
                       timeout=900, progress=True):
    """Cold and warm start of each first-call entry point, each in fresh processes; one dict per entry.

    For each entry (default: every one of ``FIRST_CALL_ENTRIES``; or a dict
    name -> stages/command), a new empty directory is made Numba's cache
    (NUMBA_CACHE_DIR) and the entry runs in a fresh process: "cold". Then it
    runs again with the same, now filled, directory: "warm". ``reps`` > 1
    repeats the pair, each time with a new empty directory, and reports
    medians. Numba's ``UserProvidedCacheLocator`` is the first locator it
    tries and is used whenever NUMBA_CACHE_DIR is set (and writable), so an
    in-tree ``__pycache__`` beside the kernels is never read: cold is cold.
    ``cache_files`` counts the .nbi/.nbc files the cold run left; with none,
    nothing was cached and warm pays the compile again.

    Row keys: ``entry``, ``cold``/``warm`` (dicts of seconds as
    ``first_call_once`` returns them, medians over ``reps``), ``cache_files``,
    ``cache_files_warm`` (after the warm run: more means it compiled and saved
    again), ``warm_over_cold`` (total seconds warm / cold).
    """
    if entries is None:
        entries = FIRST_CALL_ENTRIES
    elif not isinstance(entries, dict):
        entries = {name: FIRST_CALL_ENTRIES[name] for name in entries}
    reps = int(reps)
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    from tqdm.auto import tqdm
    bar = tqdm(total=len(entries) * reps * 2, desc="numgru first call", unit="process", disable=not progress,
               file=sys.stderr)
    rows = []
    try:
        for name, spec in entries.items():
            runs = {"cold": [], "warm": []}
            files = []
            for _ in range(reps):
                cache_dir = tempfile.mkdtemp(prefix="numgru-first-call-cache-")
                try:
                    if os.listdir(cache_dir):
                        raise RuntimeError(f"cache directory {cache_dir} is not empty: a cold run would not be cold")
                    for kind in ("cold", "warm"):
                        bar.set_postfix_str(f"{name} {kind}")
                        runs[kind].append(first_call_once(spec, cache_dir, engine, threads, python, timeout))
                        files.append(numba_cache_files(cache_dir))
                        bar.update()
                finally:
                    shutil.rmtree(cache_dir, ignore_errors=True)
            cold, warm = (_median_dicts(runs[k]) for k in ("cold", "warm"))
            rows.append(dict(entry=name, engine=engine, threads=threads, cold=cold, warm=warm,
                             cache_files=files[0], cache_files_warm=files[1],
                             warm_over_cold=warm["total"] / cold["total"]))
    finally:
        bar.close()
    return rows


def _median_dicts(dicts):
    return {key: None if dicts[0][key] is None else statistics.median(d[key] for d in dicts) for key in dicts[0]}


# ------------------------------------------------------------------------------------ speech (CTC, features)

CTC_SHAPE = dict(T=200, B=32, C=29, S=50)     # 200 frames, 28 letters + blank, 50-label targets
FEATURE_SECONDS = 60.0                        # seconds of audio each timed feature call reads
FEATURE_LIBRARIES = ("numgru", "librosa")
FSDD_RECORDINGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "shared",
                               "datasets", "fsdd", "recordings")
_SPEECH_NEEDS = {"ctc": ("torch", "numgru.losses", "ctc"), "features": ("librosa", "numgru.audio", "log_mel")}


def numgru_lacks(kind):
    """Why this numgru cannot run the speech benchmark ``kind`` ("ctc" or "features"), or None when it can."""
    _, module, name = _SPEECH_NEEDS[kind]
    try:
        owner = importlib.import_module(module)
    except ImportError:
        return f"this numgru has no {module}"
    return None if hasattr(owner, name) else f"this numgru has no {module}.{name}"


def speech_unavailable(kind):
    """Why the speech benchmark ``kind`` ("ctc": needs torch, "features": librosa) cannot run here, or None."""
    yardstick = _SPEECH_NEEDS[kind][0]
    if importlib.util.find_spec(yardstick) is None:
        return f"{yardstick} is not installed"
    return numgru_lacks(kind)


def ctc_inputs(T=CTC_SHAPE["T"], B=CTC_SHAPE["B"], C=CTC_SHAPE["C"], S=CTC_SHAPE["S"], dtype="float32", seed=0):
    """Random log_softmax log-probabilities (T, B, C) and targets (B, S) in [1, C) (no blank), all lengths full."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, C))
    log_probs = x - x.max(-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    targets = rng.integers(1, C, (B, S))
    return log_probs.astype(dtype), targets, np.full(B, T, np.int64), np.full(B, S, np.int64)


class NumgruCTC:
    """numgru.losses.ctc (mean reduction): ``step()`` computes the loss and its gradient, returns the loss."""

    def __init__(self, log_probs, targets, input_lengths, target_lengths):
        from numgru import losses
        self.ctc, self.args = losses.ctc, (log_probs, targets, input_lengths, target_lengths)

    def step(self):
        return self.ctc(*self.args)[0]


class TorchCTC:
    """torch.nn.functional.ctc_loss (mean reduction), CPU: ``step()`` runs forward and backward, returns the loss."""

    def __init__(self, log_probs, targets, input_lengths, target_lengths):
        import torch
        self.F = torch.nn.functional
        self.log_probs = torch.tensor(log_probs, requires_grad=True)
        self.rest = tuple(torch.tensor(a) for a in (targets, input_lengths, target_lengths))

    def step(self):
        self.log_probs.grad = None
        loss = self.F.ctc_loss(self.log_probs, *self.rest)
        loss.backward()
        return float(loss.detach())


def ctc_model(engine, dtype="float32", threads=None, seed=0, warm_up=True):
    """One engine's CTC loss on ``CTC_SHAPE`` (for asv: each engine alone); NotImplementedError where it cannot run."""
    require(engine)
    if device(engine) != "cpu":
        raise NotImplementedError(f"{engine}: the CTC loss runs on the CPU only")
    if library(engine) == "numgru" and numgru_lacks("ctc") is not None:
        raise NotImplementedError(numgru_lacks("ctc"))
    if threads is not None:
        pin_threads(threads, engine)
    model = (NumgruCTC if library(engine) == "numgru" else TorchCTC)(*ctc_inputs(dtype=dtype, seed=seed))
    if warm_up:
        model.step()
    return model


def run_ctc_bench(reps=DEFAULT_REPS, threads=DEFAULT_THREADS, shape=None, dtype="float32", min_time=0.05, seed=0,
                  progress=True):
    """numgru.losses.ctc (loss + gradient) against torch.nn.functional.ctc_loss forward + backward, CPU: one dict.

    ``shape``: overrides of ``CTC_SHAPE`` (T, B, C, S); random log_softmax
    inputs, random targets without the blank, every length full, mean
    reduction. Timed alternately in one process, threads pinned for both.
    Keys: kind="ctc", threads, dtype, reps, T, B, C, S, ms_numgru, ms_torch
    (median ms a call), ratio (median per-repetition time ratio numgru/torch,
    < 1: numgru faster), loss_numgru, loss_torch (they agree). None (the
    reason on stderr) where torch or numgru's CTC is missing.
    """
    from tqdm.auto import tqdm
    reason = speech_unavailable("ctc")
    if reason is not None:
        print(f"CTC benchmark skipped: {reason}", file=sys.stderr)
        return None
    shape = dict(CTC_SHAPE, **(shape or {}))
    reps = _check_common(reps, dtype)
    bar = tqdm(total=reps, desc="numgru bench ctc", unit="rep", disable=not progress, file=sys.stderr)
    try:
        with pinned_threads(threads) as threads:
            args = ctc_inputs(dtype=dtype, seed=seed, **shape)
            ours, theirs = NumgruCTC(*args), TorchCTC(*args)
            pair = Pair(ours.step, theirs.step, min_time)
            for _ in range(reps):
                pair.repetition()
                bar.update()
            tn, tt, ratio = pair.summary()
            return dict(kind="ctc", threads=threads, dtype=dtype, reps=reps, **shape, ms_numgru=_ms(tn),
                        ms_torch=_ms(tt), ratio=ratio, loss_numgru=ours.step(), loss_torch=theirs.step())
    finally:
        bar.close()


def feature_clips(seconds=FEATURE_SECONDS, recordings=FSDD_RECORDINGS, sample_rate=8000, seed=0):
    """(clips, source): about ``seconds`` of audio, a list of 1-D float32 signals at ``sample_rate``.

    FSDD recordings (read by numgru.audio.load), in name order until
    ``seconds`` are reached, when the folder ``recordings`` holds WAV files
    (source "fsdd"); otherwise half-second clips of seeded noise ("random").
    """
    names = sorted(f for f in os.listdir(recordings) if f.endswith(".wav")) if os.path.isdir(recordings) else []
    if not names:
        rng = np.random.default_rng(seed)
        clips = [(0.1 * rng.standard_normal(sample_rate // 2)).astype(np.float32)
                 for _ in range(math.ceil(2 * seconds))]
        return clips, "random"
    from numgru import audio
    clips, total = [], 0
    for name in names:
        clips.append(audio.load(os.path.join(recordings, name), sample_rate)[0])
        total += clips[-1].size
        if total >= seconds * sample_rate:
            break
    return clips, "fsdd"


class FeatureExtractor:
    """numgru.audio's or librosa's log-mel (dB) and MFCC of a list of clips, with numgru.audio.FSDD_SETTINGS.

    ``log_mel()`` and ``mfcc()`` compute every clip's features (lists of
    (frames, n_mels) and (frames, n_mfcc) arrays; librosa's transposed to
    that layout). librosa: melspectrogram (power 2) + power_to_db(ref=1,
    amin, top_db=None), mfcc(S=dB): numgru.audio's definitions.
    """

    def __init__(self, library_name, clips, settings, n_mfcc=13):
        self.clips, self.n_mfcc = clips, n_mfcc
        if library_name == "numgru":
            from numgru import audio
            self._log_mel = lambda clip: audio.log_mel(clip, **settings)
            self._mfcc = lambda db: audio.mfcc(db, n_mfcc)
            return
        import librosa
        mel = dict(sr=settings["sample_rate"], n_fft=settings["n_fft"], hop_length=settings["hop_length"],
                   win_length=settings["win_length"], window=settings["window"], center=settings["center"],
                   n_mels=settings["n_mels"], fmin=settings["fmin"], fmax=settings["fmax"], power=2.0)
        self._log_mel = lambda clip: librosa.power_to_db(librosa.feature.melspectrogram(y=clip, **mel), ref=1.0,
                                                         amin=settings["amin"], top_db=None).T
        self._mfcc = lambda db: librosa.feature.mfcc(S=db.T, n_mfcc=n_mfcc).T

    def log_mel(self):
        return [self._log_mel(clip) for clip in self.clips]

    def mfcc(self):
        return [self._mfcc(self._log_mel(clip)) for clip in self.clips]


def feature_extractor(library_name, seconds=FEATURE_SECONDS, recordings=FSDD_RECORDINGS, n_mfcc=13, seed=0,
                      threads=None, warm_up=True):
    """One library's ``FeatureExtractor`` over ``feature_clips`` (for asv); NotImplementedError where it cannot run."""
    if library_name not in FEATURE_LIBRARIES:
        raise ValueError(f"library_name must be one of {FEATURE_LIBRARIES}, got {library_name!r}")
    reason = numgru_lacks("features") if library_name == "numgru" else speech_unavailable("features")
    if reason is not None:
        raise NotImplementedError(reason)
    from numgru import audio       # the settings and the FSDD reader are numgru's, for librosa too
    if threads is not None:
        pin_threads(threads, "numgru-cpu")
    settings = dict(audio.FSDD_SETTINGS)
    clips, _ = feature_clips(seconds, recordings, settings["sample_rate"], seed)
    extractor = FeatureExtractor(library_name, clips, settings, n_mfcc)
    if warm_up:
        extractor.mfcc()
    return extractor


def run_feature_bench(seconds=FEATURE_SECONDS, reps=DEFAULT_REPS, threads=DEFAULT_THREADS, recordings=FSDD_RECORDINGS,
                      n_mfcc=13, min_time=0.05, seed=0, progress=True):
    """numgru.audio.log_mel (and + mfcc) against librosa's melspectrogram + power_to_db (+ mfcc): one dict.

    Both compute the FSDD_SETTINGS features of every clip of
    ``feature_clips`` (about ``seconds`` of audio, utterance by utterance),
    timed alternately in one process, threads pinned. Keys: kind="features",
    source ("fsdd" or "random"), clips, audio_seconds, threads, n_mfcc,
    max_abs_diff_db (the largest log-mel difference between the two), and
    for feature in logmel, mfcc: {feature}_audio_s_per_s_numgru and
    {feature}_audio_s_per_s_librosa (seconds of audio featurised per
    second), {feature}_ratio (median per-repetition time ratio
    numgru/librosa, < 1: numgru faster). None (the reason on stderr) where
    librosa or numgru.audio is missing.
    """
    from tqdm.auto import tqdm
    reason = speech_unavailable("features")
    if reason is not None:
        print(f"feature benchmark skipped: {reason}", file=sys.stderr)
        return None
    from numgru import audio
    settings = dict(audio.FSDD_SETTINGS)
    clips, source = feature_clips(seconds, recordings, settings["sample_rate"], seed)
    ours, theirs = (FeatureExtractor(name, clips, settings, n_mfcc) for name in FEATURE_LIBRARIES)
    audio_seconds = sum(c.size for c in clips) / settings["sample_rate"]
    reps = _check_common(reps, "float32")
    bar = tqdm(total=2 * reps, desc="numgru bench features", unit="rep", disable=not progress, file=sys.stderr)
    try:
        with pinned_threads(threads, "numgru-cpu") as threads:
            diff = max(float(np.max(np.abs(a - b))) for a, b in zip(ours.log_mel(), theirs.log_mel()))
            row = dict(kind="features", source=source, clips=len(clips), audio_seconds=audio_seconds,
                       threads=threads, n_mfcc=n_mfcc, max_abs_diff_db=diff)
            for feature in ("logmel", "mfcc"):
                method = "log_mel" if feature == "logmel" else "mfcc"
                pair = Pair(getattr(ours, method), getattr(theirs, method), min_time)
                for _ in range(reps):
                    pair.repetition()
                    bar.update()
                tn, tl, ratio = pair.summary()
                row.update({f"{feature}_audio_s_per_s_numgru": audio_seconds / tn,
                            f"{feature}_audio_s_per_s_librosa": audio_seconds / tl, f"{feature}_ratio": ratio})
            return row
    finally:
        bar.close()


# ------------------------------------------------------------------ streaming recognition

STREAM_SHAPE = dict(hidden=128, layers=2, stride=3, chunk_ms=100.0, seconds=10.0)   # digit-strings streaming=True


def speech_stream_model(hidden, layers, stride, seed=0):
    """A unidirectional CTCModel over globally normalised log-mel frames, as streaming recognition uses."""
    from numgru import audio, speech
    n_mels = audio.FSDD_SETTINGS["n_mels"]
    front = speech.front_end(kind="logmel", normalize="global", mean=np.full(n_mels, -50.0),
                             std=np.full(n_mels, 15.0), stride=stride)
    return speech.CTCModel(front, [str(d) for d in range(10)], hidden, layers, bidirectional=False,
                           seed=seed).eval()


def run_speech_stream_bench(reps=DEFAULT_REPS, shape=None, seed=0, progress=True):
    """Streaming recognition at B=1: ``SpeechStream.push`` of ``chunk_ms`` of audio at a time (features, GRU
    stream, head, greedy CTC decoding), over ``seconds`` of noise. One dict: kind="speech-stream", the shape,
    us_per_frame (median over repetitions of the time per 10 ms frame of audio), frames, reps."""
    from tqdm.auto import tqdm
    from numgru import audio
    shape = dict(STREAM_SHAPE, **(shape or {}))
    reps = _check_common(reps, "float32")
    rate, hop = audio.FSDD_SETTINGS["sample_rate"], audio.FSDD_SETTINGS["hop_length"]
    model = speech_stream_model(shape["hidden"], shape["layers"], shape["stride"], seed)
    signal = (0.05 * np.random.default_rng(seed).standard_normal(int(shape["seconds"] * rate))).astype(np.float32)
    chunk = int(round(shape["chunk_ms"] * rate / 1000))
    chunks = [signal[i:i + chunk] for i in range(0, len(signal), chunk)]
    frames = len(signal) // hop
    stream = model.stream()

    def utterance():
        for piece in chunks:
            stream.push(piece)
        stream.finish()

    utterance()                                   # compile and warm up
    times = []
    for _ in tqdm(range(reps), desc="numgru bench speech stream", unit="rep", disable=not progress, file=sys.stderr):
        start = time.perf_counter()
        utterance()
        times.append(time.perf_counter() - start)
    return dict(kind="speech-stream", **shape, frames=frames, reps=reps,
                us_per_frame=float(np.median(times)) / frames * 1e6)


# ------------------------------------------------------------------ translation (Seq2Seq)

SEQ2SEQ_SHAPE = dict(embedding_dim=128, hidden=256, layers=1, batch=32, dropout=0.3, beam=5)   # the task's recipe


def translation_data(seed=0):
    """The ``translate`` task's training pairs and test sentences, with the vocabularies its trainer builds."""
    from numgru import tasks, text
    task = tasks.translate(seed=seed)
    vocabularies = [text.Vocabulary.build(text.tokenize_texts(name, sentences, task.tokenizer, lower))
                    for name, sentences, lower in (("sources", task.sources_train, task.source_lower),
                                                   ("targets", task.targets_train, task.target_lower))]
    return task, vocabularies


class NumgruSeq2Seq:
    """numgru.Seq2Seq with general attention: ``train_step(rows)`` runs forward, cross-entropy, backward,
    clip and Adam on those training pairs; ``eval_loss(rows)`` the loss without dropout."""

    def __init__(self, task, vocabularies, shape, lr=2e-3, clip=5.0, seed=0):
        import numgru
        self.numgru = numgru
        self.model = numgru.Seq2Seq(*vocabularies, shape["embedding_dim"], shape["hidden"], shape["layers"],
                                    dropout=shape["dropout"], tokenizer=task.tokenizer,
                                    source_lower=task.source_lower, target_lower=task.target_lower, seed=seed)
        self.pairs = self.model._encode_pairs(task.sources_train, task.targets_train, ("sources", "targets"))
        self.optimizer = numgru.optim.Adam([self.model], lr=lr)
        self.clip = clip

    def train_step(self, rows):
        self.optimizer.zero_grad()
        loss = self.model._pairs_step(self.pairs, rows)
        self.numgru.optim.clip_grad_norm([self.model], self.clip)
        self.optimizer.step()
        return loss

    def eval_loss(self, rows):
        self.model.eval()
        with self.numgru.no_grad():
            loss = self.model._pairs_loss(self.pairs, rows)[0]
        self.model.train()
        return loss


class TorchSeq2Seq:
    """The same model in torch, as a torch user writes it: the encoder over a packed batch (its backward
    direction must not read padding), the decoder over the padded targets (the loss masks what lies past
    each end), Luong's general attention by ``bmm`` with padded positions masked to -inf, dropout in the
    same three places, Adam, clip_grad_norm_. ``state_dict``: numgru's weights (the same names)."""

    def __init__(self, source_vocab, target_vocab, shape, lr=2e-3, clip=5.0, seed=0, state_dict=None):
        import torch
        self.torch = torch
        torch.manual_seed(seed)
        E, H, L, p = shape["embedding_dim"], shape["hidden"], shape["layers"], shape["dropout"]
        nn = torch.nn

        class Attention(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.empty(H, 2 * H).uniform_(-0.1, 0.1))

        class Seq2Seq(nn.Module):
            def __init__(self):
                super().__init__()
                self.source_embedding = nn.Embedding(source_vocab, E, padding_idx=0)
                self.encoder = nn.GRU(E, H, L, bidirectional=True, batch_first=True, dropout=p if L > 1 else 0.0)
                self.bridge = nn.Linear(2 * H, H)
                self.target_embedding = nn.Embedding(target_vocab, E, padding_idx=0)
                self.decoder = nn.GRU(E, H, L, batch_first=True, dropout=p if L > 1 else 0.0)
                self.attention = Attention()
                self.combine = nn.Linear(3 * H, H)
                self.head = nn.Linear(H, target_vocab)
                self.drop = nn.Dropout(p)

            def forward(self, source, source_lengths, target_in):
                packed = nn.utils.rnn.pack_padded_sequence(self.drop(self.source_embedding(source)), source_lengths,
                                                           batch_first=True, enforce_sorted=False)
                out, hn = self.encoder(packed)
                memory, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)       # (B, S, 2H)
                B = source.shape[0]
                finals = hn.reshape(L, 2, B, H).permute(0, 2, 1, 3).reshape(L, B, 2 * H)
                states, _ = self.decoder(self.drop(self.target_embedding(target_in)),
                                         torch.tanh(self.bridge(finals)).contiguous())
                scores = torch.bmm(states, (memory @ self.attention.weight.T).transpose(1, 2))   # (B, T, S)
                padded = torch.arange(memory.shape[1])[None, :] >= source_lengths[:, None]
                weights = torch.softmax(scores.masked_fill(padded[:, None, :], float("-inf")), dim=-1)
                context = torch.bmm(weights, memory)
                return self.head(self.drop(torch.tanh(self.combine(torch.cat([context, states], dim=-1)))))

        self.model = Seq2Seq()
        if state_dict is not None:
            self.model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state_dict.items()})
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.clip = clip

    def _loss(self, pairs, rows):
        torch = self.torch
        source, source_lengths, target_in, target_out, target_lengths = pairs
        S, T = source_lengths[rows].max(), target_lengths[rows].max()
        logits = self.model(torch.from_numpy(source[rows, :S]), torch.from_numpy(source_lengths[rows]),
                            torch.from_numpy(target_in[rows, :T]))
        targets = torch.from_numpy(np.where(np.arange(T) < target_lengths[rows, None], target_out[rows, :T], -100))
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    def train_step(self, pairs, rows):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(pairs, rows)
        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        return loss.item()

    def eval_loss(self, pairs, rows):
        self.model.eval()
        with self.torch.no_grad():
            loss = self._loss(pairs, rows).item()
        self.model.train()
        return loss


def seq2seq_alone(engine, shape=None, reps=DEFAULT_REPS, min_time=0.2, seed=0, threads=DEFAULT_THREADS):
    """Seconds per training step of one engine's Seq2Seq (``seq2seq_model``), timed in this process with
    no other engine in it: the median of ``reps`` samples of at least ``min_time`` s."""
    train_step, _ = seq2seq_model(engine, shape, seed, threads, warm_up=True)
    return median_seconds(train_step, reps, min_time)


def run_translation_bench(shape=None, reps=DEFAULT_REPS, threads=DEFAULT_THREADS, progress=True, min_time=0.2,
                          seed=0, alone=True, alone_rounds=3):
    """Seq2Seq training steps against the same model in torch, and beam-search decoding speed: rows.

    ``kind == "seq2seq-train"``: one training step a call on a batch of the
    ``translate`` task's real pairs (``shape``: SEQ2SEQ_SHAPE, the task's
    recipe; one of two seeded batches of ``batch`` pairs in turn, the same for
    both engines), steps per second and the median per-repetition time ratio
    numgru/torch (< 1: numgru faster); ``loss_numgru``/``loss_torch``: both
    models' dropout-free loss on one batch from the same initial weights (the
    same model). The engines alternate in one process, where each one's idle
    threads (OpenMP's spin after a parallel region) slow the other; with
    ``alone``, each is also timed in fresh processes of its own, the engines
    in turn for ``alone_rounds`` rounds (``alone_steps_per_s_numgru``/``_torch``:
    the medians; ``alone_ratio``: the median of the rounds' numgru/torch time
    ratios). ``kind == "seq2seq-beam"``: ``Seq2Seq.translate`` of the 260
    test sentences at beam ``beam`` (batches of 64), sentences per second.
    """
    from tqdm.auto import tqdm
    shape = dict(SEQ2SEQ_SHAPE, **(shape or {}))
    reps = _check_common(reps, "float32")
    task, vocabularies = translation_data(seed)
    bar = tqdm(total=2 * reps, desc="numgru bench translation", unit="rep", disable=not progress, file=sys.stderr)
    rows = []
    try:
        with pinned_threads(threads) as threads:
            ours = NumgruSeq2Seq(task, vocabularies, shape, seed=seed)
            theirs = None
            if import_torch() is not None:
                theirs = TorchSeq2Seq(*map(len, vocabularies), shape, seed=seed, state_dict=ours.model.state_dict())
            N = len(ours.pairs[0])
            first = np.random.default_rng(seed).choice(N, shape["batch"], replace=False)
            losses = (ours.eval_loss(first), None if theirs is None else theirs.eval_loss(ours.pairs, first))
            pick = np.random.default_rng(seed + 1)
            batches = itertools.cycle([pick.choice(N, shape["batch"], replace=False) for _ in range(2)])
            train = Pair(lambda: ours.train_step(next(batches)),
                         None if theirs is None else lambda: theirs.train_step(ours.pairs, next(batches)), min_time)
            for _ in range(reps):
                train.repetition()
                bar.update()
            tn, tt, ratio = train.summary()
            base = dict(threads=threads, dtype="float32", **shape, pairs=N)
            row = dict(base, kind="seq2seq-train", steps_per_s_numgru=1 / tn,
                       steps_per_s_torch=None if tt is None else 1 / tt, ratio=ratio, loss_numgru=losses[0],
                       loss_torch=losses[1], alone_steps_per_s_numgru=None, alone_steps_per_s_torch=None,
                       alone_ratio=None)
            if alone:
                engines = ("numgru-cpu",) + (() if theirs is None else ("torch-cpu",))
                seconds = [[alone_process("seq2seq_alone", engine, shape, reps, min_time, seed, threads,
                                          engine=engine, threads=threads) for engine in engines]
                           for _ in range(alone_rounds)]
                for k, engine in enumerate(engines):
                    row[f"alone_steps_per_s_{library(engine)}"] = 1 / statistics.median(r[k] for r in seconds)
                if theirs is not None:
                    row["alone_ratio"] = statistics.median(r[0] / r[1] for r in seconds)
            rows.append(row)
            translate = lambda: ours.model.translate(task.sources_test, beam_width=shape["beam"])  # noqa: E731
            translate()
            times = []
            for _ in range(reps):
                start = time.perf_counter()
                translate()
                times.append(time.perf_counter() - start)
                bar.update()
            rows.append(dict(base, kind="seq2seq-beam", sentences=len(task.sources_test),
                             sentences_per_s=len(task.sources_test) / statistics.median(times)))
    except KeyboardInterrupt:
        print(f"\ninterrupted: returning the {len(rows)} translation rows finished so far", file=sys.stderr)
    finally:
        bar.close()
    return rows


def seq2seq_model(engine, shape=None, seed=0, threads=None, warm_up=True):
    """One engine's Seq2Seq on the ``translate`` task (for asv: each engine alone; the pairs are encoded by
    numgru's vocabularies in both): (train_step, translate). ``train_step()`` trains on the next of two
    seeded batches; ``translate()`` (numgru only, else None) decodes the test sentences at beam ``beam``.
    NotImplementedError where the engine cannot run it (CUDA, no torch, a numgru without Seq2Seq)."""
    require(engine)
    if device(engine) != "cpu":
        raise NotImplementedError(f"{engine}: Seq2Seq runs on the CPU only")
    import numgru
    if not hasattr(numgru, "Seq2Seq") or not hasattr(numgru.tasks, "translate"):
        raise NotImplementedError("this numgru has no Seq2Seq translation")
    if threads is not None:
        pin_threads(threads, engine)
    shape = dict(SEQ2SEQ_SHAPE, **(shape or {}))
    task, vocabularies = translation_data(seed)
    ours = NumgruSeq2Seq(task, vocabularies, shape, seed=seed)
    pick = np.random.default_rng(seed + 1)
    batches = itertools.cycle([pick.choice(len(ours.pairs[0]), shape["batch"], replace=False) for _ in range(2)])
    if library(engine) == "numgru":
        train_step = lambda: ours.train_step(next(batches))                                    # noqa: E731
        translate = lambda: ours.model.translate(task.sources_test, beam_width=shape["beam"])  # noqa: E731
    else:
        theirs = TorchSeq2Seq(*map(len, vocabularies), shape, seed=seed)
        train_step = lambda: theirs.train_step(ours.pairs, next(batches))                      # noqa: E731
        translate = None
    if warm_up:
        train_step()
        if translate is not None:
            translate()
    return train_step, translate


# ----------------------------------------------------------------------- onnxruntime (inference)

def onnx_forward_alone(engine, grid=FULL_GRID, reps=DEFAULT_REPS, min_time=0.05, seed=0, threads=DEFAULT_THREADS):
    """Seconds per float32 forward (I = H) of ``engine`` at each (T, B, H) of ``grid``, timed in this process with
    no other engine in it, at the engine's defaults but its thread count (onnxruntime's idle threads spin):
    ``median_seconds`` of each shape."""
    seconds = []
    for T, B, H in grid:
        model = sequence_model(engine, T, B, H, seed=seed, threads=threads)
        seconds.append(median_seconds(model.forward, reps, min_time))
        del model
        gc.collect()
    return seconds


def run_onnx_bench(grid=FULL_GRID, reps=DEFAULT_REPS, threads=DEFAULT_THREADS, progress=True, min_time=0.05, seed=0,
                   alone=True, alone_rounds=3, floor=True):
    """numgru's forward against onnxruntime's GRU on numgru's exported graph (same weights and inputs): rows.

    ``kind == "onnx-forward"``, one row per (T, B, H) of ``grid`` (float32,
    I = H, numgru under ``no_grad``): the engines alternating in one process
    (``Pair``) with onnxruntime's spinning off, since its idle threads would
    otherwise spin on the cores numgru's threads need (``ms_numgru``,
    ``ms_onnxruntime``; ``ratio``: the median per-repetition time ratio
    numgru/onnxruntime, < 1: numgru faster; ``max_abs_diff`` of the outputs).
    With ``alone``, each engine is also timed in fresh processes of its own at
    its defaults (``onnx_forward_alone``: onnxruntime's threads spin), the
    engines in turn for ``alone_rounds`` rounds (``alone_ms_*``: the medians
    over rounds; ``alone_ratio``: the median of the rounds' time ratios).

    With ``floor``: ``kind == "read-bandwidth"`` rows, the GB/s of
    ``read_bandwidth`` at 1 ... ``threads`` threads (``gbs``: {threads: GB/s})
    on an array of W_hh's size at each H of a B=1 shape, and on
    ``MEMORY_PROBE_BYTES`` ("memory"); and ``kind == "forward-floor"`` rows,
    one per B=1 shape: ``floor_ms``, ``forward_floor_bytes`` at ``floor_gbs``,
    the best rate on W_hh's size (W_hh is re-read every step from whichever
    cache holds it; memory's rate where that is higher: a small array's rate is
    held down by each dot's call cost, yet a cached array is never read slower
    than memory), ``memory_floor_ms`` at memory's rate, and each engine's times with their
    percentages of ``floor_ms`` (``pct_*`` alternating, ``alone_pct_*`` alone).
    onnxruntime's columns are None where it cannot run (the reason on stderr).
    Ctrl-C stops early and returns the rows finished so far.
    """
    from tqdm.auto import tqdm
    grid = _check_grid(grid)
    reps = _check_common(reps, "float32")
    reason = unavailable("onnxruntime-cpu")
    if reason is not None:
        print(f"onnxruntime columns left empty: {reason}", file=sys.stderr)
    engines = ("numgru-cpu",) + (("onnxruntime-cpu",) if reason is None else ())
    processes = alone_rounds * len(engines) if alone else 0
    bar = tqdm(total=len(grid) * reps + processes, desc="numgru bench onnx", unit="step", disable=not progress,
               file=sys.stderr)
    rows = []
    try:
        with pinned_threads(threads, "numgru-cpu") as threads:
            for T, B, H in grid:
                bar.set_postfix_str(f"T={T} B={B} H={H}")
                ours = sequence_model("numgru-cpu", T, B, H, seed=seed, warm_up=False)
                theirs = None if reason is not None else sequence_model(
                    "onnxruntime-cpu", T, B, H, seed=seed, threads=threads, state_dict=ours.state_dict(),
                    spinning=False, warm_up=False)
                diff = None if theirs is None else float(np.max(np.abs(ours.output() - theirs.output())))
                pair = Pair(ours.forward, None if theirs is None else theirs.forward, min_time)
                for _ in range(reps):
                    pair.repetition()
                    bar.update()
                tn, to, ratio = pair.summary()
                rows.append(dict(kind="onnx-forward", T=T, B=B, H=H, I=H, threads=threads, dtype="float32",
                                 ms_numgru=_ms(tn), ms_onnxruntime=_ms(to), ratio=ratio, max_abs_diff=diff,
                                 alone_ms_numgru=None, alone_ms_onnxruntime=None, alone_ratio=None))
                del ours, theirs, pair
                gc.collect()
            if alone:
                bar.set_postfix_str("each engine alone in fresh processes")
                seconds = []
                for _ in range(alone_rounds):
                    seconds.append([])
                    for engine in engines:
                        seconds[-1].append(alone_process("onnx_forward_alone", engine, grid, reps, min_time, seed,
                                                         threads, engine=engine, threads=threads))
                        bar.update()
                for k, row in enumerate(rows):
                    for e, engine in enumerate(engines):
                        row[f"alone_ms_{library(engine)}"] = _ms(statistics.median(r[e][k] for r in seconds))
                    if len(engines) == 2:
                        row["alone_ratio"] = statistics.median(r[0][k] / r[1][k] for r in seconds)
            if floor:
                rows += _floor_rows([r for r in rows if r["B"] == 1], threads, min_time)
    except KeyboardInterrupt:
        print(f"\ninterrupted: returning the {len(rows)} onnx rows finished so far", file=sys.stderr)
    finally:
        bar.close()
    return rows


def _floor_rows(batch_one_rows, threads, min_time):
    """The "read-bandwidth" and "forward-floor" rows of ``run_onnx_bench`` for its B=1 rows."""
    counts = blas_thread_counts(threads)
    weights = {H: weights_bandwidth(H, threads, min_time) for H in sorted({r["H"] for r in batch_one_rows})}
    memory = {t: read_bandwidth(MEMORY_PROBE_BYTES, t, min_time) for t in counts}
    rows = [dict(kind="read-bandwidth", what=f"W_hh at H={H}", nbytes=3 * H * H * 4, gbs=gbs)
            for H, gbs in weights.items()]
    rows.append(dict(kind="read-bandwidth", what="memory", nbytes=MEMORY_PROBE_BYTES, gbs=memory))
    for r in batch_one_rows:
        nbytes = forward_floor_bytes(r["T"], r["H"])
        best = max(*weights[r["H"]].values(), *memory.values())
        row = dict(kind="forward-floor", T=r["T"], H=r["H"], threads=threads, nbytes=nbytes, floor_gbs=best,
                   floor_ms=nbytes / best / 1e6, memory_floor_ms=nbytes / max(memory.values()) / 1e6)
        for key in ("ms_numgru", "ms_onnxruntime", "alone_ms_numgru", "alone_ms_onnxruntime"):
            row[key] = r[key]
            row[key.replace("ms_", "pct_")] = None if r[key] is None else 100 * r[key] / row["floor_ms"]
        rows.append(row)
    return rows
