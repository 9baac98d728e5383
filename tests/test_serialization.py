"""numgru.save / numgru.load: round trips, atomic writes, and a clear error naming the file for every broken file."""
import io
import json
import os
import re
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import numgru
from numgru import serialization
from numgru.serialization import ModelFileError


def models():
    return {
        "GRUModel": numgru.GRUModel(3, 5, 2, num_layers=2, output="all", bidirectional=True, seed=0),
        "GRU": numgru.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True, reset_after=False,
                          dtype="float64", seed=1),
        "GRUCell": numgru.GRUCell(3, 4, bias=False, seed=2),
        "Linear": numgru.Linear(4, 2, dtype="float64", seed=3),
    }


def run(model, x):
    y = model(x)
    return y[0] if isinstance(y, tuple) else y


@pytest.mark.parametrize("kind", list(models()))
def test_round_trip(tmp_path, kind):
    model = models()[kind]
    path = tmp_path / "model.npz"
    returned = numgru.save(path, model, metadata={"task": "unit", "scaling": {"mean": 1.5, "std": 2.0}})
    assert returned == str(path)
    loaded, meta = numgru.load(path, return_metadata=True)
    assert type(loaded) is type(model)
    assert meta == {"task": "unit", "scaling": {"mean": 1.5, "std": 2.0}}
    assert repr(loaded) == repr(model)
    for name, value in model.state_dict().items():
        assert loaded.state_dict()[name].dtype == value.dtype
        assert np.array_equal(loaded.state_dict()[name], value)
    shapes = {"GRUModel": (2, 6, 3), "GRU": (2, 6, 3), "GRUCell": (2, 3), "Linear": (2, 4)}
    x = np.random.default_rng(0).standard_normal(shapes[kind])
    np.testing.assert_array_equal(run(loaded, x), run(model, x))
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]     # no temporary file left behind


def test_numpy_values_in_metadata_become_json(tmp_path):
    meta = {"mean": np.float32(1.5), "n": np.int64(3), "window": np.arange(3)}
    path = numgru.save(tmp_path / "m.npz", numgru.Linear(2, 1, seed=0), metadata=meta)
    _, loaded = numgru.load(path, return_metadata=True)
    assert loaded == {"mean": 1.5, "n": 3, "window": [0, 1, 2]}


def test_the_file_is_a_plain_npz_with_a_versioned_header(tmp_path):
    path = numgru.save(tmp_path / "m.npz", numgru.Linear(2, 1, seed=0))
    with np.load(path, allow_pickle=False) as data:
        header = json.loads(str(data["__numgru__"]))
        assert sorted(data.files) == ["__numgru__", "param/bias", "param/weight"]
    assert header["format"] == "numgru-model" and header["version"] == serialization.FORMAT_VERSION
    assert header["kind"] == "Linear" and header["config"]["in_features"] == 2
    assert numgru.serialization.read_header(path)["params"]["weight"] == {"shape": [1, 2], "dtype": "float32"}


def test_overwrite_replaces_the_old_model(tmp_path):
    path = tmp_path / "m.npz"
    numgru.save(path, numgru.Linear(2, 1, seed=0))
    numgru.save(path, numgru.GRUCell(2, 3, seed=0))
    assert isinstance(numgru.load(path), numgru.GRUCell)


