"""numgru and PyTorch side by side, in one process, on the same shapes and weights: tables and charts.

    python -m numgru.bench [--quick] [--shapes 1x64 16x256 ...] [--reps N] [--chart out.png]
    python -m numgru.bench --ragged          # only the ragged-batch table
    python -m numgru.bench --first-call      # only the cold/warm start table (fresh processes)
    python -m numgru.bench --text            # only the language-model table (training and generation)
    python -m numgru.bench --race 600 --chart race.png   # numgru and torch train tiny Shakespeare for 600 s each
    python -m numgru.bench --speech          # only the speech table: CTC against torch, features against librosa
    python -m numgru.bench --translation     # only the translation table: Seq2Seq training against torch, beam search
    python -m numgru.bench --onnx            # only numgru's forward against onnxruntime, and the bandwidth floor

(also ``python -m numgru bench ...``). What is measured, and how, is defined
once in ``numgru.benchmarks`` (shared with the asv suite); this module only
runs it, formats the tables (Markdown, ready for the README) and draws the chart.

Each repetition times numgru, then torch, on the same call; the ratio
numgru/torch is taken per repetition and the median over repetitions is
reported (< 1: numgru is faster), so drift in a shared machine's load hits both
engines alike. Both engines get the same number of threads (Numba's and torch's
intra-op pool; BLAS is capped too). Everything is compiled and warmed up before timing.

Timed calls, float32 (``--dtype float64`` for double), input size I = H:
- forward: inference over a (T, B, I) sequence (numgru ``no_grad``, torch ``inference_mode``);
- train: forward + backward (BPTT), parameter gradients zeroed first, the input
  gradient included (torch ``x.requires_grad_(True)``);
- step: one streaming step at B=1 carrying h (numgru ``GRUStream.step``, torch
  ``nn.GRUCell`` under ``no_grad``);
- ragged: T=200, B=64, H=256, the four length cases of
  ``numgru.benchmarks.RAGGED_CASES``: numgru ``lengths=`` against torch's
  ``pack_padded_sequence(..., enforce_sorted=False)`` / ``pad_packed_sequence``,
  forward and train. Runs after the grid in the full bench and in ``--quick``
  (it is one shape); not with ``--shapes`` (unless ``--ragged``), nor with ``--no-ragged``;
- text (``--text``): the character language model of ``numgru.benchmarks.LM_SHAPE``
  (Embedding + 2-layer GRU H=512 + Linear over 65 symbols): one training window of
  B=64 x bptt=100 characters, and generating 200 characters at B=1 (numgru's compiled
  ``generate`` against torch stepping its GRU); see ``numgru.benchmarks.run_text_bench``;
- speech (``--speech``): ``numgru.losses.ctc`` (loss and gradient) against
  torch's ``ctc_loss`` forward + backward at ``numgru.benchmarks.CTC_SHAPE``;
  log-mel and MFCC features of FSDD audio against librosa (seconds of audio a
  second); and a unidirectional ``CTCModel`` recognising audio through
  ``SpeechStream`` 100 ms at a time at B=1 (time per 10 ms frame);
- translation (``--translation``): a training step of ``numgru.Seq2Seq`` with the
  ``translate`` task's recipe on 32 of its real pairs, against the same model in torch
  (``numgru.benchmarks.TorchSeq2Seq``), alternating in one process and each alone in fresh
  processes (an engine's idle OpenMP threads slow the other one in a shared process);
  and beam search at width 5 over the 260 test sentences (sentences a second);
- onnx (``--onnx``): numgru's forward against onnxruntime's CPU GRU running numgru's own
  exported graph (``numgru.export_onnx``, the same weights), on the forward grid: alternating in
  one process with onnxruntime's thread spinning off, and each engine alone in fresh processes
  with its defaults; and the floor of the B=1 forward, the bytes it must read (W_hh at every
  step, W_ih once) over the read bandwidth NumPy measures on an array of W_hh's size (and from
  memory), one and two threads; see ``numgru.benchmarks.run_onnx_bench``;
- first call (``--first-call``): import + first forward + first backward of
  each entry point in a fresh process, with an empty Numba cache (cold) and
  then the filled one (warm); see ``numgru.benchmarks.measure_first_call``.

GFLOP/s use forward = 2·T·B·3H·(I+H) and backward ≈ 2 × forward. The GEMM
ceiling (``numgru.benchmarks.gemm_ceiling``) is the best NumPy's matmul does on
the forward's own products (input projection + T recurrent products), over
operand orientations and BLAS thread counts up to ``--threads``; "GEMM
GFLOP/s" is its recurrent product (B, H) @ (H, 3H) alone. Peak memory is the
rise of the process's peak resident set (Linux ``VmHWM``, reset first) over
one training step, after warm-up. torch and matplotlib are optional: without
torch only numgru's columns are filled; without matplotlib ``--chart`` is
skipped with a message.
"""
import argparse
import datetime
import importlib.metadata
import os
import platform
import sys

