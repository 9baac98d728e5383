"""Connected digits as real audio: FSDD test recordings joined in the waveform, transcribed by a saved model.

The digit-strings task joins recordings at the level of their log-mel frames;
this script checks that a model trained there hears the same strings made the
way a person would make them: the WAV samples of 1-7 test recordings (takes
0-4, never trained on) joined by 100-300 ms of white noise at -70 to -50 dBFS,
written as WAV files and read back through ``model.transcribe`` (the same
path as ``python -m numgru transcribe``). Prints the digit error rate.

    python scripts/digit_strings_wav.py runs/digit-strings.npz --count 100 --out /tmp/strings
"""
import argparse
import glob
import os

import numpy as np
from scipy.io import wavfile

import numgru
from numgru import ctc

RATE = 8000


def make_strings(recordings, count, out, seed):
    """Write ``count`` WAV strings of test recordings to ``out``; returns (paths, digit lists)."""
    files = sorted(f for f in glob.glob(os.path.join(recordings, "*.wav"))
                   if int(os.path.basename(f)[:-4].rsplit("_", 1)[1]) < 5)
    if not files:
        raise SystemExit(f"no FSDD test recordings (takes 0-4) in {recordings}")
    rng = np.random.default_rng(seed)
    os.makedirs(out, exist_ok=True)
    paths, refs = [], []
    for k in range(count):
        picks = rng.choice(files, int(rng.integers(1, 8)))
        level = 10 ** (rng.uniform(-70, -50) / 20)
        parts = [rng.normal(0, level, int(rng.integers(400, 1200)))]
        for name in picks:
            parts += [wavfile.read(name)[1] / 32768.0, rng.normal(0, level, int(rng.integers(800, 2400)))]
        signal = np.concatenate(parts)
        path = os.path.join(out, f"string-{k:03d}.wav")
        wavfile.write(path, RATE, np.clip(signal * 32767, -32768, 32767).astype(np.int16))
        paths.append(path)
        refs.append([int(os.path.basename(name)[0]) for name in picks])
    return paths, refs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a CTCModel saved by `python -m numgru train --task digit-strings`")
    parser.add_argument("--recordings", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                             "datasets", "fsdd", "recordings"))
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--out", default="digit-strings-wav")
    parser.add_argument("--beam", type=int, default=None, help="prefix beam search of this width (default greedy)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    model = numgru.load(args.model)
    if not isinstance(model, numgru.CTCModel):
        raise SystemExit(f"{args.model} holds a {type(model).__name__}, not a CTCModel")
    paths, refs = make_strings(args.recordings, args.count, args.out, args.seed)
    hyps = [[int(label) for label in heard] for heard in model.transcribe(paths, beam_width=args.beam)]
    exact = sum(h == r for h, r in zip(hyps, refs))
    print(f"{len(paths)} WAV strings ({sum(map(len, refs))} digits) in {args.out}: digit error rate "
          f"{ctc.error_rate(refs, hyps):.4f}, {exact} strings exact")


if __name__ == "__main__":
    main()
