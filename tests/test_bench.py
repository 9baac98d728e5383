"""The benchmark tooling: numgru.bench (side by side in one process) and the asv suite.

Tiny shapes only: these check that the tools work and stay wired to the API,
not how fast anything is.
"""
import argparse
import importlib
import importlib.util
import pathlib
import sys

import numba
import numpy as np
import pytest

from numgru import bench
from numgru import benchmarks as harness

ASV_BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "asv_bench" / "benchmarks"
HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_ONNXRUNTIME = harness.unavailable("onnxruntime-cpu") is None


@pytest.fixture
def restore_threads():
    """The tools pin thread counts process-wide; give the other tests theirs back."""
    from threadpoolctl import threadpool_limits
    before = numba.get_num_threads()
    torch = pytest.importorskip("torch") if HAVE_TORCH else None
    torch_before = torch.get_num_threads() if torch else None
    with threadpool_limits(limits=None):
        yield
    numba.set_num_threads(before)
    if torch:
        torch.set_num_threads(torch_before)


def _fake_rows(torch=True):
    r = 0.5 if torch else None
    t = 2.0 if torch else None
    return [
        dict(kind="sequence", T=5, B=1, H=8, I=8, threads=2, forward_ms_numgru=1.0, forward_ms_torch=t,
             forward_ratio=r, forward_gflops_numgru=1.0, forward_gflops_torch=t, train_ms_numgru=3.0,
             train_ms_torch=t, train_ratio=r, train_gflops_numgru=1.0, train_gflops_torch=t,
             forward_max_abs_diff=0.0 if torch else None, gemm_gflops=4.0, forward_ceiling_pct=25.0,
             train_peak_mb_numgru=1.5, train_peak_mb_torch=t),
        dict(kind="step", T=1, B=1, H=8, I=8, threads=2, step_us_numgru=10.0, step_us_torch=t, step_ratio=r),
    ]


def test_run_bench_tiny_grid(restore_threads):
    threads = numba.get_num_threads()
    rows = harness.run_bench(grid=[(5, 1, 8)], reps=2, threads=2, progress=False, min_time=0.002)
    assert numba.get_num_threads() == threads          # restored afterwards
    seq, step = rows
    assert seq["kind"] == "sequence" and (seq["T"], seq["B"], seq["H"]) == (5, 1, 8)
    assert step["kind"] == "step" and step["H"] == 8
    assert seq["threads"] == min(2, numba.config.NUMBA_NUM_THREADS)
    for key in ("forward_ms_numgru", "train_ms_numgru", "forward_gflops_numgru", "train_gflops_numgru"):
        assert seq[key] > 0
    assert step["step_us_numgru"] > 0
    assert seq["gemm_gflops"] > 0 and seq["forward_ceiling_pct"] > 0
    assert seq["train_peak_mb_numgru"] is None or seq["train_peak_mb_numgru"] >= 0
    assert seq["forward_gflops_numgru"] == pytest.approx(
        harness.flops_forward(5, 1, 8) / (seq["forward_ms_numgru"] / 1e3) / 1e9)
    torch_keys = ("forward_ms_torch", "forward_ratio", "train_ms_torch", "train_ratio", "forward_gflops_torch")
    if HAVE_TORCH:
        assert all(seq[k] > 0 for k in torch_keys)
        assert step["step_us_torch"] > 0 and step["step_ratio"] > 0
        assert seq["forward_max_abs_diff"] < 1e-4        # same weights, same numbers
    else:
        assert all(seq[k] is None for k in torch_keys)


def test_flop_counts():
    assert harness.flops_forward(200, 16, 256) == 2 * 200 * 16 * 3 * 256 * (256 + 256)
    assert harness.flops_train(10, 2, 4, 3) == 3 * harness.flops_forward(10, 2, 4, 3)


def test_run_bench_rejects_bad_arguments():
    with pytest.raises(ValueError, match="reps"):
        harness.run_bench(grid=[(5, 1, 8)], reps=0, progress=False)
    with pytest.raises(ValueError, match="grid"):
        harness.run_bench(grid=[(5, 8)], progress=False)


@pytest.mark.parametrize("torch", [True, False])
def test_format_table(torch):
    table = bench.format_table(_fake_rows(torch))
    for header in ("| T | B | H |", "forward ms numgru", "forward numgru/torch", "train numgru/torch",
                   "forward GFLOP/s", "train GFLOP/s", "| H | step µs numgru | step µs torch | step numgru/torch |"):
        assert header in table
    assert ("| 0.50 |" in table) == torch
    assert ("–" in table) != torch


