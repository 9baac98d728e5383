"""Save and load trained models: one ``.npz`` file holding a versioned header (JSON) and the weights.

    >>> import numgru, tempfile, os
    >>> model = numgru.GRUModel(2, 8, 1, seed=0)
    >>> path = numgru.save(os.path.join(tempfile.mkdtemp(), "model.npz"), model, metadata={"task": "adding"})
    >>> same = numgru.load(path)
    >>> sorted(same.state_dict()) == sorted(model.state_dict())
    True

Layout of the file (a plain NumPy ``.npz``, readable with ``np.load(path)``
and no pickling): ``__numgru__`` is a JSON string with the format name and
version, the model's class and constructor arguments, the parameter names,
shapes and dtypes, and free-form metadata; each parameter is stored as
``param/<name>``. The write is atomic: the file is written to a temporary
file in the same directory, flushed to disk, then renamed over the target,
so a crash mid-write leaves either the old file or the new one, never a
broken one. Reading checks every member's CRC and raises ``ModelFileError``
(a ``ValueError``) naming the file for a truncated, corrupted, foreign or
mismatched file.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

__all__ = ["save", "load", "read_header", "ModelFileError", "FORMAT", "FORMAT_VERSION"]

FORMAT = "numgru-model"
FORMAT_VERSION = 1
HEADER_KEY = "__numgru__"
PARAM_PREFIX = "param/"


class ModelFileError(ValueError):
    """A model file that cannot be read back: truncated, corrupted, not numgru's, or not matching its config."""

    def __init__(self, path, problem):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"cannot load numgru model from {self.path!r}: {problem}")


def _numgru_version():
    from . import __version__
    return __version__


def _model_classes():
    from .gru import GRU, GRUCell
    from .linear import Linear
    from .models import GRUModel
    return {"GRU": GRU, "GRUCell": GRUCell, "Linear": Linear, "GRUModel": GRUModel}


def _config_of(model):
    """Constructor arguments that rebuild ``model`` (without device and seed)."""
    if hasattr(model, "config") and callable(model.config):
        return model.config()
    kind = type(model).__name__
    if kind == "GRU":
        return dict(input_size=model.input_size, hidden_size=model.hidden_size, num_layers=model.num_layers,
                    bias=model.bias, batch_first=model.batch_first, dropout=model.dropout,
                    bidirectional=model.bidirectional, reset_after=model.reset_after, dtype=model.dtype.name)
    if kind == "GRUCell":
        return dict(input_size=model.input_size, hidden_size=model.hidden_size, bias=model.bias,
                    reset_after=model.reset_after, dtype=model.dtype.name)
    raise TypeError(f"numgru.save handles {sorted(_model_classes())}, got {kind}")


def save(path, model, metadata=None):
    """Write ``model`` (class, config, weights) and JSON-serialisable ``metadata`` to ``path``, atomically.

    ``path`` is used exactly as given (no suffix is added); its directory must
    exist. Returns the path as a string.
    """
    kind = type(model).__name__
    if kind not in _model_classes():
        raise TypeError(f"numgru.save handles {sorted(_model_classes())}, got {kind}")
    path = os.fspath(path)
    params = model.state_dict()
    header = dict(format=FORMAT, version=FORMAT_VERSION, numgru_version=_numgru_version(), kind=kind,
                  config=_config_of(model),
                  params={name: dict(shape=list(value.shape), dtype=value.dtype.name)
                          for name, value in params.items()},
                  metadata={} if metadata is None else metadata)
    try:
        header_json = json.dumps(header, allow_nan=True, default=_json_default)
    except (TypeError, ValueError) as err:
        raise TypeError(f"metadata must be JSON-serialisable (dicts, lists, strings, numbers): {err}") from None
    arrays = {HEADER_KEY: np.array(header_json)}
    arrays.update({PARAM_PREFIX + name: value for name, value in params.items()})

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)
    return path


