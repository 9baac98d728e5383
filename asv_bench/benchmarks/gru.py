"""numgru against PyTorch (and, for inference, onnxruntime) on the same shapes: float32, T=200, I=H, threads pinned.

Parameters: engine in ``common.ENGINES`` for ``Forward`` (onnxruntime runs
numgru's exported graph with numgru's weights, its own defaults but the thread
count: its idle threads spin, as asv times each benchmark in a process of its
own), ``common.TRAINING_ENGINES`` for the others (unavailable engines are
skipped, not failed), batch B, hidden size H, or the lengths of a ragged batch. All
compilation and warm-up happen in ``setup``; GPU engines synchronise inside the
timed call. Shapes, cases and sources come from numgru's harness
(``numgru/benchmarks.py``, see ``common``), shared with ``python -m numgru bench``.
"""
import os
import shutil
import subprocess
import sys
import tempfile

from . import common


class _SequenceBench:
    params = [list(common.TRAINING_ENGINES), list(common.BATCHES), list(common.HIDDEN)]
    param_names = ["engine", "B", "H"]
    timeout = 600           # set-up compiles; H=1024, B=64 training steps take seconds
    training = False

    def setup(self, engine, B, H):
        self.model = common.sequence_model(engine, common.SEQ_LEN, B, H, training=self.training)


class Forward(_SequenceBench):
    """Inference: one forward pass over the whole sequence."""
    params = [list(common.ENGINES), list(common.BATCHES), list(common.HIDDEN)]

    def time_forward(self, engine, B, H):
        self.model.forward()


class TrainStep(_SequenceBench):
    """Forward + backward (BPTT, including the input gradient), parameter gradients zeroed first."""
    training = True

    def time_train_step(self, engine, B, H):
        self.model.train_step()

    def peakmem_train_step(self, engine, B, H):
        # Peak RSS of the whole benchmark process (library, weights, cache, gradients).
        self.model.train_step()


class Streaming:
    """One streaming step at B=1, carrying the state (numgru: GRUStream.step; torch: nn.GRUCell under no_grad)."""
    params = [list(common.TRAINING_ENGINES), list(common.HIDDEN)]
    param_names = ["engine", "H"]
    timeout = 300

    def setup(self, engine, H):
        self.model = common.step_model(engine, H)

    def time_step(self, engine, H):
        self.model.step()


class Ragged:
    """A ragged batch, T=200, B=64, H=256: numgru ``lengths=`` against torch's packed sequences.

    ``lengths``: a case of ``common.RAGGED_CASES`` (all T; uniform in 1..T;
    mostly short, mean T/8; one of length T and the rest 10), generated from a
    fixed seed. torch runs ``pack_padded_sequence(x, lengths,
    enforce_sorted=False)``, the GRU, ``pad_packed_sequence(..., total_length=T)``
    inside the timed call, as a user's code does.
    """
    params = [list(common.TRAINING_ENGINES), list(common.RAGGED_CASES)]
    param_names = ["engine", "lengths"]
    timeout = 600

    def setup(self, engine, lengths):
        T, B, H = common.RAGGED_SHAPE
        self.model = common.sequence_model(engine, T, B, H, training=True,
                                           lengths=common.ragged_lengths(lengths, T, B))

    def time_forward(self, engine, lengths):
        self.model.forward()

    def time_train_step(self, engine, lengths):
        self.model.train_step()


class FirstCall:
    """A fresh interpreter: import the library, then the first forward + backward of GRU(32, 64) on (50, 16, 32).

    ``cache="cold"``: Numba's on-disk cache starts empty in every sample (the
    full JIT compile); ``"warm"``: it was filled by an earlier process. PyTorch
    compiles nothing, so it runs only as ``"cold"``. The source is the
    harness's (``first_call_source``), the one ``python -m numgru bench
    --first-call`` times for "GRU-float32".
    """
    params = [list(common.TRAINING_ENGINES), ["cold", "warm"]]
    param_names = ["engine", "cache"]
    repeat = (1, 5, 60.0)
    number = 1
    warmup_time = 0
    timeout = 300

    def setup(self, engine, cache):
        common.require(engine)
        if cache == "warm" and common.library(engine) != "numgru":
            raise NotImplementedError("nothing to cache: PyTorch has no JIT on this path")
        self.tmp = tempfile.mkdtemp(prefix="numgru-asv-")
        self.env = common.first_call_env(engine)
        self.source = common.first_call_source(engine)
        if cache == "warm":
            self.env["NUMBA_CACHE_DIR"] = os.path.join(self.tmp, "warm")
            subprocess.run([sys.executable, "-c", self.source], check=True, cwd=self.tmp,
                           env={**os.environ, **self.env})

    def teardown(self, engine, cache):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def timeraw_import_and_first_call(self, engine, cache):
        # (stmt, setup): only stmt is timed; setup pins threads and picks the cache directory.
        setup = f"import os, tempfile\nos.environ.update({self.env!r})\n"
        if cache == "cold":
            setup += f"os.environ['NUMBA_CACHE_DIR'] = tempfile.mkdtemp(dir={self.tmp!r})\n"
        return self.source, setup
