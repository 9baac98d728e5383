"""numgru and PyTorch side by side, in one process, on the same shapes and weights.

    python -m numgru.bench [--quick] [--shapes 1x64 16x256 ...] [--reps N] [--chart out.png]

(also ``python -m numgru bench ...``). Each repetition times numgru, then
torch, on the same call; the ratio numgru/torch is taken per repetition and
the median over repetitions is reported (< 1: numgru is faster), so drift in a
shared machine's load hits both engines alike. Both engines get the same
number of threads (Numba's and torch's intra-op pool; BLAS is capped too).
Everything is compiled and warmed up before timing.

Timed calls, float32 (``--dtype float64`` for double), input size I = H:
- forward: inference over a (T, B, I) sequence (numgru ``no_grad``, torch ``inference_mode``);
- train: forward + backward (BPTT), parameter gradients zeroed first, the input
  gradient included (torch ``x.requires_grad_(True)``);
- step: one streaming step at B=1 carrying h (numgru ``GRUStream.step``, torch
  ``nn.GRUCell`` under ``no_grad``).

GFLOP/s use forward = 2·T·B·3H·(I+H) and backward ≈ 2 × forward. The GEMM
ceiling of a shape is what NumPy's matmul reaches on the recurrent product
(B, H) @ (H, 3H) with the same threads (BASELINES.md's yardstick); peak memory
is the rise of the process's peak resident set (Linux ``VmHWM``, reset first)
over one training step, after warm-up.
torch and matplotlib are optional: without torch only numgru's columns are
filled; without matplotlib ``--chart`` is skipped with a message.
"""
import argparse
import datetime
import gc
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

SEQ_LEN = 200
BATCHES = (1, 16, 64)
HIDDEN = (64, 256, 1024)
FULL_GRID = tuple((SEQ_LEN, B, H) for H in HIDDEN for B in BATCHES)
QUICK_GRID = ((SEQ_LEN, 1, 64), (SEQ_LEN, 16, 256))
DEFAULT_REPS = 5
QUICK_REPS = 3


def flops_forward(T, B, H, I=None):
    """FLOPs of one forward pass: the input and recurrent products, 2·T·B·3H·(I+H)."""
    I = H if I is None else I
    return 2 * T * B * 3 * H * (I + H)


def flops_train(T, B, H, I=None):
    """Forward + backward, with backward ≈ 2 × forward."""
    return 3 * flops_forward(T, B, H, I)


def _import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _time_per_call(fn, number):
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def _calls_per_sample(fn, min_time):
    """Warm ``fn`` up (the first call compiles) and pick how many calls make one ≥ min_time sample."""
    fn()
    fn()
    once = _time_per_call(fn, 1)
    return max(1, math.ceil(min_time / max(once, 1e-9)))


class _Pair:
    """numgru and torch versions of the same computation, timed alternately."""

    def __init__(self, numgru_fn, torch_fn, min_time):
        self.fns = [numgru_fn] + ([torch_fn] if torch_fn is not None else [])
        self.numbers = [_calls_per_sample(fn, min_time) for fn in self.fns]
        self.times = [[] for _ in self.fns]

    def repetition(self):
        for fn, number, times in zip(self.fns, self.numbers, self.times):
            times.append(_time_per_call(fn, number))

    def summary(self):
        """(median numgru seconds, median torch seconds or None, median per-repetition ratio or None)."""
        t_numgru = statistics.median(self.times[0])
        if len(self.fns) == 1:
            return t_numgru, None, None
        t_torch = statistics.median(self.times[1])
        ratio = statistics.median(a / b for a, b in zip(*self.times))
        return t_numgru, t_torch, ratio


