"""Engine construction shared by every benchmark module (nothing here is a benchmark).

An *engine* is one of ``ENGINES``: numgru or PyTorch, on the CPU or on CUDA.
Each builder returns a small object whose methods are the timed calls; all
set-up (allocation, weight init, JIT compilation by a first call) happens when
it is built, i.e. in the benchmark's ``setup``.

Only numgru's public API is used (``GRU``, ``GRUCell``, ``backward``,
``zero_grad``, ``eval``/``train``), so the same suite can benchmark older
commits under ``asv continuous``. Libraries are imported lazily: a numgru
benchmark process never imports torch and vice versa, so ``peakmem_`` numbers
are not inflated by the other engine.
"""
import functools
import importlib.util
import os

ENGINES = ("numgru-cpu", "numgru-cuda", "torch-cpu", "torch-cuda")
BATCHES = (1, 16, 64)
HIDDEN = (64, 256, 1024)
SEQ_LEN = 200
# Threads for both engines; 2 = the cores of the project's benchmark machine.
THREADS = int(os.environ.get("NUMGRU_BENCH_THREADS", "2"))


def library(engine):
    return engine.split("-")[0]


def device(engine):
    return engine.split("-")[1]


@functools.lru_cache(maxsize=None)
def unavailable(engine):
    """Why ``engine`` cannot run here (a string), or None when it can."""
    if engine not in ENGINES:
        return f"unknown engine {engine!r}"
    lib, dev = library(engine), device(engine)
    if importlib.util.find_spec(lib) is None:
        return f"{lib} is not installed"
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


def _build(engine, cls, *args):
    """Construct an engine's model; a device the layer does not implement is a skip, not a failure."""
    try:
        return cls(device(engine), *args)
    except RuntimeError as exc:
        if device(engine) == "cpu":
            raise
        raise NotImplementedError(f"{engine} unavailable: {exc}") from exc


def require(engine):
    """Skip the benchmark the asv way (NotImplementedError in setup) if ``engine`` cannot run."""
    reason = unavailable(engine)
    if reason is not None:
        raise NotImplementedError(f"{engine} unavailable: {reason}")


def pin_threads(engine, threads=THREADS):
    """Give ``engine`` exactly ``threads`` threads (Numba, BLAS, or torch's intra-op pool)."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=threads)     # NumPy's BLAS (and any OpenMP pool already loaded)
    if library(engine) == "numgru":
        import numba
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    else:
        import torch
        torch.set_num_threads(threads)


def _inputs(shape, seed):
    import numpy as np
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


class _NumgruSeq:
    def __init__(self, dev, T, B, H, I, training):
        import contextlib
        import numgru
        self.gru = numgru.GRU(I, H, device=dev, seed=0)
        # inference keeps no backward cache, as torch's inference_mode (older commits: no such mode)
        self.inference = getattr(numgru, "no_grad", contextlib.nullcontext)
        self.x = _inputs((T, B, I), 1)
        self.dout = _inputs((T, B, H), 2)
        self.sync = _noop
        if dev == "cuda":
            from numba import cuda
            self.x, self.dout, self.sync = cuda.to_device(self.x), cuda.to_device(self.dout), cuda.synchronize
        self.gru.train(training)

    def forward(self):
        with self.inference():
            self.gru(self.x)
        self.sync()

    def train_step(self):
        self.gru.zero_grad()
        self.gru(self.x)
        self.gru.backward(self.dout)
        self.sync()


class _TorchSeq:
    def __init__(self, dev, T, B, H, I, training):
        import torch
        torch.manual_seed(0)
        self.torch = torch
        self.gru = torch.nn.GRU(I, H).to(dev).train(training)
        self.x = torch.from_numpy(_inputs((T, B, I), 1)).to(dev).requires_grad_(training)
        self.dout = torch.from_numpy(_inputs((T, B, H), 2)).to(dev)
        self.sync = torch.cuda.synchronize if dev == "cuda" else _noop

    def forward(self):
        with self.torch.inference_mode():
            self.gru(self.x)
        self.sync()

    def train_step(self):
        self.gru.zero_grad(set_to_none=True)
        self.x.grad = None
        out, _ = self.gru(self.x)
        out.backward(self.dout)      # also computes dx (x.requires_grad), as numgru's backward does
        self.sync()


class _NumgruStep:
    """numgru's streaming interface (GRUStream, CPU) where it exists, else a GRUCell carrying h."""

    def __init__(self, dev, B, H, I):
        import numgru
        self.cell = numgru.GRUCell(I, H, device=dev, seed=0)
        self.x = _inputs((B, I), 1)
        self.h = _inputs((B, H), 2)
        self.sync = _noop
        self.stream = None
        if dev == "cuda":
            from numba import cuda
            self.x, self.h, self.sync = cuda.to_device(self.x), cuda.to_device(self.h), cuda.synchronize
        elif hasattr(numgru, "GRUStream"):
            self.stream = numgru.GRUStream(self.cell, batch_size=B, h0=self.h[None])

    def step(self):
        if self.stream is not None:
            self.stream.step(self.x)
        else:
            self.h = self.cell(self.x, self.h)
        self.sync()


