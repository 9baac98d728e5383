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
import pytest

from numgru import bench

ASV_BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "asv_bench" / "benchmarks"
HAVE_TORCH = importlib.util.find_spec("torch") is not None


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
    rows = bench.run_bench(grid=[(5, 1, 8)], reps=2, threads=2, progress=False, min_time=0.002)
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
        bench.flops_forward(5, 1, 8) / (seq["forward_ms_numgru"] / 1e3) / 1e9)
    torch_keys = ("forward_ms_torch", "forward_ratio", "train_ms_torch", "train_ratio", "forward_gflops_torch")
    if HAVE_TORCH:
        assert all(seq[k] > 0 for k in torch_keys)
        assert step["step_us_torch"] > 0 and step["step_ratio"] > 0
        assert seq["forward_max_abs_diff"] < 1e-4        # same weights, same numbers
    else:
        assert all(seq[k] is None for k in torch_keys)


def test_flop_counts():
    assert bench.flops_forward(200, 16, 256) == 2 * 200 * 16 * 3 * 256 * (256 + 256)
    assert bench.flops_train(10, 2, 4, 3) == 3 * bench.flops_forward(10, 2, 4, 3)


def test_run_bench_rejects_bad_arguments():
    with pytest.raises(ValueError, match="reps"):
        bench.run_bench(grid=[(5, 1, 8)], reps=0, progress=False)
    with pytest.raises(ValueError, match="grid"):
        bench.run_bench(grid=[(5, 8)], progress=False)


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
        yield common, gru
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]


def test_asv_grid_is_the_issue_grid(asv_suite):
    common, gru = asv_suite
    assert gru.Forward.params == [["numgru-cpu", "numgru-cuda", "torch-cpu", "torch-cuda"], [1, 16, 64],
                                  [64, 256, 1024]]
    assert gru.TrainStep.params == gru.Forward.params
    assert gru.Streaming.params == [gru.Forward.params[0], [64, 256, 1024]]
    assert gru.FirstCall.params[0] == gru.Forward.params[0]


def _engines(common):
    return [e for e in common.ENGINES if common.unavailable(e) is None]


def test_asv_benchmarks_run_once(asv_suite, restore_threads):
    common, gru = asv_suite
    for engine in _engines(common):
        forward = gru.Forward()
        forward.setup(engine, 1, 64)
        forward.time_forward(engine, 1, 64)
        train = gru.TrainStep()
        train.setup(engine, 1, 64)
        train.time_train_step(engine, 1, 64)
        train.peakmem_train_step(engine, 1, 64)
        step = gru.Streaming()
        step.setup(engine, 64)
        step.time_step(engine, 64)
        step.time_step(engine, 64)


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
    rows = bench.run_bench(grid=[(4, 2, 8)], reps=1, threads=1, progress=False, min_time=0.001, dtype="float64",
                           step=False)
    assert rows[0]["dtype"] == "float64" and rows[0]["forward_ms_numgru"] > 0
    if HAVE_TORCH:
        assert rows[0]["forward_max_abs_diff"] < 1e-12      # both engines in double
    with pytest.raises(ValueError, match="dtype"):
        bench.run_bench(grid=[(4, 2, 8)], reps=1, progress=False, dtype="float16")