def _sequence_pairs(torch, T, B, H, min_time, seed, dtype="float32"):
    import numgru

    I = H
    gru = numgru.GRU(I, H, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    dout = rng.standard_normal((T, B, H)).astype(dtype)

    def numgru_forward():
        gru.eval()
        with numgru.no_grad():
            return gru(x)

    def numgru_train():
        gru.train()
        gru.zero_grad()
        gru(x)
        gru.backward(dout)

    torch_forward = torch_train = None
    max_abs_diff = None
    if torch is not None:
        tgru = torch.nn.GRU(I, H, dtype=getattr(torch, dtype))
        tgru.load_state_dict({k: torch.from_numpy(v) for k, v in gru.state_dict().items()})
        tx = torch.from_numpy(x).requires_grad_(True)
        tdout = torch.from_numpy(dout)

        def torch_forward():
            with torch.inference_mode():
                return tgru(tx)

        def torch_train():
            tgru.zero_grad(set_to_none=True)
            tx.grad = None
            out, _ = tgru(tx)
            out.backward(tdout)

        # Same weights, same inputs: the two engines compute the same numbers.
        max_abs_diff = float(np.max(np.abs(numgru_forward()[0] - torch_forward()[0].numpy())))
    return (_Pair(numgru_forward, torch_forward, min_time), _Pair(numgru_train, torch_train, min_time),
            max_abs_diff)


def _step_pair(torch, H, min_time, seed, dtype="float32"):
    import numgru

    I, B = H, 1
    cell = numgru.GRUCell(I, H, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, I)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    state = {}
    stream = numgru.GRUStream(cell, batch_size=B, h0=h0[None])

    def numgru_step():
        stream.step(x)

    torch_step = None
    if torch is not None:
        tcell = torch.nn.GRUCell(I, H, dtype=getattr(torch, dtype))
        tcell.load_state_dict({k: torch.from_numpy(v) for k, v in cell.state_dict().items()})
        tx = torch.from_numpy(x)
        state["torch"] = torch.from_numpy(h0)

        def torch_step():
            with torch.no_grad():
                state["torch"] = tcell(tx, state["torch"])

    return _Pair(numgru_step, torch_step, min_time)


def _gflops(flops, seconds):
    return None if seconds is None else flops / seconds / 1e9


def _gemm_ceiling(B, H, dtype, min_time, seed):
    """GFLOP/s of NumPy's matmul on the recurrent product's shape, (B, H) @ (H, 3H)."""
    rng = np.random.default_rng(seed)
    h, w = rng.standard_normal((B, H)).astype(dtype), rng.standard_normal((H, 3 * H)).astype(dtype)
    out = np.empty((B, 3 * H), dtype)

    def product():
        np.matmul(h, w, out=out)

    number = _calls_per_sample(product, min_time)
    seconds = min(_time_per_call(product, number) for _ in range(5))
    return _gflops(2 * B * H * 3 * H, seconds)


def _read_status_kb(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def _peak_memory_mb(fn):
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


def run_bench(grid=FULL_GRID, reps=DEFAULT_REPS, threads=2, chart=None, progress=True, step=True,
              min_time=0.05, seed=0, dtype="float32"):
    """Time numgru against torch on every (T, B, H) of ``grid``; return one dict per row.

    Rows with ``kind == "sequence"`` (one per shape) hold forward and train
    times in ms, the median per-repetition ratios numgru/torch and GFLOP/s;
    rows with ``kind == "step"`` (one per distinct H, when ``step``) hold the
    streaming step at B=1 in µs. Sequence rows also hold the GEMM ceiling of
    their shape and the peak memory of one training step of each engine. torch
    columns are None when torch is not installed. ``min_time``: seconds of calls per timed sample (short calls are
    repeated to reach it). ``chart``: a PNG path (needs matplotlib). Ctrl-C stops
    early and returns the rows finished so far.
    """
    import numba
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    grid = [tuple(int(v) for v in shape) for shape in grid]
    if not grid:
        raise ValueError("grid must hold at least one (T, B, H) shape")
    if any(len(shape) != 3 or min(shape) < 1 for shape in grid):
        raise ValueError(f"grid must hold (T, B, H) triples of positive integers, got {grid}")
    reps = int(reps)
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    torch = _import_torch()
    threads = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
    hiddens = sorted({H for _, _, H in grid}) if step else []
    bar = tqdm(total=(len(grid) + len(hiddens)) * reps, desc="numgru bench", unit="rep",
               disable=not progress, file=sys.stderr)
    previous = numba.get_num_threads(), (torch.get_num_threads() if torch is not None else None)
    rows = []
    try:
        numba.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        with threadpool_limits(limits=threads, user_api="blas"):
            for T, B, H in grid:
                bar.set_postfix_str(f"T={T} B={B} H={H}")
                forward, train, diff = _sequence_pairs(torch, T, B, H, min_time, seed, dtype)
                for _ in range(reps):
                    forward.repetition()
                    train.repetition()
                    bar.update()
                (fn, ft, fr), (tn, tt, tr) = forward.summary(), train.summary()
                ff, tf = flops_forward(T, B, H), flops_train(T, B, H)
                ceiling = _gemm_ceiling(B, H, dtype, min_time, seed)
                peaks = [_peak_memory_mb(f) for f in train.fns] + [None]
                rows.append(dict(
                    kind="sequence", T=T, B=B, H=H, I=H, threads=threads, dtype=dtype,
                    gemm_gflops=ceiling, forward_ceiling_pct=100 * _gflops(ff, fn) / ceiling,
                    train_peak_mb_numgru=peaks[0], train_peak_mb_torch=peaks[1],
                    forward_ms_numgru=fn * 1e3, forward_ms_torch=None if ft is None else ft * 1e3,
                    forward_ratio=fr,
                    forward_gflops_numgru=_gflops(ff, fn), forward_gflops_torch=_gflops(ff, ft),
                    train_ms_numgru=tn * 1e3, train_ms_torch=None if tt is None else tt * 1e3,
                    train_ratio=tr,
                    train_gflops_numgru=_gflops(tf, tn), train_gflops_torch=_gflops(tf, tt),
                    forward_max_abs_diff=diff))
                del forward, train
                gc.collect()
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
        numba.set_num_threads(previous[0])
        if torch is not None:
            torch.set_num_threads(previous[1])
    if chart is not None:
        write_chart(rows, chart)
    return rows


def _fmt(value, spec):
    return "–" if value is None else format(value, spec)


def _ms(value):
    return "–" if value is None else format(value, ".3g" if value < 10 else ".0f")


def format_table(rows):
    """Markdown tables (ready for the README) of ``run_bench``'s rows."""
    lines = []
    seq = [r for r in rows if r["kind"] == "sequence"]
    steps = [r for r in rows if r["kind"] == "step"]
    if seq:
        lines += [
            "numgru/torch: median per-repetition time ratio (< 1: numgru is faster); GFLOP/s numgru / torch",
            "",
            "| T | B | H | forward ms numgru | forward ms torch | forward numgru/torch | forward GFLOP/s "
            "| train ms numgru | train ms torch | train numgru/torch | train GFLOP/s "
            "| GEMM ceiling GFLOP/s | forward % of ceiling | train peak MB numgru / torch |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in seq:
            lines.append(
                f"| {r['T']} | {r['B']} | {r['H']} | {_ms(r['forward_ms_numgru'])} | {_ms(r['forward_ms_torch'])} "
                f"| {_fmt(r['forward_ratio'], '.2f')} "
                f"| {_fmt(r['forward_gflops_numgru'], '.1f')} / {_fmt(r['forward_gflops_torch'], '.1f')} "
                f"| {_ms(r['train_ms_numgru'])} | {_ms(r['train_ms_torch'])} | {_fmt(r['train_ratio'], '.2f')} "
                f"| {_fmt(r['train_gflops_numgru'], '.1f')} / {_fmt(r['train_gflops_torch'], '.1f')} "
                f"| {_fmt(r['gemm_gflops'], '.0f')} | {_fmt(r['forward_ceiling_pct'], '.0f')} "
                f"| {_fmt(r['train_peak_mb_numgru'], '.0f')} / {_fmt(r['train_peak_mb_torch'], '.0f')} |")
    if steps:
        if lines:
            lines.append("")
        lines += [
            "Streaming, one step at B=1 (numgru: GRUStream.step; torch: nn.GRUCell under no_grad)",
            "",
            "| H | step µs numgru | step µs torch | step numgru/torch |",
            "|---:|---:|---:|---:|",
        ]
        for r in steps:
            lines.append(f"| {r['H']} | {_fmt(r['step_us_numgru'], '.1f')} | {_fmt(r['step_us_torch'], '.1f')} "
                         f"| {_fmt(r['step_ratio'], '.2f')} |")
    return "\n".join(lines)


def machine_info(threads=2):
    """One line: date, CPU, cores, threads and library versions, for the table's caption."""
    import numba

    import numgru
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    torch = _import_torch()
    versions = f"numgru {numgru.__version__}, numba {numba.__version__}, NumPy {np.__version__}"
    versions += f", torch {torch.__version__}" if torch is not None else ", torch not installed"
    return (f"{datetime.date.today().isoformat()}, {cpu} ({os.cpu_count()} cores), {threads} threads, "
            f"Python {platform.python_version()}, {versions}")


def write_chart(rows, path):
    """Bar chart of the numgru/torch ratios as a PNG. Returns False (and says so) without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"chart skipped: matplotlib is not installed (pip install matplotlib), {path} not written")
        return False
    seq = [r for r in rows if r["kind"] == "sequence" and r["forward_ratio"] is not None]
    steps = [r for r in rows if r["kind"] == "step" and r["step_ratio"] is not None]
    if not seq and not steps:
        print(f"chart skipped: no numgru/torch ratios to plot (is torch installed?), {path} not written")
        return False
    seq_lens = sorted({r["T"] for r in seq})
    labels = [(f"T={r['T']}\n" if len(seq_lens) > 1 else "") + f"B={r['B']}\nH={r['H']}" for r in seq]
    labels += [f"step\nH={r['H']}" for r in steps]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(labels) + 2), 4.5))
    width = 0.4
    ax.bar(x[:len(seq)] - width / 2, [r["forward_ratio"] for r in seq], width, label="forward")
    ax.bar(x[:len(seq)] + width / 2, [r["train_ratio"] for r in seq], width, label="forward + backward")
    ax.bar(x[len(seq):], [r["step_ratio"] for r in steps], width, label="streaming step")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(x, labels)
    ax.set_ylabel("time numgru / time torch (< 1: numgru faster)")
    title_T = f"T={seq_lens[0]}, " if len(seq_lens) == 1 else ""
    ax.set_title(f"numgru vs PyTorch, float32, {title_T}{rows[0]['threads']} threads")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"chart written to {path}")
    return True


def parse_shape(text, T=None):
    """'BxH' or 'TxBxH' -> (T, B, H); T is ``T`` (None: filled in later) for 'BxH'."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 2:
        parts = [T] + parts
    if len(parts) != 3 or min(p for p in parts if p is not None) < 1:
        raise argparse.ArgumentTypeError(f"a shape is BxH or TxBxH with positive integers, got {text!r}")
    return tuple(parts)


def add_arguments(parser):
    """The options of ``python -m numgru bench`` (and ``python -m numgru.bench``)."""
    parser.add_argument("--quick", action="store_true",
                        help=f"two shapes, {QUICK_REPS} repetitions (default: the full grid "
                             f"B in {BATCHES} x H in {HIDDEN}, T={SEQ_LEN})")
    parser.add_argument("--shapes", nargs="+", metavar="BxH", default=None, type=parse_shape,
                        help="shapes to run, BxH or TxBxH (e.g. 1x64 16x256 50x64x1024)")
    parser.add_argument("--seq-len", "-T", type=int, default=SEQ_LEN, dest="seq_len",
                        help=f"T for BxH shapes (default {SEQ_LEN})")
    parser.add_argument("--reps", type=int, default=None,
                        help=f"repetitions per shape (default {DEFAULT_REPS}, {QUICK_REPS} with --quick)")
    parser.add_argument("--threads", type=int, default=2, help="threads for both engines (default 2)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="precision of both engines (default float32)")
    parser.add_argument("--chart", metavar="PNG", default=None, help="also write a bar chart of the ratios")
    parser.add_argument("--no-step", action="store_true", help="skip the streaming-step rows")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(args):
    """Run the benchmark described by parsed ``args``; print the table. Returns an exit status."""
    if getattr(args, "shapes", None):
        grid = [(args.seq_len if T is None else T, B, H) for T, B, H in args.shapes]
    elif getattr(args, "quick", False):
        grid = [(args.seq_len, B, H) for _, B, H in QUICK_GRID]
    else:
        grid = [(args.seq_len, B, H) for _, B, H in FULL_GRID]
    reps = args.reps if args.reps is not None else (QUICK_REPS if args.quick else DEFAULT_REPS)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5:
        print(f"warning: load average {load:.1f} on {os.cpu_count()} cores before starting: other "
              "processes are running, timings (numgru's multi-threaded ones most) will be noisy", file=sys.stderr)
    rows = run_bench(grid=grid, reps=reps, threads=args.threads, chart=args.chart,
                     progress=not args.no_progress, step=not args.no_step, dtype=args.dtype)
    if not rows:
        return 130
    print(machine_info(rows[0]["threads"]) + f", {args.dtype}")
    print()
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    _parser = add_arguments(argparse.ArgumentParser(
        prog="python -m numgru.bench", description="numgru vs PyTorch, side by side, in one process"))
    sys.exit(main(_parser.parse_args()))
