"""The CUDA backend on every CI run, GPU or not.

Without a GPU, the CUDA tests and the device-generic parity tests rerun in a
subprocess under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` must be set before
numba.cuda is first imported, hence the separate process), with
``device="cuda"``: tiny shapes, a spread-out selection of the parametrised cases
(every 11th, so each parameter still takes all its values) and both recurrence
strategies. With a GPU, conftest.py adds "cuda" to the devices of the same tests
in this process, and the subprocess is not needed.
"""
import ast
import os
import pathlib
import subprocess
import sys

import pytest

import numgru
from numgru import devices

TESTS = pathlib.Path(__file__).resolve().parent
SIMULATED = [
    "test_cuda_backend.py",
    "test_parity_torch.py",
    "test_gradients.py",
    "test_properties.py",
]
# Left out under the simulator, where every CUDA thread is a Python thread: finite
# differences (hundreds of forwards), T=50 dropout statistics, host memory layouts,
# bit-stability reruns (the GPU kernels have no racing reductions by construction) and
# 3-layer stacks (2 layers already chain layers). They run on the CPU here and on real GPUs.
SLOW_UNDER_SIMULATOR = ("not finite_differences and not memory_layouts and not mask_scales "
                        "and not same_bits and not cuda-3-")


def _run_simulated(extra_env, *args):
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", NUMGRU_TEST_DEVICES="cuda", **extra_env)
    env.pop("PYTEST_ADDOPTS", None)
    command = [sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
               "-W", "ignore:invalid value encountered:RuntimeWarning", *args]
    return subprocess.run(command, env=env, cwd=str(TESTS.parent), capture_output=True, text=True, timeout=1500)


@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"),
                    reason="already under the simulator")
@pytest.mark.skipif(devices.gpu_available(), reason="a real GPU runs the CUDA tests in this process")
def test_cuda_backend_under_simulator():
    result = _run_simulated({"NUMGRU_TEST_STRIDE": "11"}, "-k", SLOW_UNDER_SIMULATOR,
                            *[str(TESTS / name) for name in SIMULATED])
    output = result.stdout[-12000:] + result.stderr[-4000:]
    assert result.returncode == 0, f"the simulated CUDA tests failed:\n{output}"
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary, output


def test_numba_cuda_is_imported_in_one_module_only():
    import numgru.kernels
    package = pathlib.Path(numgru.__file__).resolve().parent
    kernels = pathlib.Path(numgru.kernels.__file__).resolve().parent
    sources = [(f"numgru/{p.name}", p) for p in package.glob("*.py")]
    sources += [(f"kernels/{p.name}", p) for p in kernels.glob("*.py")]
    importers = []
    for name_in_tree, path in sources:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{alias.name}" for alias in node.names] if node.module else []
            else:
                continue
            if any(name == "numba.cuda" or name.startswith("numba.cuda.") for name in names):
                importers.append(name_in_tree)
    assert sorted(set(importers)) == ["kernels/cuda.py"]


def test_import_numgru_does_not_import_cuda():
    code = "import sys, numgru; assert 'numba.cuda' not in sys.modules, 'numba.cuda imported'"
    result = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_explicit_cuda_without_a_gpu_says_why():
    if devices._cuda_probe()[1]:
        pytest.skip("CUDA works here")
    with pytest.raises(RuntimeError, match="device='cuda' is not available: .*use device='cpu'"):
        numgru.GRU(3, 4, device="cuda")
    with pytest.raises(RuntimeError, match="cuda"):
        numgru.gru_forward([[[0.0]]], ([[0.0]] * 3, [[0.0]] * 3, None, None), device="cuda")