def _json_default(value):
    """NumPy scalars and arrays in metadata become Python numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read(path):
    """(header dict, {name: array}) from a model file, or ModelFileError."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no numgru model file at {path!r}")
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()          # reads every member and checks its CRC-32
            if bad is not None:
                raise ModelFileError(path, f"member {bad!r} is corrupted (CRC mismatch)")
            names = zf.namelist()
    except (ModelFileError, PermissionError, IsADirectoryError):
        raise
    except Exception as err:    # BadZipFile, EOFError, OSError, struct and decoding errors of a damaged archive
        raise ModelFileError(path, f"not a readable .npz archive, the file is truncated or corrupted ({err})") from None
    if HEADER_KEY + ".npy" not in names:
        raise ModelFileError(path, f"no {HEADER_KEY!r} header: this .npz was not written by numgru.save")
    try:
        with np.load(path, allow_pickle=False) as data:
            header_json = str(data[HEADER_KEY][()])
            arrays = {key[len(PARAM_PREFIX):]: data[key] for key in data.files if key.startswith(PARAM_PREFIX)}
    except Exception as err:    # a member that passed its CRC but is not a valid .npy
        raise ModelFileError(path, f"a member could not be read ({type(err).__name__}: {err})") from None
    try:
        header = json.loads(header_json)
    except ValueError as err:
        raise ModelFileError(path, f"the header is not valid JSON ({err})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(path, f"the header does not name the {FORMAT!r} format")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelFileError(path, f"the header's format version is {version!r}, not an integer")
    if version > FORMAT_VERSION:
        raise ModelFileError(path, f"format version {version} was written by a newer numgru "
                                   f"({header.get('numgru_version')}); this numgru ({_numgru_version()}) reads up to "
                                   f"version {FORMAT_VERSION}: upgrade numgru")
    if version < 1:
        raise ModelFileError(path, f"unknown format version {version}")
    for key in ("kind", "config", "params", "metadata"):
        if key not in header:
            raise ModelFileError(path, f"the header has no {key!r} entry")
    listed = header["params"]
    if not isinstance(listed, dict) or set(listed) != set(arrays):
        names = sorted(listed) if isinstance(listed, dict) else listed
        raise ModelFileError(path, f"the header lists parameters {names} but the file holds {sorted(arrays)}")
    for name, info in listed.items():
        if list(arrays[name].shape) != info.get("shape") or arrays[name].dtype.name != info.get("dtype"):
            raise ModelFileError(path, f"parameter {name!r} is {arrays[name].dtype.name} {list(arrays[name].shape)}, "
                                       f"the header says {info.get('dtype')} {info.get('shape')}")
    return header, arrays


def read_header(path):
    """The checked header of a model file: format, version, kind, config, params, metadata."""
    return _read(path)[0]


def load(path, device="auto", return_metadata=False):
    """Rebuild the model saved at ``path`` (same class, config and weights) on ``device``.

    With ``return_metadata=True`` returns (model, metadata). Raises
    ``FileNotFoundError`` for a missing file and ``ModelFileError`` (a
    ``ValueError`` naming the file) for anything unreadable or inconsistent.
    """
    header, arrays = _read(path)
    classes = _model_classes()
    kind = header["kind"]
    if kind not in classes:
        raise ModelFileError(path, f"unknown model kind {kind!r}; this numgru knows {sorted(classes)}")
    config = header["config"]
    if not isinstance(config, dict):
        raise ModelFileError(path, f"the config is {type(config).__name__}, not a mapping")
    try:
        model = classes[kind](**config, device=device)
    except (TypeError, ValueError) as err:
        raise ModelFileError(path, f"its config {config} does not build a {kind}: {err}") from None
    try:
        model.load_state_dict(arrays)
    except (TypeError, ValueError) as err:
        raise ModelFileError(path, f"the weights do not match the {kind} its config describes: {err}") from None
    if return_metadata:
        return model, header["metadata"]
    return model