@pytest.mark.parametrize("fail_in", ["savez", "fsync", "replace"])
def test_a_crash_mid_write_keeps_the_old_file(tmp_path, monkeypatch, fail_in):
    path = tmp_path / "m.npz"
    good = numgru.Linear(3, 2, seed=0)
    numgru.save(path, good)
    before = path.read_bytes()

    class Crash(Exception):
        pass

    if fail_in == "savez":
        def partial(f, **arrays):
            f.write(b"PK\x03\x04 half a zip")            # some bytes reach the disk, then the process dies
            raise Crash()
        monkeypatch.setattr(serialization.np, "savez", partial)
    elif fail_in == "fsync":
        monkeypatch.setattr(serialization.os, "fsync", lambda fd: (_ for _ in ()).throw(Crash()))
    else:
        monkeypatch.setattr(serialization.os, "replace", lambda a, b: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        numgru.save(path, numgru.Linear(3, 2, seed=1))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert np.array_equal(numgru.load(path).state_dict()["weight"], good.state_dict()["weight"])
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "good.npz"
    numgru.save(path, numgru.GRUModel(2, 8, 1, seed=0), metadata={"task": "adding"})
    return path


def expect_error(path, match):
    with pytest.raises(ModelFileError, match=match) as info:
        numgru.load(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)
    return info.value


@pytest.mark.parametrize("keep", [0, 10, 0.5, -1, -30])
def test_truncated_file(saved, keep):
    data = saved.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else (keep if keep >= 0 else len(data) + keep)
    saved.write_bytes(data[:cut])
    expect_error(saved, "truncated or corrupted")


def test_corrupted_weights_fail_their_checksum(saved):
    data = bytearray(saved.read_bytes())
    with np.load(saved) as npz:
        weight = npz["param/gru.weight_hh_l0"]
    at = bytes(data).find(weight.tobytes()[:64])
    assert at > 0
    data[at + 40] ^= 0xFF
    saved.write_bytes(bytes(data))
    expect_error(saved, r"member 'param/gru.weight_hh_l0.npy' is corrupted \(CRC mismatch\)")


def test_garbage_and_foreign_files(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("not a model at all")
    expect_error(text, "not a readable .npz archive")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(3))
    expect_error(foreign, "was not written by numgru.save")


def write_raw(path, header, params):
    arrays = {"__numgru__": np.array(json.dumps(header))}
    arrays.update({"param/" + k: v for k, v in params.items()})
    np.savez(path, **arrays)


def good_parts(saved):
    header = serialization.read_header(saved)
    with np.load(saved) as data:
        params = {k[len("param/"):]: data[k] for k in data.files if k.startswith("param/")}
    return header, params


def test_newer_format_version(saved, tmp_path):
    header, params = good_parts(saved)
    header["version"] = serialization.FORMAT_VERSION + 1
    path = tmp_path / "future.npz"
    write_raw(path, header, params)
    expect_error(path, "format version 2 was written by a newer numgru")


def test_unknown_kind(saved, tmp_path):
    header, params = good_parts(saved)
    header["kind"] = "Transformer"
    path = tmp_path / "kind.npz"
    write_raw(path, header, params)
    expect_error(path, "unknown model kind 'Transformer'")


def test_weights_that_do_not_match_the_config(saved, tmp_path):
    header, params = good_parts(saved)
    header["config"]["hidden_size"] = 16                    # the header says 16 units, the weights have 8
    path = tmp_path / "mismatch.npz"
    write_raw(path, header, params)
    err = expect_error(path, "the weights do not match the GRUModel")
    assert "gru.weight_ih_l0" in str(err)


def test_params_missing_from_the_file(saved, tmp_path):
    header, params = good_parts(saved)
    del params["head.bias"]
    path = tmp_path / "missing.npz"
    write_raw(path, header, params)
    expect_error(path, "the header lists parameters")


def test_bad_config(saved, tmp_path):
    header, params = good_parts(saved)
    header["config"]["colour"] = "blue"
    path = tmp_path / "config.npz"
    write_raw(path, header, params)
    expect_error(path, "does not build a GRUModel")


def test_missing_file_and_unsupported_objects(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        numgru.load(tmp_path / "nope.npz")
    with pytest.raises(TypeError, match="numgru.save handles"):
        numgru.save(tmp_path / "x.npz", object())
    with pytest.raises(TypeError, match="JSON-serialisable"):
        numgru.save(tmp_path / "x.npz", numgru.Linear(2, 1), metadata={"f": object()})
    assert not os.listdir(tmp_path)


# A file must not make load allocate or decompress more than its header lists: these
# members are small on disk (deflated zeros) but declare tens of MB or GB.
BOMB_BYTES = 32 << 20


def npy_header(shape, dtype):
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                               "fortran_order": False, "shape": tuple(shape)})
    return out.getvalue()


def zeros(nbytes, chunk=1 << 20):
    while nbytes > 0:
        yield bytes(min(chunk, nbytes))
        nbytes -= chunk


