"""The gate functions inside the CPU kernels (kernels/cell.py compiled by kernels/cpu.py): accurate, saturating, NaN-propagating, per dtype."""
import numpy as np
import pytest
from numba import njit

from numgru.kernels.cpu import cell


@njit
def apply(values):
    t = np.empty_like(values)
    s = np.empty_like(values)
    for i in range(values.size):
        t[i] = cell.tanh(values[i])
        s[i] = cell.sigmoid(values[i])
    return t, s


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-15)])
def test_tanh_sigmoid_accuracy(dtype, tol):
    a = np.concatenate([np.linspace(-20, 20, 20001), [-1e-30, 0.0, 1e-30]]).astype(dtype)
    t, s = apply(a)
    exact = a.astype(np.float64)
    assert t.dtype == dtype and s.dtype == dtype
    assert np.max(np.abs(t - np.tanh(exact))) < tol
    assert np.max(np.abs(s - 1 / (1 + np.exp(-exact)))) < tol


def ulps(got, exact):
    """|got - exact| in units of the last place of float32 at ``exact``."""
    return np.abs(got - exact) / np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)


def test_float32_functions_in_ulps():
    """float32 tanh (Eigen's rational function) within 6 ulp (5.3 at most measured, near |x| = 5.8);
    σ(a) = (1 + tanh(a/2)) / 2 within 4 ulp where σ >= 1/4, and below that within 3 ulp of 1/2
    absolute: the sum cancels, so a small σ carries tanh's absolute error, not a relative one."""
    a = np.concatenate([np.linspace(-20, 20, 200001), np.geomspace(1e-30, 1, 2000),
                        -np.geomspace(1e-30, 1, 2000), [0.0]]).astype(np.float32)
    t, s = apply(a)
    assert t.dtype == np.float32 and s.dtype == np.float32
    exact = a.astype(np.float64)
    assert np.max(ulps(t, np.tanh(exact))) <= 6
    exact_sigmoid = 1 / (1 + np.exp(-exact))
    upper = exact_sigmoid >= 0.25
    assert np.max(ulps(s[upper], exact_sigmoid[upper])) <= 4
    assert np.max(np.abs(s - exact_sigmoid)[~upper]) <= 3 * np.spacing(np.float32(0.5))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturation_and_nan(dtype):
    a = np.array([-np.inf, -1e30, 1e30, np.inf, np.nan], dtype)
    t, s = apply(a)
    np.testing.assert_array_equal(t[:4], [-1, -1, 1, 1])
    np.testing.assert_array_equal(s[:4], [0, 0, 1, 1])
    assert np.isnan(t[4]) and np.isnan(s[4])


@njit
def exp64(values):
    out = np.empty_like(values)
    for i in range(values.size):
        out[i] = cell.exp64(values[i])
    return out


def test_float64_functions_are_exact_to_an_ulp():
    """float64 runs Cephes' exp and tanh (vectorisable, unlike libm): within an ulp or two of
    NumPy's, relative, down to tiny arguments and up to exp's overflow."""
    a = np.concatenate([np.linspace(-40, 40, 400000), np.geomspace(1e-300, 1, 3000), -np.geomspace(1e-300, 1, 3000)])
    t, s = apply(a)
    assert np.max(np.abs(t - np.tanh(a)) / np.spacing(np.abs(np.tanh(a)))) <= 1
    exact_sigmoid = 1 / (1 + np.exp(-a))
    assert np.max(np.abs(s - exact_sigmoid) / exact_sigmoid) < 6e-16
    w = np.linspace(-708.39, 709.78, 1000001)      # every normal result
    assert np.max(np.abs(exp64(w) - np.exp(w)) / np.exp(w)) < 4e-16
    specials = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 710.0, -709.0, -800.0])
    np.testing.assert_array_equal(exp64(specials), [np.inf, 0, np.nan, 1, 1, np.inf, 0, 0])
    t, _ = apply(np.array([-0.0, 1e-300, -1e-300]))
    assert np.signbit(t[0]) and t[1] == 1e-300 and t[2] == -1e-300


def test_kernel_builds_have_their_own_cache_entries(monkeypatch):
    """Numba names a cache entry after the function's qualified name: the serial and the parallel
    build of a kernel get different names, both carrying the version and a digest of the sources,
    which change when numgru's version does."""
    import numgru
    from numgru.kernels import cpu
    serial, parallel = (cpu._FORWARD[p].py_func.__qualname__ for p in (False, True))
    assert serial != parallel and "serial" in serial and "parallel" in parallel
    assert cpu._CACHE_TAG in serial and cpu._CACHE_TAG in parallel
    assert all(d._cache.__class__.__name__ != "NullCache" for d in (cpu._FORWARD[True], cpu._BACKWARD[False]))
    monkeypatch.setattr(numgru, "__version__", "99.0")
    assert cpu._cache_tag() != cpu._CACHE_TAG and "99_0" in cpu._cache_tag()