class _TorchStep:
    def __init__(self, dev, B, H, I):
        import torch
        torch.manual_seed(0)
        self.torch = torch
        self.cell = torch.nn.GRUCell(I, H).to(dev)
        self.x = torch.from_numpy(_inputs((B, I), 1)).to(dev)
        self.h = torch.from_numpy(_inputs((B, H), 2)).to(dev)
        self.sync = torch.cuda.synchronize if dev == "cuda" else _noop

    def step(self):
        with self.torch.no_grad():
            self.h = self.cell(self.x, self.h)
        self.sync()


def _noop():
    pass


def sequence_model(engine, T, B, H, I=None, training=False):
    """A warmed-up GRU over a (T, B, I) float32 sequence: ``.forward()`` / ``.train_step()``.

    Skips (NotImplementedError) when ``engine`` is unavailable. I defaults to H.
    """
    require(engine)
    pin_threads(engine)
    cls = _NumgruSeq if library(engine) == "numgru" else _TorchSeq
    model = _build(engine, cls, T, B, H, H if I is None else I, training)
    (model.train_step if training else model.forward)()   # compiles (numgru); asv's warm-up does the rest
    return model


def step_model(engine, H, I=None, B=1):
    """A warmed-up GRU cell for streaming one step at a time: ``.step()`` carries h."""
    require(engine)
    pin_threads(engine)
    cls = _NumgruStep if library(engine) == "numgru" else _TorchStep
    model = _build(engine, cls, B, H, H if I is None else I)
    model.step()
    return model


# Source of a fresh process's "import + first call" for timeraw_ benchmarks: (setup, stmt).
# The setup (untimed) gives Numba an empty on-disk cache directory, so every
# sample pays the full compile ("cold"), or points it at one filled beforehand ("warm").
_FIRST_CALL = {
    "numgru": (
        "import numgru, numpy as np\n"
        "gru = numgru.GRU({H}, {H}, device='{dev}', seed=0)\n"
        "x = np.ones(({T}, {B}, {H}), np.float32)\n"
        "out, hn = gru(x)\n"
        "gru.backward(np.ones_like(out))\n"
    ),
    "torch": (
        "import torch, numpy as np\n"
        "torch.set_num_threads({threads})\n"
        "gru = torch.nn.GRU({H}, {H}).to('{dev}')\n"
        "x = torch.from_numpy(np.ones(({T}, {B}, {H}), np.float32)).to('{dev}').requires_grad_(True)\n"
        "out, hn = gru(x)\n"
        "out.backward(torch.ones_like(out))\n"
        "if '{dev}' == 'cuda': torch.cuda.synchronize()\n"
    ),
}


def first_call_source(engine, T=20, B=1, H=64, threads=THREADS):
    """Python source that imports ``engine``'s library and runs its first forward + backward."""
    return _FIRST_CALL[library(engine)].format(T=T, B=B, H=H, dev=device(engine), threads=threads)


def first_call_env(engine, threads=THREADS):
    """Environment for that fresh process: the thread counts pinned the same way."""
    env = {"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    if library(engine) == "numgru":
        env["NUMBA_NUM_THREADS"] = str(threads)
    return env
