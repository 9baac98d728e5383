"""Every CUDA kernel compiles to PTX for a real GPU, in both dtypes, without a GPU.

The simulator runs the kernels as Python, so it cannot catch what only the CUDA
compiler rejects (untypable builtins, float64 creeping into float32 kernels).
This compiles them with NVVM where it is installed (e.g. ``pip install
nvidia-cuda-nvcc-cu12`` and ``CUDA_HOME`` pointing at its ``nvidia/cuda_nvcc``);
elsewhere it is skipped.
"""
import os
import re

import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
    pytest.skip("the simulator has no compiler", allow_module_level=True)

try:
    from numba import cuda, float32, float64, int64, types
    from numba.cuda.cudadrv import nvvm
    NVVM = nvvm.is_available()
except Exception:          # no CUDA target package at all
    NVVM = False
if not NVVM:
    pytest.skip("NVVM (the CUDA compiler) is not installed", allow_module_level=True)

from numgru.kernels import cuda as ck  # noqa: E402


def signatures(dt):
    a1, a2, a3 = (types.Array(dt, n, "C") for n in (1, 2, 3))
    strided3 = types.Array(dt, 3, "A")
    lengths = types.Array(int64, 1, "C")
    flag = types.boolean
    return {
        "_forward_step": (int64, int64, a1, a3, a1, lengths, flag, flag, a3, a3, a3, a3, a3, a3),
        "_backward_step": (int64, int64, a1, strided3, a3, a3, a3, a3, a3, lengths, flag, flag, a2, a2, a3, a3, a3),
        "_forward_persistent": (a1, int64, a3, a1, lengths, flag, flag, a3, a3, a3, a3, a3, a3),
        "_backward_persistent": (a1, int64, strided3, a3, a3, a3, a3, a3, lengths, flag, flag, a2, a2, a3, a3, a3),
        "_gemm": (a2, a2, a1, flag, a2, flag, flag),
        "_colsum": (a2, a1),
        "_transpose": (a2, a2),
        "_copy": (strided3, strided3),
        "_swap01": (a3, a3),
        "_binary": (int64, a1, a1, a1),
        "_fill": (a1, dt),
        "_count_nonfinite": (a1, lengths),
    }


class _Device:
    compute_capability = (8, 0)


@pytest.mark.parametrize("dt", [float32, float64], ids=["float32", "float64"])
def test_kernels_compile_to_ptx(dt, monkeypatch):
    import numba.cuda.dispatcher
    # device functions ask the current device for its compute capability: there is none here
    monkeypatch.setattr(numba.cuda.dispatcher, "get_current_device", lambda: _Device())
    for name, sig in signatures(dt).items():
        ptx, _ = cuda.compile_ptx(getattr(ck, name).py_func, sig, cc=(8, 0))
        if name.endswith("persistent"):
            assert "cudaCGGetIntrinsicHandle" in ptx, name      # grid sync: a cooperative launch
        if dt == float32:
            assert not re.search(r"\.f64", ptx), f"{name}: float64 arithmetic in the float32 kernel"