def test_arguments_and_shapes():
    parser = bench.add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--shapes", "1x64", "50x16x256", "--reps", "3", "--chart", "x.png"])
    assert args.shapes == [(None, 1, 64), (50, 16, 256)] and args.reps == 3 and args.chart == "x.png"
    assert not args.quick and args.threads == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["--shapes", "64"])
    assert bench.parse_shape("16x256", 200) == (200, 16, 256)


def test_chart_skipped_without_matplotlib(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)     # import matplotlib -> ImportError
    path = tmp_path / "chart.png"
    assert bench.write_chart(_fake_rows(), path) is False
    assert not path.exists()
    assert "chart skipped" in capsys.readouterr().out


def test_main_with_chart_but_no_matplotlib(monkeypatch, tmp_path, capsys, restore_threads):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    path = tmp_path / "chart.png"
    args = bench.add_arguments(argparse.ArgumentParser()).parse_args(
        ["--shapes", "3x1x4", "--reps", "1", "--chart", str(path), "--no-progress", "--no-step"])
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert "chart skipped" in out and "| 3 | 1 | 4 |" in out and "threads" in out
    assert not path.exists()


def test_chart_written(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "chart.png"
    assert bench.write_chart(_fake_rows(), path) is True
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the asv suite -----------------------------------------------------------------------------

@pytest.fixture
def asv_suite():
    """asv_bench/benchmarks imported by path as a package (it is not installed); removed afterwards."""
    if not (ASV_BENCHMARKS / "__init__.py").exists():
        pytest.skip("asv_bench/benchmarks is not here (an installed-only checkout)")
    name = "numgru_asv_benchmarks"
    spec = importlib.util.spec_from_file_location(name, ASV_BENCHMARKS / "__init__.py",
                                                  submodule_search_locations=[str(ASV_BENCHMARKS)])
    sys.modules[name] = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(sys.modules[name])
        common = importlib.import_module(f"{name}.common")
        gru = importlib.import_module(f"{name}.gru")
        common.SEQ_LEN = 5                  # the suite's T=200 is not needed to check that it runs
        common.RAGGED_SHAPE = (6, 4, 8)
        yield common, gru
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]


def test_asv_grid_is_the_issue_grid(asv_suite):
    common, gru = asv_suite
    training = ["numgru-cpu", "numgru-cuda", "torch-cpu", "torch-cuda"]
    assert gru.Forward.params == [training + ["onnxruntime-cpu"], [1, 16, 64], [64, 256, 1024]]
    assert gru.TrainStep.params == [training, [1, 16, 64], [64, 256, 1024]]
    assert gru.Streaming.params == [training, [64, 256, 1024]]
    assert gru.FirstCall.params[0] == training
    assert gru.Ragged.params == [training, ["full", "uniform", "short", "one-long"]]
    assert gru.Ragged.param_names == ["engine", "lengths"]


def _engines(common, engines=None):
    return [e for e in (common.TRAINING_ENGINES if engines is None else engines) if common.unavailable(e) is None]


def test_asv_benchmarks_run_once(asv_suite, restore_threads):
    common, gru = asv_suite
    for engine in _engines(common, common.ENGINES):
        forward = gru.Forward()
        forward.setup(engine, 1, 64)
        forward.time_forward(engine, 1, 64)
    for engine in _engines(common):
        train = gru.TrainStep()
        train.setup(engine, 1, 64)
        train.time_train_step(engine, 1, 64)
        train.peakmem_train_step(engine, 1, 64)
        step = gru.Streaming()
        step.setup(engine, 64)
        step.time_step(engine, 64)
        step.time_step(engine, 64)
        for case in common.RAGGED_CASES:
            ragged = gru.Ragged()
            ragged.setup(engine, case)
            ragged.time_forward(engine, case)
            ragged.time_train_step(engine, case)


def test_asv_first_call_source(asv_suite):
    common, gru = asv_suite
    for engine in _engines(common):
        bench_ = gru.FirstCall()
        bench_.setup(engine, "cold")
        try:
            stmt, setup = bench_.timeraw_import_and_first_call(engine, "cold")
            compile(stmt, "<stmt>", "exec")
            compile(setup, "<setup>", "exec")
            assert "NUMBA_CACHE_DIR" in setup
            assert "(50, 16, 32)" in stmt and "GRU(32, 64" in stmt
        finally:
            bench_.teardown(engine, "cold")
        if common.library(engine) == "torch":
            with pytest.raises(NotImplementedError):
                bench_.setup(engine, "warm")


