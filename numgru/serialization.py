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
broken one. Reading checks every member's CRC-32 and raises ``ModelFileError``
(a ``ValueError``) naming the file for a truncated, corrupted, foreign or
mismatched file. Nothing is decompressed beyond what the header lists: each
member's size in the zip directory and its ``.npy`` header must match the
listed shape and dtype (and the model its config builds) before its data is
read, and reading stops at that size.
"""
import collections
import contextlib
import json
import math
import os
import tempfile
import zipfile

import numpy as np

__all__ = ["save", "load", "read_header", "ModelFileError", "FORMAT", "FORMAT_VERSION"]

FORMAT = "numgru-model"
FORMAT_VERSION = 1
HEADER_KEY = "__numgru__"
PARAM_PREFIX = "param/"
HEADER_MAX_BYTES = 16 << 20     # the JSON header (config, listing, metadata); numgru's own are a few kB
READ_CHUNK = 1 << 20           # bytes decompressed per read of a parameter


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
    from .attention import Attention
    from .seq2seq import Seq2Seq
    from .embedding import Embedding
    from .gru import GRU, GRUCell
    from .linear import Linear
    from .language_model import LanguageModel
    from .models import GRUModel
    from .text_classifier import TextClassifierModel
    from .speech import CTCModel, SpeechClassifierModel
    return {"GRU": GRU, "GRUCell": GRUCell, "Linear": Linear, "Embedding": Embedding, "Attention": Attention,
            "Seq2Seq": Seq2Seq, "GRUModel": GRUModel,
            "LanguageModel": LanguageModel, "TextClassifierModel": TextClassifierModel,
            "SpeechClassifierModel": SpeechClassifierModel, "CTCModel": CTCModel}


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

    _write_npz_atomically(path, arrays)
    return path


def _write_npz_atomically(path, arrays):
    """``np.savez(path, **arrays)`` through a temporary file in the same directory, flushed to disk and renamed
    over ``path``: a crash leaves the old file or the new one, never a broken one (model files, checkpoints)."""
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


@contextlib.contextmanager
def _archive_errors(path):
    """The errors of a damaged archive (BadZipFile, EOFError, zlib, struct and decoding errors) as ModelFileError."""
    try:
        yield
    except (ModelFileError, PermissionError, IsADirectoryError):
        raise
    except Exception as err:
        raise ModelFileError(path, f"not a readable .npz archive, the file is truncated or corrupted ({err})") from None


@contextlib.contextmanager
def _crc_errors(path, info):
    """zipfile's CRC-32 check of ``info`` failing (at the end of the member, or of a small one's first read)."""
    try:
        yield
    except zipfile.BadZipFile as err:
        if "CRC" not in str(err):
            raise
        raise ModelFileError(path, f"member {info.filename!r} is corrupted (CRC mismatch)") from None


def _npy_header(path, zf, info):
    """(shape, fortran_order, dtype, header bytes) of a ``.npy`` member, reading its header only."""
    with _crc_errors(path, info), zf.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                problem = f"is a .npy of format version {version[0]}.{version[1]}; numgru reads 1.0 and 2.0"
            else:
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran_order, dtype = read(f)
                return shape, fortran_order, dtype, f.tell()
        except ValueError as err:       # no .npy magic, or a header that does not parse
            problem = f"is not a valid .npy ({err})"
    raise ModelFileError(path, f"member {info.filename!r} {problem}")


def _check_size(path, info, offset, nbytes, what):
    """The zip directory's uncompressed size of a member must be its .npy header plus exactly ``nbytes``."""
    if info.file_size != offset + nbytes:
        raise ModelFileError(path, f"member {info.filename!r} declares {info.file_size} bytes uncompressed in the zip "
                                   f"directory, but {what} makes a .npy of {offset + nbytes} bytes "
                                   f"({offset} of .npy header and {nbytes} of data)")


def _read_data(path, zf, info, shape, fortran_order, dtype, offset):
    """The array of a member whose sizes were checked: reads its ``.npy`` header and data and no byte more."""
    flat = np.empty(math.prod(shape), dtype)
    raw = memoryview(flat.view(np.uint8))
    with _crc_errors(path, info), zf.open(info) as f:
        f.read(offset)
        got = 0
        while got < len(raw):
            n = f.readinto(raw[got:got + READ_CHUNK])
            if not n:
                raise ModelFileError(path, f"member {info.filename!r} ends after {got} of its {len(raw)} bytes of data")
            got += n
        f.read(1)                       # at the end of the member: zipfile checks its CRC-32 here
    if fortran_order:
        return flat.reshape(shape[::-1]).T
    return flat.reshape(shape)


def _members(path, zf):
    """(header ZipInfo, {parameter name: ZipInfo}) from the zip directory alone, nothing read."""
    header_member = HEADER_KEY + ".npy"
    names = collections.Counter(info.filename for info in zf.infolist())
    twice = sorted(name for name, count in names.items() if count > 1)
    if twice:
        raise ModelFileError(path, f"members {twice} appear more than once in the archive")
    if header_member not in names:
        raise ModelFileError(path, f"no {HEADER_KEY!r} header: this .npz was not written by numgru.save")
    params, unexpected = {}, []
    for info in zf.infolist():
        if info.filename.startswith(PARAM_PREFIX) and info.filename.endswith(".npy"):
            params[info.filename[len(PARAM_PREFIX):-len(".npy")]] = info
        elif info.filename != header_member:
            unexpected.append(info.filename)
    if unexpected:
        raise ModelFileError(path, f"the file holds members {unexpected} that numgru.save does not write")
    return zf.getinfo(header_member), params


