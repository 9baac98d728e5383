"""What every benchmark module shares (nothing here is a benchmark): numgru's benchmark harness.

The shapes, engines, model builders, thread pinning, ragged-batch cases and
first-call sources are defined once, in ``numgru/benchmarks.py``, and used by
``python -m numgru bench`` too. It is loaded here *by path*, from the installed
numgru (found without importing numgru, so that a torch benchmark process never
loads numgru and numba, and vice versa, and ``peakmem_`` numbers are not
inflated by the other engine).

Fallback for old commits: asv also benchmarks commits from before the harness
was in the package, or with another ``HARNESS_VERSION``. Their installed numgru
has no usable ``benchmarks.py``, so this checkout's own copy is loaded instead:
it is written to run against any numgru's public API.

An *engine* is one of ``ENGINES``: numgru or PyTorch, on the CPU or on CUDA,
or onnxruntime's CPU GRU running numgru's exported graph, which only infers
(``Forward``); the other benchmarks run ``TRAINING_ENGINES``, numgru's and PyTorch's.
Each builder returns a small object whose methods are the timed calls; all
set-up (allocation, weight init, JIT compilation by a first call) happens when
it is built, i.e. in the benchmark's ``setup``.
"""
import importlib.util
import os

HARNESS_VERSION = 4       # the harness this suite is written against
FALLBACK = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "numgru", "benchmarks.py")


def installed_harness_path():
    """numgru/benchmarks.py of the installed numgru (None if numgru is not installed), numgru not imported."""
    spec = importlib.util.find_spec("numgru")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = os.path.join(folder, "benchmarks.py")
        if os.path.isfile(path):
            return path
    return None


def load_harness(paths=None):
    """The first of ``paths`` (default: the installed one, then ``FALLBACK``) at ``HARNESS_VERSION``."""
    paths = [installed_harness_path(), FALLBACK] if paths is None else paths
    for path in paths:
        if path is None or not os.path.isfile(path):
            continue
        spec = importlib.util.spec_from_file_location("numgru_bench_harness", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if getattr(module, "HARNESS_VERSION", None) == HARNESS_VERSION:
            return module
    raise ImportError(f"no numgru benchmark harness of version {HARNESS_VERSION} in {paths}")


harness = load_harness()

ENGINES = harness.ENGINES
TRAINING_ENGINES = harness.TRAINING_ENGINES
BATCHES = harness.BATCHES
HIDDEN = harness.HIDDEN
SEQ_LEN = harness.SEQ_LEN
RAGGED_SHAPE = harness.RAGGED_SHAPE
RAGGED_CASES = harness.RAGGED_CASES
# Threads for both engines; 2 = the cores of the project's benchmark machine.
THREADS = int(os.environ.get("NUMGRU_BENCH_THREADS", harness.DEFAULT_THREADS))

library, device, require, unavailable = harness.library, harness.device, harness.require, harness.unavailable
ragged_lengths = harness.ragged_lengths


LM_HIDDEN = (128, harness.LM_SHAPE["hidden"])     # a small model (for CI) and the H=512
LM_GENERATE_LENGTH = harness.LM_GENERATE_LENGTH


def language_model(engine, hidden):
    """A warmed-up character language model of ``engine``, threads pinned: (model, inputs, targets)."""
    return harness.language_model(engine, hidden, threads=THREADS)


def sequence_model(engine, T, B, H, I=None, training=False, lengths=None):
    """A warmed-up float32 GRU over a (T, B, I) sequence, threads pinned: ``.forward()`` / ``.train_step()``."""
    return harness.sequence_model(engine, T, B, H, I, training=training, lengths=lengths, threads=THREADS)


def step_model(engine, H, I=None, B=1):
    """A warmed-up GRU cell for streaming one step at a time: ``.step()`` carries h."""
    return harness.step_model(engine, H, I, B, threads=THREADS)


def first_call_source(engine):
    """Python source: import ``engine``'s library, first forward + backward of GRU(32, 64) on (50, 16, 32)."""
    return harness.first_call_source(engine, threads=THREADS)


def first_call_env(engine):
    """Environment of that fresh process: the thread counts pinned the same way."""
    return harness.first_call_env(engine, THREADS)
