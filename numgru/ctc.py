"""CTC decoding: from per-frame class scores (T, B, C) to label sequences, and how far they are from the truth.

- ``greedy_decode``: the best path (the most likely class of each frame,
  repeats merged, blanks dropped);
- ``beam_search``: CTC prefix beam search (Graves 2012, ch. 7; Hannun et al.
  2014, without a language model), which sums the probability of every
  alignment of a prefix instead of following one path;
- ``GreedyStreamDecoder``: greedy decoding of streams fed chunk by chunk;
- ``edit_distance``, ``error_rate``: Levenshtein distance over labels and the
  label (character, word) error rate of a set of transcriptions.

Every decoder returns one int64 array of labels per sequence, in a list
(an unbatched (T, C) input is one sequence: a list of one). The loss is
``numgru.losses.ctc``.
"""
import numbers

import numpy as np

from . import validation

__all__ = ["greedy_decode", "beam_search", "GreedyStreamDecoder", "edit_distance", "error_rate"]


def greedy_decode(log_probs, input_lengths=None, blank=0, batch_first=False):
    """Best-path decoding: per frame the argmax class, over each sequence's own frames, repeats merged, blanks dropped.

    log_probs: (T, B, C), (B, T, C) with ``batch_first``, or unbatched (T, C),
    float32/float64 log-probabilities or probabilities (the argmax is the same).
    input_lengths: None (all T frames) or (B,) integers in [0, T].
    Returns a list of B int64 arrays (ties go to the lowest class).
    """
    scores, lengths, blank, _ = validation.check_ctc_scores(log_probs, input_lengths, blank, batch_first)
    best = scores.argmax(axis=2)                                     # (T, B)
    return [_collapse(best[:lengths[b], b], -1, blank) for b in range(best.shape[1])]


def _collapse(path, previous, blank):
    """The labels a path emits after a frame whose class was ``previous`` (-1: none): changes, blanks dropped."""
    before = np.concatenate(([previous], path[:-1])) if path.size else path
    return path[(path != before) & (path != blank)].astype(np.int64)


def beam_search(log_probs, input_lengths=None, beam_width=8, blank=0, batch_first=False, prune=None):
    """CTC prefix beam search: the labelling whose alignments, summed, are most likely, among ``beam_width`` kept.

    log_probs: log-probabilities (T, B, C), (B, T, C) with ``batch_first``,
    or unbatched (T, C), float32/float64 (computed in float64);
    input_lengths: None (all T frames) or (B,) integers in [0, T];
    beam_width: prefixes kept after each frame (a positive integer);
    prune: None, or a log-probability: classes below it at a frame do not
    extend any prefix there (faster, maybe less exact).
    Each prefix carries the log-probability of its alignments ending in a
    blank and in its last label; at every frame each prefix stays (a blank,
    or its last label repeated) or grows by a label (a repeated label only
    after a blank), the probabilities of identical prefixes are added, and
    the ``beam_width`` most likely are kept. Unlike the best path, this can
    prefer a labelling that many alignments share (tests: two frames of
    p(blank) = 0.6 decode to "" greedily, to "a" here: 0.64 against 0.36).
    beam_width=1 follows one prefix by its summed probability, not one path,
    so it agrees with greedy decoding on peaked outputs (every frame's top
    class at least 0.9: tests) but not always. Ties keep the earlier
    candidate. Returns a list of B int64 arrays.
    """
    scores, lengths, blank, _ = validation.check_ctc_scores(log_probs, input_lengths, blank, batch_first)
    beam_width = validation.check_positive_int("beam_width", beam_width)
    if prune is not None and (isinstance(prune, (bool, np.bool_)) or not isinstance(prune, numbers.Real)):
        raise TypeError(f"prune must be None or a log-probability (a number), got {prune!r}")
    return [_beam_search_one(scores[:lengths[b], b].astype(np.float64), beam_width, blank, prune)
            for b in range(scores.shape[1])]


def _beam_search_one(lp, beam_width, blank, prune):
    """The best labelling of one sequence's log-probabilities lp (T, C) float64, as an int64 array."""
    C = lp.shape[1]
    prefixes = [()]
    p_blank = np.array([0.0])                 # log-probability of the prefix's alignments ending in a blank
    p_label = np.array([-np.inf])             # ... ending in its last label
    for frame in lp:
        total = np.logaddexp(p_blank, p_label)
        last = np.array([p[-1] if p else -1 for p in prefixes])
        has_last = last >= 0
        # Staying: a blank after anything, or the last label again (merged into it).
        stay_blank = total + frame[blank]
        stay_label = np.where(has_last, p_label + frame[np.maximum(last, 0)], -np.inf)
        # Growing by label c: after anything, except a repeat of the last label, which needs a blank between.
        grow = total[:, None] + frame[None, :]
        grow[has_last, last[has_last]] = (p_blank + frame[np.maximum(last, 0)])[has_last]
        grow[:, blank] = -np.inf
        if prune is not None:
            grow[:, frame < prune] = -np.inf
        # A prefix that is also a parent's extension gets that extension's probability (once).
        index = {p: i for i, p in enumerate(prefixes)}
        for i, p in enumerate(prefixes):
            parent = index.get(p[:-1]) if p else None
            if parent is not None:
                stay_label[i] = np.logaddexp(stay_label[i], grow[parent, p[-1]])
                grow[parent, p[-1]] = -np.inf
        score = np.concatenate((np.logaddexp(stay_blank, stay_label), grow.ravel()))
        keep = np.argsort(-score, kind="stable")[:beam_width]
        possible = keep[score[keep] > -np.inf]
        keep = possible if possible.size else keep[:1]
        new_prefixes, new_blank, new_label = [], [], []
        n = len(prefixes)
        for j in keep:
            if j < n:
                new_prefixes.append(prefixes[j])
                new_blank.append(stay_blank[j])
                new_label.append(stay_label[j])
            else:
                i, c = divmod(j - n, C)
                new_prefixes.append(prefixes[i] + (c,))
                new_blank.append(-np.inf)
                new_label.append(grow[i, c])
        prefixes, p_blank, p_label = new_prefixes, np.array(new_blank), np.array(new_label)
    return np.array(prefixes[0], np.int64)


