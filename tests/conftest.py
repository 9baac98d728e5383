"""Shared fixtures. The tests import the installed numgru (``--import-mode=importlib``)
and the slow reference from this folder.

``device``: the devices the device-generic tests run on. By default "cpu", plus
"cuda" where a real GPU works; ``NUMGRU_TEST_DEVICES=cuda`` (or "cpu,cuda")
overrides it. tests/test_cuda.py uses that to rerun them under the CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``) in a subprocess, where
``NUMGRU_TEST_STRIDE=k`` keeps every k-th case of each parametrised test, so
that the simulated run stays short.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
if SIMULATOR:
    # The simulator runs one Python thread per CUDA thread and polls them at
    # barriers; a short GIL switch interval makes those barriers ~4x faster.
    sys.setswitchinterval(1e-4)


def _test_devices():
    chosen = os.environ.get("NUMGRU_TEST_DEVICES", "").strip()
    if chosen:
        return [d.strip() for d in chosen.split(",") if d.strip()]
    import numgru.devices
    return ["cpu", "cuda"] if numgru.devices.gpu_available() else ["cpu"]


DEVICES = _test_devices()


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: tests of the CUDA backend (skipped where CUDA cannot run)")


def pytest_collection_modifyitems(config, items):
    """Without "cpu" among the devices, keep only the device-generic and CUDA tests;
    with NUMGRU_TEST_STRIDE=k, keep about one case in k of each device-generic test
    (at least two), evenly spread over its parametrisation."""
    stride = int(os.environ.get("NUMGRU_TEST_STRIDE", "1") or 1)
    groups = {}
    for item in items:
        if "device" in getattr(item, "fixturenames", ()) and item.get_closest_marker("cuda") is None:
            groups.setdefault((str(item.fspath), getattr(item, "originalname", item.name)), []).append(item)
    chosen = set()
    for group in groups.values():
        n = len(group)
        k = n if stride <= 1 else max(min(n, 2), -(-n // stride))
        chosen.update(id(group[i * n // k]) for i in range(k))
    keep, drop = [], []
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            keep.append(item)
        elif "device" not in getattr(item, "fixturenames", ()):
            (keep if "cpu" in DEVICES else drop).append(item)
        else:
            (keep if id(item) in chosen else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True)
def _parallel_cpu_kernels(monkeypatch):
    """The tests use tiny shapes, which the CPU dispatch would run on one thread:
    send them through the parallel builds (the harder path). Tests of the serial
    build raise the threshold themselves."""
    import numgru.config
    monkeypatch.setattr(numgru.config, "PARALLEL_MIN_REGION_WORK", 0)


CPU_PLANS = {
    # name: values of numgru.config's PARALLEL_MIN_REGION_WORK, BATCH_SPLIT_ALWAYS_MAX_H,
    # BATCH_SPLIT_MIN_BLOCK, BATCH_SPLIT_MAX_WEIGHT_BYTES
    "parallel-batches": (0, 1 << 30, 0, 1 << 62),
    "parallel-units": (0, 0, 1 << 30, 0),
    "serial": (1 << 62, 0, 1 << 30, 0),
}
CPU_PLAN_SETTINGS = ("PARALLEL_MIN_REGION_WORK", "BATCH_SPLIT_ALWAYS_MAX_H", "BATCH_SPLIT_MIN_BLOCK",
                     "BATCH_SPLIT_MAX_WEIGHT_BYTES")


@pytest.fixture(params=list(CPU_PLANS))
def cpu_plan(request, monkeypatch):
    """Every way the CPU kernels can run a recurrence (kernels/cpu.py): the parallel build
    in blocks of sequences or of hidden units, or the serial build. Gives the plan's name."""
    import numgru.config
    for name, value in zip(CPU_PLAN_SETTINGS, CPU_PLANS[request.param]):
        monkeypatch.setattr(numgru.config, name, value)
    return request.param
