"""Build the speech data that ships in numgru/data/ from the copy of FSDD in ../shared/datasets/.

    python scripts/make_speech_data.py [--source ../shared/datasets/fsdd/recordings] [--out numgru/data]

writes ``fsdd_logmel.npz.xz``: the log-mel spectrograms (``numgru.audio.FSDD_SETTINGS``,
computed in float64) of the Free Spoken Digit Dataset's 3,000 recordings
``{digit}_{speaker}_{index}.wav``, in dB quantised to uint8 as q = round((dB + 100) / 0.5)
(dB = q * 0.5 - 100: code 0 is the -100 dB floor, 10 log10(amin), code 255 is +27.5 dB),
in the order (speaker, digit, index). The file is an uncompressed ``.npz`` (``np.savez``)
compressed with the standard library's lzma (xz, preset 9 | PRESET_EXTREME), holding

- ``logmel_q`` uint8 (total_frames, 40): every recording's frames, one after the other;
- ``offsets`` int64 (3001,): recording i is ``logmel_q[offsets[i]:offsets[i + 1]]``;
- ``digit`` int8 (3000,), ``speaker`` <U8 (3000,), ``index`` int16 (3000,): the take number,
  0-4 the official test split, 5-49 the training split;
- ``settings``: a 0-d str array, the JSON of FSDD_SETTINGS plus db_floor=-100 and db_step=0.5.

The script checks that no value clips, that the dequantised frames lie within 0.25 dB
of the float64 ones and that the file reads back to the arrays written, and prints
the sizes and a SHA-256 digest of the arrays (their names, dtypes, shapes and bytes; the
.npz itself stores the time it was written, so its own bytes change from run to run).
"""
import argparse
import glob
import hashlib
import io
import json
import lzma
import os
import re
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from numgru import audio  # noqa: E402  (the repository's numgru, not an installed one)

PRESET = 9 | lzma.PRESET_EXTREME
DB_FLOOR, DB_STEP = -100.0, 0.5
NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


def recordings(folder):
    """(digit, speaker, index, path) of every recording, sorted by (speaker, digit, index)."""
    rows = []
    for path in glob.glob(os.path.join(folder, "*.wav")):
        match = NAME.match(os.path.basename(path))
        if match is None:
            raise ValueError(f"{path}: not named {{digit}}_{{speaker}}_{{index}}.wav")
        rows.append((int(match[1]), match[2], int(match[3]), path))
    if not rows:
        raise ValueError(f"{folder}: no .wav recordings")
    return sorted(rows, key=lambda r: (r[1], r[0], r[2]))


def quantize(db):
    """dB (float64) -> uint8 codes; refuses values the codes cannot hold."""
    q = np.round((db - DB_FLOOR) / DB_STEP)
    if q.min() < 0 or q.max() > 255:
        raise ValueError(f"log-mel values from {db.min():.2f} to {db.max():.2f} dB do not fit the uint8 codes "
                         f"[{DB_FLOOR}, {DB_FLOOR + 255 * DB_STEP}] dB")
    return q.astype(np.uint8)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=os.path.join(os.path.dirname(ROOT), "shared", "datasets", "fsdd",
                                                         "recordings"),
                        help="folder holding FSDD's {digit}_{speaker}_{index}.wav recordings")
    parser.add_argument("--out", default=os.path.join(ROOT, "numgru", "data"), help="where the .npz.xz goes")
    args = parser.parse_args(argv)
    settings = audio.FSDD_SETTINGS
    rows = recordings(args.source)
    frames = []
    for digit, speaker, index, path in rows:
        signal, _ = audio.load(path, settings["sample_rate"], resample=False, min_samples=settings["n_fft"])
        frames.append(audio.log_mel(signal, **settings, dtype=np.float64))
    db = np.concatenate(frames)
    logmel_q = quantize(db)
    error = np.abs(audio.dequantize(logmel_q, dict(db_floor=DB_FLOOR, db_step=DB_STEP)) - db).max()
    if error > DB_STEP / 2 + 1e-4:          # + float32 rounding of the dequantised dB
        raise RuntimeError(f"the dequantised frames are {error:.4f} dB off, more than {DB_STEP / 2}")
    arrays = dict(
        logmel_q=logmel_q,
        offsets=np.concatenate([[0], np.cumsum([len(f) for f in frames])]).astype(np.int64),
        digit=np.array([r[0] for r in rows], np.int8),
        speaker=np.array([r[1] for r in rows], "<U8"),
        index=np.array([r[2] for r in rows], np.int16),
        settings=np.array(json.dumps(dict(settings, db_floor=DB_FLOOR, db_step=DB_STEP))),
    )
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    packed = lzma.compress(data, preset=PRESET)
    with np.load(io.BytesIO(lzma.decompress(packed))) as back:
        for key, value in arrays.items():
            if back[key].dtype != value.dtype or not np.array_equal(back[key], value):
                raise RuntimeError(f"{key}: the file does not read back to what was written")
    path = os.path.join(args.out, "fsdd_logmel.npz.xz")
    with open(path, "wb") as f:
        f.write(packed)
    print(f"{len(rows)} recordings, {len(db):,} frames, dB from {db.min():.2f} to {db.max():.2f}, "
          f"quantisation error at most {error:.4f} dB")
    print(f"{os.path.relpath(path, ROOT)}: {len(data):,} bytes -> {len(packed):,} bytes xz, "
          f"SHA-256 of the arrays {digest(arrays)}")


def digest(arrays):
    """SHA-256 of named arrays: name, dtype, shape and C-order bytes of each, in order."""
    h = hashlib.sha256()
    for key, value in arrays.items():
        h.update(f"{key}:{value.dtype.str}:{value.shape}:".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


if __name__ == "__main__":
    main()
