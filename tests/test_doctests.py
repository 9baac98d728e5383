"""The ``>>>`` examples in numgru's docstrings run and print what they say (one test per module).

The modules are those of the installed package ``numgru`` (``numgru.kernels``
included, wherever it is installed from); a module whose optional dependency
is missing is skipped, any other import error fails.
"""
import doctest
import importlib
import pkgutil

import pytest

import numgru

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names():
    names = [info.name for info in pkgutil.walk_packages(numgru.__path__, "numgru.")]
    try:
        kernels = importlib.import_module("numgru.kernels")
    except ModuleNotFoundError:
        pass                                    # an import error of its own: test_import_kernels says so
    else:
        names += ["numgru.kernels"] + [info.name for info in pkgutil.walk_packages(kernels.__path__, "numgru.kernels.")]
    return ["numgru"] + sorted(set(names) - {"numgru"})


MODULES = _module_names()


def test_the_package_and_its_kernels_are_collected():
    assert {"numgru", "numgru.serialization", "numgru.kernels", "numgru.kernels.cpu"} <= set(MODULES)


def _import(name):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name is None or err.name.partition(".")[0] == "numgru":
            raise                               # numgru's own module is missing: a bug, not an optional extra
        pytest.skip(f"{name} needs {err.name!r}, which is not installed")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = _import(name)
    tests = [t for t in doctest.DocTestFinder().find(module, name) if t.examples]
    if not tests:
        pytest.skip(f"{name} has no docstring examples")
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    report = []
    for test in tests:
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)
