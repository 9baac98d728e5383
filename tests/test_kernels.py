"""The gate functions inside the CPU kernels: accurate, saturating, NaN-propagating, per dtype."""
import numpy as np
import pytest
from numba import njit

from numgru.kernels.cpu import _sigmoid, _tanh


@njit
def apply(values):
    t = np.empty_like(values)
    s = np.empty_like(values)
    for i in range(values.size):
        t[i] = _tanh(values[i])
        s[i] = _sigmoid(values[i])
    return t, s


@pytest.mark.parametrize("dtype, tol", [(np.float32, 4e-7), (np.float64, 1e-15)])
def test_tanh_sigmoid_accuracy(dtype, tol):
    a = np.concatenate([np.linspace(-20, 20, 20001), [-1e-30, 0.0, 1e-30]]).astype(dtype)
    t, s = apply(a)
    exact = a.astype(np.float64)
    assert t.dtype == dtype and s.dtype == dtype
    assert np.max(np.abs(t - np.tanh(exact))) < tol
    assert np.max(np.abs(s - 1 / (1 + np.exp(-exact)))) < tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturation_and_nan(dtype):
    a = np.array([-np.inf, -1e30, 1e30, np.inf, np.nan], dtype)
    t, s = apply(a)
    np.testing.assert_array_equal(t[:4], [-1, -1, 1, 1])
    np.testing.assert_array_equal(s[:4], [0, 0, 1, 1])
    assert np.isnan(t[4]) and np.isnan(s[4])