def rewrite(src, dst, replace):
    """``src`` with the members named in ``replace`` swapped for the chunks given there, streamed through
    zipfile's deflating writer (nothing of their declared size is held in memory)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename not in replace:
                zout.writestr(info, zin.read(info))
                continue
            with zout.open(_deflated(info.filename), "w", force_zip64=True) as w:
                for part in replace[info.filename]:
                    w.write(part)
    return dst


def _deflated(name):
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def expect_cheap_error(path, match, load=numgru.load):
    """The error comes fast, without allocating more than a few MB, and says what is wrong."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ModelFileError) as info:
            load(path)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"loading allocated {peak / 2 ** 20:.1f} MiB before failing with {info.value}"
    assert seconds < 5.0
    assert re.search(match, str(info.value)), str(info.value)
    assert str(path) in str(info.value)
    return info.value


def test_a_member_whose_npy_header_declares_a_huge_array(saved, tmp_path):
    member = "param/gru.weight_hh_l0.npy"                   # the header lists float32 [24, 8]
    huge = rewrite(saved, tmp_path / "huge.npz", {member: [npy_header((20000, 20000), "float64"), bytes(4096)]})
    err = expect_cheap_error(huge, r"member 'param/gru.weight_hh_l0.npy' declares float64 \[20000, 20000\] "
                                   r"in its .npy header, the header lists float32 \[24, 8\]")
    bomb = rewrite(saved, tmp_path / "bomb.npz",
                   {member: [npy_header((BOMB_BYTES // 8 // 1024, 1024), "float64"), *zeros(BOMB_BYTES)]})
    assert bomb.stat().st_size < BOMB_BYTES // 100
    expect_cheap_error(bomb, r"declares float64 \[4096, 1024\] in its .npy header, the header lists float32 \[24, 8\]")
    assert "gru.weight_hh_l0" in str(err)


def test_a_member_whose_zip_size_is_larger_than_its_npy_header_says(saved, tmp_path):
    member = "param/gru.weight_hh_l0.npy"
    with np.load(saved) as data:
        good = data["param/gru.weight_hh_l0"]
    header = npy_header(good.shape, good.dtype)
    padded = rewrite(saved, tmp_path / "padded.npz", {member: [header, good.tobytes(), *zeros(BOMB_BYTES)]})
    with zipfile.ZipFile(padded) as zf:
        assert zf.getinfo(member).file_size == len(header) + good.nbytes + BOMB_BYTES
    expect_cheap_error(padded, rf"member 'param/gru.weight_hh_l0.npy' declares {len(header) + good.nbytes + BOMB_BYTES} "
                               rf"bytes uncompressed in the zip directory, but the header's float32 \[24, 8\] makes a "
                               rf".npy of {len(header) + good.nbytes} bytes")
    exact = rewrite(saved, tmp_path / "exact.npz", {member: [header, good.tobytes()]})    # deflated, right size: fine
    assert np.array_equal(numgru.load(exact).state_dict()["gru.weight_hh_l0"], good)


def test_a_header_that_declares_a_huge_text(saved, tmp_path):
    huge = rewrite(saved, tmp_path / "text.npz", {"__numgru__.npy": [npy_header((), "<U100000000"), bytes(4096)]})
    expect_cheap_error(huge, r"member '__numgru__.npy' declares a header of 400000000 bytes")
    expect_cheap_error(huge, "more than the", load=serialization.read_header)


def test_a_listing_that_agrees_with_a_huge_member_but_not_with_the_config(saved, tmp_path):
    """Editing the header to list the bomb's shape does not help: load compares the listing with
    the model the config builds before it reads any parameter."""
    header, params = good_parts(saved)
    header["params"]["gru.weight_hh_l0"] = {"shape": [BOMB_BYTES // 8 // 1024, 1024], "dtype": "float64"}
    listed = tmp_path / "listed.npz"
    write_raw(listed, header, params)
    bomb = rewrite(listed, tmp_path / "bomb.npz", {"param/gru.weight_hh_l0.npy": [
        npy_header((BOMB_BYTES // 8 // 1024, 1024), "float64"), *zeros(BOMB_BYTES)]})
    expect_cheap_error(bomb, r"the weights do not match the GRUModel its config describes: "
                             r"'gru.weight_hh_l0' is listed as \[4096, 1024\], the config builds \[24, 8\]")


def test_members_numgru_does_not_write_are_refused(saved, tmp_path):
    with zipfile.ZipFile(saved, "a") as zf:
        zf.writestr("extra.npy", b"anything")
    expect_error(saved, r"the file holds members \['extra.npy'\] that numgru.save does not write")