import numpy as np

from . import benchmarks as harness


def _fmt(value, spec):
    return "–" if value is None else format(value, spec)


def _ms(value):
    return "–" if value is None else format(value, ".3g" if value < 10 else ".0f")


def _s(value):
    return "–" if value is None else format(value, ".2f")


def format_table(rows):
    """Markdown tables (ready for the README) of the rows of ``run_bench``, ``run_ragged``, ``measure_first_call``."""
    lines = []
    seq = [r for r in rows if r.get("kind") == "sequence"]
    steps = [r for r in rows if r.get("kind") == "step"]
    ragged = [r for r in rows if r.get("kind") == "ragged"]
    first = [r for r in rows if "warm_over_cold" in r]
    text = [r for r in rows if r.get("kind") in ("lm-train", "lm-generate")]
    speech = [r for r in rows if r.get("kind") in ("ctc", "features", "speech-stream")]
    translation = [r for r in rows if r.get("kind") in ("seq2seq-train", "seq2seq-beam")]
    onnx = [r for r in rows if r.get("kind") in ("onnx-forward", "read-bandwidth", "forward-floor")]

    def gap():
        if lines:
            lines.append("")

    if seq:
        lines += [
            "numgru/torch: median per-repetition time ratio (< 1: numgru is faster); GFLOP/s numgru / torch",
            "",
            "| T | B | H | forward ms numgru | forward ms torch | forward numgru/torch | forward GFLOP/s "
            "| train ms numgru | train ms torch | train numgru/torch | train GFLOP/s "
            "| GEMM GFLOP/s | forward % of ceiling | train peak MB numgru / torch |",
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
        lines += ["", "GEMM: NumPy's best (B, H) @ (H, 3H) over layouts and BLAS threads; ceiling: the same for "
                      "the whole forward (input projection + T recurrent products)"]
    if steps:
        gap()
        lines += [
            "Streaming, one step at B=1 (numgru: GRUStream.step; torch: nn.GRUCell under no_grad)",
            "",
            "| H | step µs numgru | step µs torch | step numgru/torch |",
            "|---:|---:|---:|---:|",
        ]
        for r in steps:
            lines.append(f"| {r['H']} | {_fmt(r['step_us_numgru'], '.1f')} | {_fmt(r['step_us_torch'], '.1f')} "
                         f"| {_fmt(r['step_ratio'], '.2f')} |")
    if ragged:
        gap()
        r0 = ragged[0]
        lines += [
            f"Ragged batches, T={r0['T']}, B={r0['B']}, H={r0['H']} (numgru: lengths=; torch: pack_padded_sequence "
            "+ pad_packed_sequence); real: the share of T·B that is real steps",
            "",
            "| lengths | real | forward ms numgru | forward ms torch | forward numgru/torch "
            "| train ms numgru | train ms torch | train numgru/torch |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in ragged:
            lines.append(
                f"| {r['case']} | {r['share']:.3f} | {_ms(r['forward_ms_numgru'])} | {_ms(r['forward_ms_torch'])} "
                f"| {_fmt(r['forward_ratio'], '.2f')} | {_ms(r['train_ms_numgru'])} | {_ms(r['train_ms_torch'])} "
                f"| {_fmt(r['train_ratio'], '.2f')} |")
    if first:
        gap()
        lines += [
            "First call in a fresh process (seconds): cold = empty Numba cache (NUMBA_CACHE_DIR), warm = the "
            "cache the cold run filled; first call = import + first forward (+ first backward), timed inside; "
            "process = the whole process, timed outside",
            "",
            "| entry point | import cold / warm | first call cold | first call warm | warm/cold "
            "| process cold / warm | cache files |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in first:
            c, w = r["cold"], r["warm"]
            lines.append(
                f"| {r['entry']} | {_s(c['import'])} / {_s(w['import'])} | {_s(c['total'])} | {_s(w['total'])} "
                f"| {r['warm_over_cold']:.2f} | {_s(c['wall'])} / {_s(w['wall'])} | {r['cache_files']} |")
    if text:
        gap()
        r0 = text[0]
        lines += [
            f"Character language model: Embedding({r0['vocab']}, {r0['embedding_dim']}) + GRU {r0['layers']}x"
            f"{r0['hidden']} + Linear over {r0['vocab']} symbols, float32; train: one TBPTT window of "
            f"B={r0['batch']} x bptt={r0['bptt']} (forward, cross-entropy, backward, clip, Adam); generate: B=1, "
            "one character a step",
            "",
            "| what | characters a call | chars/s numgru | chars/s torch | numgru/torch |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in text:
            what = ("train: time ratio (< 1: numgru faster)" if r["kind"] == "lm-train"
                    else "generate: rate ratio (> 1: numgru faster)")
            lines.append(f"| {what} | {r['chars']} | {_fmt(r['chars_per_s_numgru'], '.0f')} "
                         f"| {_fmt(r['chars_per_s_torch'], '.0f')} | {_fmt(r['ratio'], '.2f')} |")
    if speech:
        gap()
        lines += _speech_lines(speech)
    if translation:
        gap()
        lines += _translation_lines(translation)
    if onnx:
        gap()
        lines += _onnx_lines(onnx)
    return "\n".join(lines)


def _onnx_lines(rows):
    """Markdown tables of ``--onnx``: the forward grid against onnxruntime, read bandwidth, the B=1 floor."""
    forward = [r for r in rows if r["kind"] == "onnx-forward"]
    bandwidth = [r for r in rows if r["kind"] == "read-bandwidth"]
    floors = [r for r in rows if r["kind"] == "forward-floor"]
    lines = []
    if forward:
        lines += ["numgru (no_grad) against onnxruntime on numgru's exported graph, float32, I = H; ratio: time "
                  "numgru/onnxruntime (< 1: numgru faster); alternating: one process, onnxruntime's spinning off, "
                  "median of per-repetition ratios; alone: each engine in fresh processes with its defaults",
                  "", "| T | B | H | ms numgru | ms onnxruntime | numgru/onnxruntime alternating "
                  "| ms numgru alone | ms onnxruntime alone | numgru/onnxruntime alone |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in forward:
            lines.append(f"| {r['T']} | {r['B']} | {r['H']} | {_ms(r['ms_numgru'])} | {_ms(r['ms_onnxruntime'])} "
                         f"| {_fmt(r['ratio'], '.2f')} | {_ms(r['alone_ms_numgru'])} "
                         f"| {_ms(r['alone_ms_onnxruntime'])} | {_fmt(r['alone_ratio'], '.2f')} |")
    if bandwidth:
        counts = list(bandwidth[0]["gbs"])
        lines += ["", "Read bandwidth, GB/s: a float32 array read again and again, one part per thread "
                      "(np.dot(part, part), BLAS at one thread each)", "",
                  "| array | MB | " + " | ".join(f"{t} thread{'s' * (t > 1)}" for t in counts) + " |",
                  "|---|---:|" + "---:|" * len(counts)]
        for r in bandwidth:
            lines.append(f"| {r['what']} | {r['nbytes'] / 1e6:.3g} | "
                         + " | ".join(f"{r['gbs'][t]:.1f}" for t in counts) + " |")
    if floors:
        lines += ["", "Floor of the B=1 forward: the bytes it must read (W_hh at every step, W_ih once) at the best "
                      "read rate on W_hh's size; % of floor: an engine's time / the floor", "",
                  "| T | H | MB read | GB/s | floor ms | floor ms at memory's rate "
                  "| numgru ms / % of floor, alternating | onnxruntime ms / % alternating "
                  "| numgru ms / % alone | onnxruntime ms / % alone |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in floors:
            cells = [f"{_ms(r[key])} / {_fmt(r[key.replace('ms_', 'pct_')], '.0f')}"
                     for key in ("ms_numgru", "ms_onnxruntime", "alone_ms_numgru", "alone_ms_onnxruntime")]
            lines.append(f"| {r['T']} | {r['H']} | {r['nbytes'] / 1e6:.3g} | {r['floor_gbs']:.0f} "
                         f"| {_ms(r['floor_ms'])} | {_ms(r['memory_floor_ms'])} | " + " | ".join(cells) + " |")
    return lines


def _translation_lines(rows):
    """Markdown rows of the translation benchmarks (``--translation``)."""
    r0 = rows[0]
    lines = [f"Seq2Seq (translate's recipe): Embedding({r0['embedding_dim']}) + BiGRU({r0['hidden']}) encoder, "
             f"GRU({r0['hidden']}) decoder x{r0['layers']}, general attention, dropout {r0['dropout']}, "
             f"batch {r0['batch']} of the task's pairs", "",
             "| translation | numgru | torch | numgru/torch |", "|---|---:|---:|---:|"]
    for r in rows:
        if r["kind"] == "seq2seq-train":
            lines.append(f"| training steps per s, engines alternating in one process (forward, cross-entropy, "
                         f"backward, clip, Adam; time ratio, < 1: numgru faster) | {r['steps_per_s_numgru']:.1f} "
                         f"| {_fmt(r['steps_per_s_torch'], '.1f')} | {_fmt(r['ratio'], '.2f')} |")
            if r["alone_steps_per_s_numgru"] is not None:
                lines.append(f"| training steps per s, each engine alone in a fresh process | "
                             f"{r['alone_steps_per_s_numgru']:.1f} | {_fmt(r['alone_steps_per_s_torch'], '.1f')} "
                             f"| {_fmt(r['alone_ratio'], '.2f')} |")
        else:
            lines.append(f"| beam search at beam {r['beam']}: sentences per s ({r['sentences']} test sentences) "
                         f"| {r['sentences_per_s']:.0f} | – | – |")
    return lines


def _speech_lines(rows):
    """Markdown rows of the speech benchmarks (``--speech``)."""
    lines = ["| speech | numgru | reference | numgru/reference |", "|---|---:|---:|---:|"]
    for r in rows:
        if r["kind"] == "ctc":
            lines.append(f"| CTC loss + gradient, T={r['T']} B={r['B']} C={r['C']} S={r['S']}, {r['dtype']}: ms "
                         f"(torch ctc_loss forward + backward) | {r['ms_numgru']:.2f} | {_fmt(r['ms_torch'], '.2f')} "
                         f"| {_fmt(r['ratio'], '.2f')} |")
        elif r["kind"] == "features":
            for feature, what in (("logmel", "log-mel"), ("mfcc", f"log-mel + {r['n_mfcc']} MFCC")):
                lines.append(f"| {what} features, {r['audio_seconds']:.0f} s of {r['source']} audio: audio s per s "
                             f"(librosa) | {r[feature + '_audio_s_per_s_numgru']:.0f} "
                             f"| {_fmt(r[feature + '_audio_s_per_s_librosa'], '.0f')} "
                             f"| {_fmt(r[feature + '_ratio'], '.2f')} (time) |")
        else:
            lines.append(f"| streaming recognition, B=1, {r['chunk_ms']:.0f} ms chunks, GRU {r['layers']}x"
                         f"{r['hidden']}: us per 10 ms frame (real time) | {r['us_per_frame']:.0f} | 10000 "
                         f"| {r['us_per_frame'] / 1e4:.3f} |")
    return lines


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
    torch = harness.import_torch()
    versions = f"numgru {numgru.__version__}, numba {numba.__version__}, NumPy {np.__version__}"
    versions += f", torch {torch.__version__}" if torch is not None else ", torch not installed"
    if harness.unavailable("onnxruntime-cpu") is None:
        versions += f", onnxruntime {importlib.metadata.version('onnxruntime')}"
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
    seq = [r for r in rows if r.get("kind") in ("sequence", "ragged") and r["forward_ratio"] is not None]
    steps = [r for r in rows if r.get("kind") == "step" and r["step_ratio"] is not None]
    if not seq and not steps:
        print(f"chart skipped: no numgru/torch ratios to plot (is torch installed?), {path} not written")
        return False
    seq_lens = sorted({r["T"] for r in seq})
    labels = [(f"ragged\n{r['case']}\n" if r["kind"] == "ragged" else "")
              + (f"T={r['T']}\n" if len(seq_lens) > 1 else "") + f"B={r['B']}\nH={r['H']}" for r in seq]
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
    ax.set_title(f"numgru vs PyTorch, {rows[0].get('dtype', 'float32')}, {title_T}{rows[0]['threads']} threads")
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
    T, B, H = harness.RAGGED_SHAPE
    parser.add_argument("--quick", action="store_true",
                        help=f"two shapes, {harness.QUICK_REPS} repetitions (default: the full grid "
                             f"B in {harness.BATCHES} x H in {harness.HIDDEN}, T={harness.SEQ_LEN})")
    parser.add_argument("--shapes", nargs="+", metavar="BxH", default=None, type=parse_shape,
                        help="shapes to run, BxH or TxBxH (e.g. 1x64 16x256 50x64x1024)")
    parser.add_argument("--seq-len", "-T", type=int, default=harness.SEQ_LEN, dest="seq_len",
                        help=f"T for BxH shapes (default {harness.SEQ_LEN})")
    parser.add_argument("--reps", type=int, default=None,
                        help=f"repetitions per shape (default {harness.DEFAULT_REPS}, {harness.QUICK_REPS} with "
                             "--quick; 1 process pair with --first-call)")
    parser.add_argument("--threads", type=int, default=harness.DEFAULT_THREADS,
                        help=f"threads for both engines (default {harness.DEFAULT_THREADS})")
    parser.add_argument("--dtype", choices=harness.DTYPES, default="float32",
                        help="precision of both engines (default float32)")
    parser.add_argument("--chart", metavar="PNG", default=None, help="also write a bar chart of the ratios")
    parser.add_argument("--no-step", action="store_true", help="skip the streaming-step rows")
    parser.add_argument("--ragged", action="store_true",
                        help=f"only the ragged-batch table: T={T}, B={B}, H={H}, lengths "
                             f"{', '.join(harness.RAGGED_CASES)} (it also runs after the full grid and --quick)")
    parser.add_argument("--no-ragged", action="store_true", help="skip the ragged-batch table")
    parser.add_argument("--first-call", action="store_true", dest="first_call",
                        help="only the cold/warm start of each entry point, in fresh processes "
                             f"({', '.join(harness.FIRST_CALL_ENTRIES)})")
    parser.add_argument("--text", action="store_true",
                        help="only the language-model table: training characters/s and generation characters/s "
                             "against the same model in torch (see numgru.benchmarks.LM_SHAPE)")
    parser.add_argument("--race", type=float, metavar="SECONDS", default=None,
                        help="only the Shakespeare race: numgru and torch train the task's language model from the "
                             "same weights for SECONDS of training each, one after the other (validation nats/char "
                             "against seconds and epochs; --chart draws both curves)")
    parser.add_argument("--speech", action="store_true",
                        help="only the speech table: CTC loss + gradient against torch's ctc_loss, features "
                             "against librosa, streaming recognition latency (see numgru.benchmarks.CTC_SHAPE)")
    parser.add_argument("--translation", action="store_true",
                        help="only the translation table: Seq2Seq training steps against the same model in torch, "
                             "beam-search sentences per second (see numgru.benchmarks.SEQ2SEQ_SHAPE)")
    parser.add_argument("--onnx", action="store_true",
                        help="only numgru's forward against onnxruntime on its exported graph (the forward grid, "
                             "alternating in one process and each alone in fresh processes), read bandwidth and "
                             "the B=1 forward's bandwidth floor (see numgru.benchmarks.run_onnx_bench)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _race(seconds, threads, progress, chart):
    """The Shakespeare race (``numgru.benchmarks.race_language_models``) with the task's recipe: table and chart."""
    import json

    from . import tasks
    if seconds <= 0:
        print(f"--race takes a positive number of seconds, got {seconds}", file=sys.stderr)
        return 2
    task = tasks.shakespeare()
    recipe = task.recipe
    curves = harness.race_language_models(task.train_text, task.val_text, recipe, seconds,
                                          eval_every=recipe["eval_every"], threads=threads, progress=progress)
    print(machine_info(threads))
    print(f"\ntiny Shakespeare, {len(task.train_text)} training / {len(task.val_text)} validation characters; "
          f"Embedding({recipe['embedding_dim']}) + GRU {recipe['layers']}x{recipe['hidden']} + Linear, batch "
          f"{recipe['batch']} x bptt {recipe['bptt']}, Adam lr {recipe['lr']:g}, clip {recipe['clip']:g}, "
          f"{seconds:g} s of training each, the same initial weights\n")
    print(format_race(curves))
    if chart is not None:
        write_race_chart(curves, chart, f"tiny Shakespeare, GRU {recipe['layers']}x{recipe['hidden']}, "
                                        f"{threads} threads")
        with open(os.path.splitext(chart)[0] + ".json", "w") as f:
            json.dump(curves, f, indent=1, default=str)
    return 0


def format_race(curves):
    """Markdown: each engine's best validation loss, windows and epochs trained, and seconds to reach 1.8 and 1.6."""
    lines = ["| engine | windows | epochs | training s | last val nats/char | best val nats/char "
             "| s to 1.8 | s to 1.6 |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, c in curves.items():
        lines.append(f"| {name} | {c['windows'][-1]} | {c['epochs'][-1]:.2f} | {c['seconds'][-1]:.0f} "
                     f"| {c['val_nats'][-1]:.4f} | {min(c['val_nats']):.4f} | {_fmt(c['reach'][1.8], '.0f')} "
                     f"| {_fmt(c['reach'][1.6], '.0f')} |")
    return "\n".join(lines)


def write_race_chart(curves, path, title):
    """Validation nats/char against training seconds and against epochs, one line per engine, as a PNG."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"chart skipped: matplotlib is not installed (pip install matplotlib), {path} not written")
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for name, c in curves.items():
        axes[0].plot(c["seconds"], c["val_nats"], marker=".", label=name)
        axes[1].plot(c["epochs"], c["val_nats"], marker=".", label=name)
    for ax, xlabel in zip(axes, ("training seconds (evaluation excluded)", "epochs")):
        for level in (1.8, 1.6):
            ax.axhline(level, color="grey", linewidth=0.6, linestyle=":")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation nats per character")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"chart written to {path}")
    return True


def _warn_if_loaded():
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5:
        print(f"warning: load average {load:.1f} on {os.cpu_count()} cores before starting: other "
              "processes are running, timings (numgru's multi-threaded ones most) will be noisy", file=sys.stderr)


def _print_rows(rows, threads):
    """The machine line and the table of ``rows``: exit status 0, or 130 when there are none (interrupted)."""
    if not rows:
        return 130
    print(machine_info(threads))
    print()
    print(format_table(rows))
    return 0


def _grid(args, shapes, quick):
    """The (T, B, H) shapes to run: ``--shapes`` (T from ``--seq-len`` where not given), else the quick or full grid."""
    if shapes:
        return [(args.seq_len if T is None else T, B, H) for T, B, H in shapes]
    return [(args.seq_len, B, H) for _, B, H in (harness.QUICK_GRID if quick else harness.FULL_GRID)]


def main(args):
    """Run the benchmark described by parsed ``args``; print the table. Returns an exit status."""
    quick = getattr(args, "quick", False)
    shapes = getattr(args, "shapes", None)
    progress = not getattr(args, "no_progress", False)
    dtype = getattr(args, "dtype", "float32")
    threads = getattr(args, "threads", harness.DEFAULT_THREADS)
    _warn_if_loaded()
    if getattr(args, "first_call", False):
        rows = harness.measure_first_call(threads=threads, reps=args.reps or 1, progress=progress)
        print(machine_info(threads))
        print()
        print(format_table(rows))
        return 0
    reps = args.reps if args.reps is not None else (harness.QUICK_REPS if quick else harness.DEFAULT_REPS)
    if getattr(args, "race", None) is not None:
        return _race(args.race, threads, progress, args.chart)
    if getattr(args, "speech", False):
        return _print_rows([row for row in (
            harness.run_ctc_bench(reps=reps, threads=threads, dtype=dtype, progress=progress),
            harness.run_feature_bench(reps=reps, threads=threads, progress=progress),
            harness.run_speech_stream_bench(reps=reps, progress=progress)) if row is not None], threads)
    if getattr(args, "translation", False):
        return _print_rows(harness.run_translation_bench(reps=reps, threads=threads, progress=progress), threads)
    if getattr(args, "onnx", False):
        grid = _grid(args, shapes, quick)
        return _print_rows(harness.run_onnx_bench(grid=grid, reps=reps, threads=threads, progress=progress), threads)
    if getattr(args, "text", False):
        return _print_rows(harness.run_text_bench(reps=reps, threads=threads, progress=progress), threads)
    ragged_only = getattr(args, "ragged", False)
    rows = []
    if not ragged_only:
        grid = _grid(args, shapes, quick)
        rows = harness.run_bench(grid=grid, reps=reps, threads=threads, progress=progress,
                                 step=not args.no_step, dtype=dtype)
        if not rows:
            return 130
    if ragged_only or not (shapes or getattr(args, "no_ragged", False)):
        rows += harness.run_ragged(reps=reps, threads=threads, progress=progress, dtype=dtype)
    if not rows:
        return 130
    if args.chart is not None:
        write_chart(rows, args.chart)
    print(machine_info(rows[0]["threads"]) + f", {dtype}")
    print()
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    _parser = add_arguments(argparse.ArgumentParser(
        prog="python -m numgru.bench", description="numgru vs PyTorch, side by side, in one process"))
    sys.exit(main(_parser.parse_args()))