class GreedyStreamDecoder:
    """Greedy decoding of ``batch_size`` streams, chunk by chunk: the pushes together equal ``greedy_decode``.

    ``push(chunk)`` takes the next frames of every stream, (T, B, C) (or
    (T, C) for one stream; T may be 0) log-probabilities or probabilities,
    and returns the labels they complete, one int64 array per stream: the
    argmax of the previous chunk's last frame is carried over, so a label
    split across a cut is emitted once. ``reset()`` starts every stream anew.
    """

    def __init__(self, batch_size=1, blank=0):
        self.batch_size = validation.check_positive_int("batch_size", batch_size)
        self.blank = validation.check_integer("blank", blank)
        if self.blank < 0:
            raise ValueError(f"blank must be a non-negative class index, got {self.blank}")
        self.reset()

    def reset(self):
        """Forget every stream's past: the next push starts new utterances."""
        self._previous = np.full(self.batch_size, -1, np.int64)

    def push(self, chunk):
        """The labels the frames of ``chunk`` emit, a list of one int64 array per stream."""
        arr = validation._to_numpy("chunk", chunk)
        validation.check_float_dtype("chunk", arr.dtype)
        expected = "(T, batch_size, num_classes)" + (" or (T, num_classes)" if self.batch_size == 1 else "")
        if arr.ndim == 2 and self.batch_size == 1:
            arr = arr[:, None, :]
        if arr.ndim != 3 or arr.shape[1] != self.batch_size or arr.shape[2] <= self.blank:
            raise ValueError(f"chunk must have shape {expected} with batch_size={self.batch_size} and more than "
                             f"blank={self.blank} classes, got shape {arr.shape}")
        if arr.shape[0] == 0:
            return [np.empty(0, np.int64) for _ in range(self.batch_size)]
        best = arr.argmax(axis=2)
        out = [_collapse(best[:, b], self._previous[b], self.blank) for b in range(self.batch_size)]
        self._previous = best[-1].astype(np.int64)
        return out


def edit_distance(ref, hyp):
    """The Levenshtein distance between two label sequences (insertions, deletions, substitutions, each 1): an int.

    ref, hyp: 1-D sequences of labels (lists, arrays of ints, or str).
    """
    ref, hyp = _labels("ref", ref), _labels("hyp", hyp)
    if ref.size == 0 or hyp.size == 0:
        return int(max(ref.size, hyp.size))
    steps = np.arange(hyp.size + 1)
    row = steps.copy()                                   # distances from ref[:0] to each prefix of hyp
    for i, label in enumerate(ref, start=1):
        # deletion (row + 1) and substitution (row[j-1] + differs), then insertions as a running minimum
        best = np.minimum(row[1:] + 1, row[:-1] + (hyp != label))
        best = np.concatenate(([i], best))
        row = np.minimum.accumulate(best - steps) + steps
    return int(row[-1])


def error_rate(refs, hyps):
    """The label error rate of transcriptions: sum of edit distances / total reference length, a float.

    refs, hyps: equally many label sequences (as ``edit_distance`` takes),
    the references holding at least one label in all.
    """
    refs, hyps = list(refs), list(hyps)
    if len(refs) != len(hyps):
        raise ValueError(f"refs and hyps must hold as many sequences, got {len(refs)} and {len(hyps)}")
    total = sum(_labels(f"refs[{i}]", r).size for i, r in enumerate(refs))
    if total == 0:
        raise ValueError("refs must hold at least one label in all (an error rate over nothing is undefined)")
    return sum(edit_distance(r, h) for r, h in zip(refs, hyps)) / total


def _labels(name, value):
    """A label sequence as a 1-D array (str: its characters' code points)."""
    if isinstance(value, str):
        return np.array([ord(c) for c in value], np.int64)
    arr = validation._to_numpy(name, value)
    if arr.size == 0:
        return np.empty(0, np.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a 1-D sequence of integer labels or a str, got shape {arr.shape} and "
                         f"dtype {arr.dtype.name}")
    return arr