def test_asv_unavailable_engines_skip(asv_suite):
    common, gru = asv_suite
    missing = [e for e in common.ENGINES if common.unavailable(e) is not None]
    if not missing:
        pytest.skip("every engine is available here")
    for engine in missing:
        with pytest.raises(NotImplementedError, match="unavailable"):
            gru.Forward().setup(engine, 1, 64)
        with pytest.raises(NotImplementedError, match="unavailable"):
            gru.Streaming().setup(engine, 64)
        with pytest.raises(NotImplementedError, match="unavailable"):
            gru.FirstCall().setup(engine, "cold")


def test_run_bench_float64_and_bad_dtype(restore_threads):
    rows = harness.run_bench(grid=[(4, 2, 8)], reps=1, threads=1, progress=False, min_time=0.001, dtype="float64",
                           step=False)
    assert rows[0]["dtype"] == "float64" and rows[0]["forward_ms_numgru"] > 0
    if HAVE_TORCH:
        assert rows[0]["forward_max_abs_diff"] < 1e-12      # both engines in double
    with pytest.raises(ValueError, match="dtype"):
        harness.run_bench(grid=[(4, 2, 8)], reps=1, progress=False, dtype="float16")


# --- the GEMM ceiling ----------------------------------------------------------------------------

def test_gemm_variants_compute_the_same_product():
    variants = harness.gemm_variants(3, 5, 7, "float64", seed=1)
    assert set(variants) == {"a@w", "a@W.T", "W@a.T", "W@b"}
    results = {name: fn().copy() for name, fn in variants.items()}
    for name in ("W@a.T", "W@b"):
        results[name] = results[name].T           # (N, M): the same numbers transposed
    reference = results["a@w"]
    assert reference.shape == (3, 7)
    for name, value in results.items():
        np.testing.assert_allclose(value, reference, rtol=1e-12, err_msg=name)


def test_blas_thread_counts():
    assert harness.blas_thread_counts(1) == [1]
    assert harness.blas_thread_counts(2) == [1, 2]
    assert harness.blas_thread_counts(6) == [1, 2, 4, 6]