def _header_text(path, zf, info):
    """The JSON text of the header member, its declared sizes checked before it is read."""
    shape, fortran_order, dtype, offset = _npy_header(path, zf, info)
    if shape != () or dtype.kind != "U":
        raise ModelFileError(path, f"member {info.filename!r} declares {dtype.str} {list(shape)} in its .npy header, "
                                   f"not the text scalar numgru.save writes")
    if dtype.itemsize > HEADER_MAX_BYTES:
        raise ModelFileError(path, f"member {info.filename!r} declares a header of {dtype.itemsize} bytes ({dtype.str}), "
                                   f"more than the {HEADER_MAX_BYTES} numgru reads")
    _check_size(path, info, offset, dtype.itemsize, f"its .npy header's {dtype.str} text scalar")
    return str(_read_data(path, zf, info, shape, fortran_order, dtype, offset)[()])


def _check_header(path, header_json):
    """The parsed header, with its format, version, entries and parameter listing checked."""
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
    if not isinstance(listed, dict):
        raise ModelFileError(path, f"the header lists parameters as {type(listed).__name__}, not a mapping")
    for name, info in listed.items():
        shape = info.get("shape") if isinstance(info, dict) else None
        if (not isinstance(shape, list) or not isinstance(info.get("dtype"), str)
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
            raise ModelFileError(path, f"the header's entry for parameter {name!r} is {info!r}, "
                                       f"not {{'shape': [sizes], 'dtype': name}}")
    return header


def _read(path, prepare=None):
    """(header dict, {name: array}, prepare(header) or None) from a model file, or ModelFileError.

    Nothing is decompressed beyond what the header lists: before any data is
    read, each parameter member's .npy header must give the listed shape and
    dtype and its size in the zip directory must be that .npy header plus
    exactly prod(shape) * itemsize bytes; reads stop there. ``prepare`` (load
    builds the model and checks the listed shapes against it) runs on the
    checked header before any parameter is read.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no numgru model file at {path!r}")
    with _archive_errors(path):
        zf = zipfile.ZipFile(path)
    with zf:
        with _archive_errors(path):
            header_info, members = _members(path, zf)
            header_json = _header_text(path, zf, header_info)
        header = _check_header(path, header_json)
        listed = header["params"]
        if set(listed) != set(members):
            raise ModelFileError(path, f"the header lists parameters {sorted(listed)} but the file holds {sorted(members)}")
        prepared = None if prepare is None else prepare(header)
        with _archive_errors(path):
            declared = {}
            for name, info in members.items():
                shape, fortran_order, dtype, offset = _npy_header(path, zf, info)
                want = f"{listed[name]['dtype']} {listed[name]['shape']}"
                if dtype.hasobject or list(shape) != listed[name]["shape"] or dtype.name != listed[name]["dtype"]:
                    raise ModelFileError(path, f"parameter {name!r}: member {info.filename!r} declares {dtype.name} "
                                               f"{list(shape)} in its .npy header, the header lists {want}")
                _check_size(path, info, offset, math.prod(shape) * dtype.itemsize, f"the header's {want}")
                declared[name] = (shape, fortran_order, dtype, offset)
            arrays = {name: _read_data(path, zf, members[name], *declared[name]) for name in members}
    return header, arrays, prepared


def read_header(path):
    """The checked header of a model file: format, version, kind, config, params, metadata."""
    return _read(path)[0]


def _build(path, header, device):
    """The model the header's kind and config describe, on ``device``, its parameter shapes checked against the listing."""
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
    listed = {name: info["shape"] for name, info in header["params"].items()}
    builds = {name: list(value.shape) for name, value in model.parameters().items()}
    if listed != builds:
        differences = [f"{name!r} is listed as {listed.get(name, 'absent')}, the config builds {builds.get(name, 'none')}"
                       for name in sorted(set(listed) | set(builds)) if listed.get(name) != builds.get(name)]
        explain = getattr(model, "explain_shapes", None)      # a model's own words for it (a vocabulary's size)
        because = "" if explain is None else explain(listed)
        raise ModelFileError(path, f"{because}the weights do not match the {kind} its config describes: "
                                   f"{'; '.join(differences)}")
    return model


def load(path, device="auto", return_metadata=False):
    """Rebuild the model saved at ``path`` (same class, config and weights) on ``device``.

    With ``return_metadata=True`` returns (model, metadata). Raises
    ``FileNotFoundError`` for a missing file and ``ModelFileError`` (a
    ``ValueError`` naming the file) for anything unreadable or inconsistent.
    """
    header, arrays, model = _read(path, prepare=lambda header: _build(path, header, device))
    try:
        model.load_state_dict(arrays)
    except (TypeError, ValueError) as err:
        raise ModelFileError(path, f"the weights do not match the {header['kind']} its config describes: {err}") from None
    if return_metadata:
        return model, header["metadata"]
    return model