def test_gemm_best_is_the_max_over_variants_and_threads(monkeypatch):
    """Made-up times: the winner is the fastest (variant, threads), not the first or the usual orientation."""
    from threadpoolctl import threadpool_info

    def blas_threads():
        return max(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")

    seconds = {("a@w", 1): 4.0, ("a@W.T", 1): 3.0, ("W@a.T", 1): 1.0, ("W@b", 1): 5.0,
               ("a@w", 2): 2.0, ("a@W.T", 2): 6.0, ("W@a.T", 2): 7.0, ("W@b", 2): 8.0}
    names = {}

    def fake_variants(M, K, N, dtype="float32", seed=0):
        fns = {name: (lambda: None) for name in ("a@w", "a@W.T", "W@a.T", "W@b")}
        names.update({id(fn): name for name, fn in fns.items()})
        return fns

    def fake_best_seconds(fn, min_time, samples):
        threads = 1 if blas_threads() == 1 else 2
        return seconds[(names[id(fn)], threads)]

    monkeypatch.setattr(harness, "gemm_variants", fake_variants)
    monkeypatch.setattr(harness, "_best_seconds", fake_best_seconds)
    best = harness.gemm_best(2, 3, 9, threads=2)
    assert (best.variant, best.threads, best.seconds) == ("W@a.T", 1, 1.0)
    assert best.gflops == pytest.approx(2 * 2 * 3 * 9 / 1.0 / 1e9)
    assert best.gflops == max(best.measured.values())
    if blas_threads() >= 2:                         # a 1-core machine cannot show the 2-thread rows
        assert set(best.measured) == set(seconds)


def test_gemm_best_measured_for_real():
    best = harness.gemm_best(2, 16, 48, threads=2, min_time=0.001, samples=2)
    assert set(best.measured) == {(v, t) for v in ("a@w", "a@W.T", "W@a.T", "W@b") for t in (1, 2)}
    assert best.gflops == max(best.measured.values()) > 0
    assert best.measured[(best.variant, best.threads)] == best.gflops


def test_gemm_ceiling_is_projection_plus_recurrence(monkeypatch):
    calls = []

    def fake_best(M, K, N, **kwargs):
        calls.append((M, K, N))
        return harness.GemmBest(1.0, 2e-3 if M == 7 * 3 else 1e-4, "a@w", 1, {})

    monkeypatch.setattr(harness, "gemm_best", fake_best)
    c = harness.gemm_ceiling(7, 3, 5, I=4)
    assert calls == [(3, 5, 15), (21, 4, 15)]       # recurrent (B, H)x(H, 3H), projection (T*B, I)x(I, 3H)
    assert c["seconds"] == pytest.approx(2e-3 + 7 * 1e-4)
    assert c["gflops"] == pytest.approx(harness.flops_forward(7, 3, 5, 4) / c["seconds"] / 1e9)


# --- ragged batches ------------------------------------------------------------------------------

def test_ragged_cases_and_their_shares():
    T, B, H = harness.RAGGED_SHAPE
    assert (T, B, H) == (200, 64, 256)
    shares = {}
    for case in harness.RAGGED_CASES:
        lengths = harness.ragged_lengths(case)
        assert lengths.dtype == np.int64 and lengths.shape == (B,)
        assert lengths.min() >= 1 and lengths.max() <= T
        np.testing.assert_array_equal(lengths, harness.ragged_lengths(case, T, B))   # fixed seed
        shares[case] = harness.real_share(lengths, T)
    assert shares["full"] == 1.0
    assert abs(shares["uniform"] - 0.5) < 0.05
    assert 0.10 < shares["short"] < 0.16            # mean about T/8
    assert shares["one-long"] == pytest.approx((T + (B - 1) * 10) / (T * B))   # 0.065
    assert harness.ragged_lengths("one-long").max() == T
    assert not np.all(np.diff(harness.ragged_lengths("uniform")) <= 0)   # unsorted, as real batches
    with pytest.raises(ValueError, match="case"):
        harness.ragged_lengths("sorted")


def test_run_ragged_tiny(restore_threads):
    rows = harness.run_ragged(shape=(6, 4, 8), reps=2, progress=False, min_time=0.002)
    assert [r["case"] for r in rows] == list(harness.RAGGED_CASES)
    for r in rows:
        assert r["kind"] == "ragged" and (r["T"], r["B"], r["H"]) == (6, 4, 8)
        assert r["share"] == harness.real_share(harness.ragged_lengths(r["case"], 6, 4), 6)
        assert r["forward_ms_numgru"] > 0 and r["train_ms_numgru"] > 0
        if HAVE_TORCH:
            assert r["forward_ratio"] > 0 and r["train_ratio"] > 0
            assert r["forward_max_abs_diff"] < 1e-5      # the same numbers as torch's packed sequences
    table = bench.format_table(rows)
    assert "| lengths | real |" in table and "| uniform |" in table


def test_main_routes_ragged_and_first_call(monkeypatch, capsys):
    fake_ragged = [dict(kind="ragged", case=c, T=6, B=4, H=8, threads=2, share=0.5, forward_ms_numgru=1.0,
                        forward_ms_torch=2.0, forward_ratio=0.5, train_ms_numgru=3.0, train_ms_torch=4.0,
                        train_ratio=0.75) for c in harness.RAGGED_CASES]
    fake_first = [dict(entry="GRU-float32", cold=dict(wall=3.0, total=2.5, **{"import": 0.5}),
                       warm=dict(wall=1.0, total=0.7, **{"import": 0.5}), cache_files=12, cache_files_warm=12,
                       warm_over_cold=0.28)]
    called = []
    monkeypatch.setattr(harness, "run_ragged", lambda **kw: called.append("ragged") or fake_ragged)
    monkeypatch.setattr(harness, "measure_first_call", lambda **kw: called.append("first") or fake_first)
    monkeypatch.setattr(harness, "run_bench", lambda **kw: called.append("grid") or [])
    parser = bench.add_arguments(argparse.ArgumentParser())
    assert bench.main(parser.parse_args(["--ragged", "--no-progress"])) == 0
    out = capsys.readouterr().out
    assert called == ["ragged"] and "| one-long | 0.500 |" in out
    called.clear()
    assert bench.main(parser.parse_args(["--first-call", "--no-progress"])) == 0
    out = capsys.readouterr().out
    assert called == ["first"] and "| GRU-float32 | 0.50 / 0.50 | 2.50 | 0.70 | 0.28 | 3.00 / 1.00 | 12 |" in out
    called.clear()
    assert bench.main(parser.parse_args(["--shapes", "1x8", "--no-progress"])) == 130   # the fake grid is empty
    assert called == ["grid"]                         # --shapes: no ragged table


# --- first call ----------------------------------------------------------------------------------

def test_first_call_sources_compile():
    for entry, spec in harness.FIRST_CALL_ENTRIES.items():
        if isinstance(spec[0], tuple):
            stages = harness.first_call_stages(entry)
            assert stages[0][0] == "import"
            compile(harness.timed_source(stages), entry, "exec")
        else:
            assert spec[:3] == ["-m", "numgru", "train"] and "--epochs" in spec
    source = harness.first_call_source("numgru-cpu")
    assert "numgru.GRU(32, 64" in source and "(50, 16, 32)" in source and "backward" in source
    assert "torch.nn.GRU(32, 64)" in harness.first_call_source("torch-cpu")
    with pytest.raises(ValueError):
        harness.first_call_source("torch-cpu", entry="GRUCell")


TINY_KERNEL = """
import numba

@numba.njit(cache=True)
def tiny(n):
    s = 0.0
    for i in range(n):
        s += i * 0.5
    return s
"""


def test_measure_first_call_cold_then_warm(tmp_path):
    """The plumbing, with a tiny cached kernel instead of numgru's (seconds, not minutes)."""
    (tmp_path / "tiny_kernel_mod.py").write_text(TINY_KERNEL)
    stages = [
        ("import", f"import os, sys\nsys.path.insert(0, {str(tmp_path)!r})\nimport tiny_kernel_mod"),
        # the process runs in an empty temporary directory, never the source tree
        ("forward", "assert not os.listdir('.'), os.listdir('.')\nassert tiny_kernel_mod.tiny(10) == 22.5"),
    ]
    rows = harness.measure_first_call(entries={"tiny": stages, "command": ["-c", "print('hello')"]},
                                      progress=False)
    tiny, command = rows
    assert tiny["entry"] == "tiny" and command["entry"] == "command"
    for kind in ("cold", "warm"):
        assert 0 < tiny[kind]["import"] <= tiny[kind]["forward"] == tiny[kind]["total"] < tiny[kind]["wall"]
        assert command[kind]["import"] is None and command[kind]["total"] == command[kind]["wall"] > 0
    assert tiny["cache_files"] >= 2                   # the cold run filled the empty cache (.nbi + .nbc)
    assert tiny["cache_files_warm"] == tiny["cache_files"]     # the warm run loaded, saved nothing new
    cold_call = tiny["cold"]["forward"] - tiny["cold"]["import"]
    warm_call = tiny["warm"]["forward"] - tiny["warm"]["import"]
    assert warm_call < cold_call                      # compile vs load from the cache
    assert command["cache_files"] == 0
    assert tiny["warm_over_cold"] == tiny["warm"]["total"] / tiny["cold"]["total"]


def test_first_call_failure_is_reported(tmp_path):
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        harness.first_call_once([("import", "1 / 0")], tmp_path)


# --- the asv suite's harness ---------------------------------------------------------------------

def test_asv_harness_fallback_for_old_commits(asv_suite, tmp_path):
    common, _ = asv_suite
    assert common.harness.HARNESS_VERSION == common.HARNESS_VERSION
    installed = common.installed_harness_path()
    assert installed is not None and installed.endswith("benchmarks.py")
    old = tmp_path / "benchmarks.py"
    old.write_text("HARNESS_VERSION = 0\n")           # an installed numgru with another harness
    fallback = common.load_harness([None, str(tmp_path / "missing.py"), str(old), common.FALLBACK])
    assert fallback.__file__ == common.FALLBACK
    assert fallback.RAGGED_CASES == harness.RAGGED_CASES and fallback.FULL_GRID == harness.FULL_GRID
    with pytest.raises(ImportError, match="version"):
        common.load_harness([str(old)])


def test_asv_harness_does_not_import_numgru():
    """The suite loads the harness without numgru or numba, so a torch process stays free of them."""
    import subprocess
    code = (f"import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('h', {harness.__file__!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "assert 'numgru' not in sys.modules and 'numba' not in sys.modules and 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- language models ------------------------------------------------------------------------------

TINY_LM = dict(vocab=9, embedding_dim=4, hidden=8, layers=2, batch=3, bptt=5)


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is the yardstick")
def test_language_models_compute_the_same_steps(restore_threads):
    ours, theirs = harness.language_models(TINY_LM["vocab"], TINY_LM["embedding_dim"], TINY_LM["hidden"],
                                           TINY_LM["layers"])
    for inputs, targets in harness.lm_windows(TINY_LM["vocab"], TINY_LM["batch"], TINY_LM["bptt"], windows=3):
        # same weights, windows, clipping and Adam, the state carried: the same losses step after step
        np.testing.assert_allclose(ours.train_step(inputs, targets), theirs.train_step(inputs, targets), rtol=1e-5)
    assert len(ours.generate(7)) == 7 and len(theirs.generate(7)) == 7


def test_run_text_bench_tiny(restore_threads):
    rows = harness.run_text_bench(shape=TINY_LM, reps=2, progress=False, min_time=0.002, generate_length=5)
    assert [r["kind"] for r in rows] == ["lm-train", "lm-generate"]
    assert rows[0]["chars"] == TINY_LM["batch"] * TINY_LM["bptt"] and rows[1]["chars"] == 5
    for r in rows:
        assert r["chars_per_s_numgru"] > 0
        assert (r["ratio"] is not None) == HAVE_TORCH
    table = bench.format_table(rows)
    assert "Character language model: Embedding(9, 4) + GRU 2x8" in table and "| generate: rate ratio" in table


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is the yardstick")
def test_race_trains_both_engines_on_the_same_windows(restore_threads):
    corpus = "to be or not to be, that is the question. " * 12
    recipe = dict(embedding_dim=4, hidden=8, layers=1, batch=4, bptt=10, lr=1e-2, lr_end=1e-3, clip=5.0)
    # 4 streams of 99 characters: 10 windows an epoch, each scored; two epochs end it long before the time limit
    curves = harness.race_language_models(corpus[:400], corpus[400:], recipe, seconds=1e9, eval_every=1, epochs=2,
                                          progress=False)
    ours, theirs = curves["numgru"], curves["torch"]
    assert ours["windows"] == theirs["windows"] == list(range(1, 21))
    np.testing.assert_allclose(ours["epochs"], theirs["epochs"])
    # same weights, batching and optimiser: the same validation curve, to float32 rounding
    np.testing.assert_allclose(ours["val_nats"], theirs["val_nats"], rtol=1e-4)
    assert ours["val_nats"][-1] < ours["val_nats"][0]
    assert all(np.diff(ours["seconds"]) >= 0) and set(ours["reach"]) == {1.8, 1.6}


def test_race_table_and_chart(tmp_path):
    curve = dict(windows=[100, 200], epochs=[0.3, 0.6], seconds=[50.0, 100.0], val_nats=[1.9, 1.7],
                 reach={1.8: 100.0, 1.6: None})
    curves = {"numgru": curve, "torch": dict(curve, reach={1.8: None, 1.6: None})}
    table = bench.format_race(curves)
    assert "| numgru | 200 | 0.60 | 100 | 1.7000 | 1.7000 | 100 | – |" in table
    assert "| torch | 200 | 0.60 | 100 | 1.7000 | 1.7000 | – | – |" in table
    if importlib.util.find_spec("matplotlib") is not None:
        assert bench.write_race_chart(curves, tmp_path / "race.png", "title")
        assert (tmp_path / "race.png").stat().st_size > 0


def test_reach_time_interpolates_between_evaluations():
    assert harness.reach_time([10, 20, 30], [2.0, 1.7, 1.5], 1.8) == pytest.approx(10 + 10 * 0.2 / 0.3)
    assert harness.reach_time([10, 20], [1.7, 1.5], 1.8) == 10          # already there at the first point
    assert harness.reach_time([10, 20], [2.0, 1.9], 1.8) is None


TINY_SEQ2SEQ = dict(embedding_dim=4, hidden=6, layers=2, batch=5, dropout=0.0, beam=2)


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is the yardstick")
def test_seq2seq_models_compute_the_same_steps(restore_threads):
    task, vocabularies = harness.translation_data()
    ours = harness.NumgruSeq2Seq(task, vocabularies, TINY_SEQ2SEQ, seed=3)
    theirs = harness.TorchSeq2Seq(*map(len, vocabularies), TINY_SEQ2SEQ, seed=3, state_dict=ours.model.state_dict())
    rng = np.random.default_rng(0)
    for _ in range(3):
        # same weights, ragged batches, clipping and Adam: the same losses step after step
        rows = rng.choice(len(ours.pairs[0]), TINY_SEQ2SEQ["batch"], replace=False)
        np.testing.assert_allclose(ours.train_step(rows), theirs.train_step(ours.pairs, rows), rtol=1e-5)
    np.testing.assert_allclose(ours.eval_loss(rows), theirs.eval_loss(ours.pairs, rows), rtol=1e-5)


def test_run_translation_bench_tiny(restore_threads):
    rows = harness.run_translation_bench(shape=TINY_SEQ2SEQ, reps=2, progress=False, min_time=0.002, alone_rounds=1)
    assert rows[0]["alone_steps_per_s_numgru"] > 0 and (rows[0]["alone_ratio"] is not None) == HAVE_TORCH
    assert [r["kind"] for r in rows] == ["seq2seq-train", "seq2seq-beam"]
    assert rows[0]["steps_per_s_numgru"] > 0 and (rows[0]["ratio"] is not None) == HAVE_TORCH
    assert rows[1]["sentences"] == 260 and rows[1]["sentences_per_s"] > 0
    table = bench.format_table(rows)
    assert "| training steps per s" in table and "| beam search at beam 2: sentences per s" in table


# --- onnxruntime and the bandwidth floor ------------------------------------------------------------

@pytest.mark.skipif(not HAVE_ONNXRUNTIME, reason="onnxruntime is optional")
def test_onnxruntime_model_computes_numgrus_forward(restore_threads):
    ours = harness.sequence_model("numgru-cpu", 6, 3, 8, I=5, seed=4, threads=1)
    given = harness.sequence_model("onnxruntime-cpu", 6, 3, 8, I=5, seed=0, threads=1, spinning=False,
                                   state_dict=ours.state_dict())
    same_seed = harness.sequence_model("onnxruntime-cpu", 6, 3, 8, I=5, seed=4)     # onnxruntime's own threads
    reference = ours.output()
    assert reference.shape == (6, 3, 8)
    np.testing.assert_allclose(same_seed.output(), reference, rtol=1e-5, atol=1e-6)
    # seed 0 draws other inputs, so compare the weights through a forward of seed 4's inputs
    given.feed = same_seed.feed
    np.testing.assert_allclose(given.output(), reference, rtol=1e-5, atol=1e-6)
    assert [o.name for o in same_seed.session.get_outputs()] == ["out", "hn"]
    for kwargs in (dict(training=True), dict(dtype="float64"), dict(lengths=[6, 2, 1])):
        with pytest.raises(NotImplementedError, match="forward"):
            harness.sequence_model("onnxruntime-cpu", 6, 3, 8, **kwargs)
    with pytest.raises(NotImplementedError, match="streaming"):
        harness.step_model("onnxruntime-cpu", 8)


def test_onnxruntime_engine_skipped_when_missing(monkeypatch, asv_suite, restore_threads):
    common, gru = asv_suite
    find_spec = importlib.util.find_spec
    missing = {"onnxruntime"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in missing else find_spec(name, *a))
    for module in (harness, common.harness):      # the package's harness and the suite's copy, loaded by path
        module.unavailable.cache_clear()
    try:
        assert harness.unavailable("onnxruntime-cpu") == "onnxruntime is not installed"
        with pytest.raises(NotImplementedError, match="onnxruntime is not installed"):
            gru.Forward().setup("onnxruntime-cpu", 1, 64)
        rows = harness.run_onnx_bench(grid=[(4, 1, 8)], reps=1, progress=False, min_time=0.001, alone=False,
                                     floor=False)
        assert rows[0]["ms_numgru"] > 0
        assert [rows[0][k] for k in ("ms_onnxruntime", "ratio", "max_abs_diff")] == [None, None, None]
        assert "| 4 | 1 | 8 |" in bench.format_table(rows) and "| – |" in bench.format_table(rows)
        missing.clear()
        missing.add("onnx")                        # numgru's exporter
        harness.unavailable.cache_clear()
        assert "onnx" in harness.unavailable("onnxruntime-cpu")
    finally:
        for module in (harness, common.harness):
            module.unavailable.cache_clear()


def test_run_onnx_bench_alone_and_floor(monkeypatch, restore_threads):
    """The bench's arithmetic, with made-up fresh-process times and read rates."""
    processes = []

    def fake_alone(function, *args, engine, threads):
        processes.append((function, args[0], engine))
        # numgru 2 ms and onnxruntime 4 ms in the first round, 6 and 4 in the next ones, at every shape
        seconds = 1e-3 * (2 + 4 * (len(processes) > 2)) if engine == "numgru-cpu" else 4e-3
        grid = args[1]
        return [seconds] * len(grid)

    rates = []
    monkeypatch.setattr(harness, "alone_process", fake_alone)
    # caches read 3x faster than memory (the floor takes the cache's rate)
    monkeypatch.setattr(harness, "read_bandwidth", lambda nbytes, threads, *a: rates.append((nbytes, threads))
                        or (10.0 if nbytes == harness.MEMORY_PROBE_BYTES else 30.0) * threads)
    grid = [(4, 1, 8), (4, 2, 8), (3, 1, 16)]
    rows = harness.run_onnx_bench(grid=grid, reps=1, threads=2, progress=False, min_time=0.001, alone_rounds=3)
    forward = [r for r in rows if r["kind"] == "onnx-forward"]
    assert [(r["T"], r["B"], r["H"]) for r in forward] == grid
    engines = ["numgru-cpu", "onnxruntime-cpu"] if HAVE_ONNXRUNTIME else ["numgru-cpu"]
    assert processes == [("onnx_forward_alone", e, e) for e in engines] * 3
    for r in forward:
        assert r["ms_numgru"] > 0 and r["alone_ms_numgru"] == pytest.approx(6.0)      # median of 2, 6, 6
        if HAVE_ONNXRUNTIME:
            assert r["ms_onnxruntime"] > 0 and r["ratio"] > 0 and r["max_abs_diff"] < 1e-5
            assert r["alone_ms_onnxruntime"] == pytest.approx(4.0) and r["alone_ratio"] == pytest.approx(1.5)
    assert sorted(rates) == sorted([(3 * H * H * 4, t) for H in (8, 16) for t in (1, 2)]
                                   + [(harness.MEMORY_PROBE_BYTES, t) for t in (1, 2)])
    bandwidth = [r for r in rows if r["kind"] == "read-bandwidth"]
    assert [r["what"] for r in bandwidth] == ["W_hh at H=8", "W_hh at H=16", "memory"]
    assert [r["gbs"] for r in bandwidth] == [{1: 30.0, 2: 60.0}] * 2 + [{1: 10.0, 2: 20.0}]
    floors = [r for r in rows if r["kind"] == "forward-floor"]
    assert [(r["T"], r["H"]) for r in floors] == [(4, 8), (3, 16)]           # the B=1 shapes
    for r, shape in zip(floors, (forward[0], forward[2])):
        assert r["nbytes"] == harness.forward_floor_bytes(r["T"], r["H"])
        assert r["floor_gbs"] == 60.0 and r["floor_ms"] == pytest.approx(r["nbytes"] / 60e9 * 1e3)
        assert r["memory_floor_ms"] == pytest.approx(r["nbytes"] / 20e9 * 1e3)
        assert r["ms_numgru"] == shape["ms_numgru"]
        assert r["alone_pct_numgru"] == pytest.approx(100 * 6.0 / r["floor_ms"])
    table = bench.format_table(rows)
    assert "| 4 | 2 | 8 |" in table and "| array | MB | 1 thread | 2 threads |" in table
    assert "| W_hh at H=16 | 0.00307 | 30.0 | 60.0 |" in table
    assert f"| 3 | 16 | {floors[1]['nbytes'] / 1e6:.3g} | 60 |" in table


def test_forward_floor_bytes_counts_the_weights():
    # H=1024: W_hh is 12.6 MB, read at each of the 200 steps; W_ih once
    assert 3 * 1024 * 1024 * 4 == 12_582_912
    assert harness.forward_floor_bytes(200, 1024) == 201 * 12_582_912
    assert harness.forward_floor_bytes(10, 4, I=2) == 4 * (10 * 3 * 4 * 4 + 3 * 4 * 2)


def test_read_bandwidth_is_positive():
    for threads in (1, 2):
        assert 0 < harness.read_bandwidth(1 << 20, threads, min_time=0.002, samples=2) < 1e4   # GB/s


@pytest.mark.skipif(not HAVE_ONNXRUNTIME, reason="onnxruntime is optional")
def test_onnx_forward_alone_times_each_shape(restore_threads):
    seconds = harness.onnx_forward_alone("onnxruntime-cpu", [(3, 1, 4), (3, 2, 4)], reps=2, min_time=0.001,
                                         threads=1)
    assert len(seconds) == 2 and all(0 < s < 1 for s in seconds)


def test_main_routes_onnx(monkeypatch, capsys):
    calls = []
    row = dict(kind="onnx-forward", T=200, B=1, H=8, threads=2, ms_numgru=1.0, ms_onnxruntime=2.0, ratio=0.5,
               alone_ms_numgru=1.5, alone_ms_onnxruntime=None, alone_ratio=None)
    monkeypatch.setattr(harness, "run_onnx_bench", lambda **kw: calls.append(kw) or [row])
    parser = bench.add_arguments(argparse.ArgumentParser())
    assert bench.main(parser.parse_args(["--onnx", "--shapes", "1x8", "--reps", "2", "--no-progress"])) == 0
    assert calls[0]["grid"] == [(200, 1, 8)] and calls[0]["reps"] == 2
    assert "| 200 | 1 | 8 | 1 | 2 | 0.50 | 1.5 | – | – |" in capsys.readouterr().out
