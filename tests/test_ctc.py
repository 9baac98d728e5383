"""numgru.losses.ctc against its definition, a slow float64 reference, torch and finite differences;
the decoders of numgru.ctc on hand-made probabilities."""
import itertools

import numba
import numpy as np
import pytest

from numgru import ctc, losses
from reference import assert_close


# ------------------------------------------------------------------------------ references

def collapse(path, blank=0):
    """The labelling of an alignment: repeats merged, then blanks dropped."""
    merged = [c for i, c in enumerate(path) if i == 0 or c != path[i - 1]]
    return [c for c in merged if c != blank]


def brute_force_ctc(lp, target, blank=0):
    """(loss, grad) of one sequence by the definition: every one of the C^T alignments enumerated.

    lp (T, C) float64 (any values: they are log-weights); grad = d(-log p)/dlp.
    """
    T, C = lp.shape
    total = 0.0
    weight = np.zeros((T, C))
    for path in itertools.product(range(C), repeat=T):
        if collapse(path, blank) == list(target):
            p = np.exp(lp[np.arange(T), path].sum())
            total += p
            weight[np.arange(T), path] += p
    if total == 0.0:
        return np.inf, None
    return -np.log(total), -weight / total


def reference_ctc(lp, target, blank=0):
    """(loss, grad) of one sequence: Graves' alpha-beta in log space, pure NumPy, every state every frame."""
    T, C = lp.shape
    ext = [blank]
    for c in target:
        ext += [int(c), blank]
    L = len(ext)

    def allowed(s):   # the states state s may come from
        prev = [s, s - 1]
        if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
            prev.append(s - 2)
        return [p for p in prev if p >= 0]

    alpha = np.full((T, L), -np.inf)
    alpha[0, 0] = lp[0, ext[0]]
    if L > 1:
        alpha[0, 1] = lp[0, ext[1]]
    for t in range(1, T):
        for s in range(L):
            alpha[t, s] = np.logaddexp.reduce([alpha[t - 1, p] for p in allowed(s)]) + lp[t, ext[s]]
    beta = np.full((T, L), -np.inf)   # beta includes the emission at t, as Graves'
    beta[T - 1, L - 1] = lp[T - 1, ext[L - 1]]
    if L > 1:
        beta[T - 1, L - 2] = lp[T - 1, ext[L - 2]]
    for t in range(T - 2, -1, -1):
        for s in range(L):
            nxt = [n for n in range(s, min(L, s + 3)) if s in allowed(n)]
            beta[t, s] = np.logaddexp.reduce([beta[t + 1, n] for n in nxt]) + lp[t, ext[s]]
    log_p = np.logaddexp.reduce(alpha[T - 1, max(0, L - 2):])
    if log_p == -np.inf:
        return np.inf, None
    grad = np.zeros((T, C))
    for t in range(T):
        for s in range(L):
            grad[t, ext[s]] -= np.exp(alpha[t, s] + beta[t, s] - lp[t, ext[s]] - log_p)
    return -log_p, grad


def log_softmax(x):
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def random_case(rng, T, B, C, S, min_target=0, normalised=True):
    """(log_probs (T, B, C), targets (B, S) without blank, input_lengths, target_lengths) that can align."""
    x = rng.standard_normal((T, B, C)) * 2
    lp = log_softmax(x) if normalised else x
    targets = rng.integers(1, C, (B, S))
    target_lengths = rng.integers(min_target, S + 1, B)
    input_lengths = np.empty(B, np.int64)
    for b in range(B):
        tgt = targets[b, :target_lengths[b]]
        need = len(tgt) + int(np.sum(tgt[1:] == tgt[:-1]))
        input_lengths[b] = rng.integers(max(need, 1), T + 1)
    return lp, targets, input_lengths, target_lengths


def reference_batch(lp, targets, input_lengths, target_lengths, reference=reference_ctc):
    """Per-sequence losses (B,) and gradients (T, B, C) of the loss sum, frames past each length 0."""
    T, B, C = lp.shape
    out = np.zeros(B)
    grad = np.zeros((T, B, C))
    for b in range(B):
        Tb = input_lengths[b]
        out[b], g = reference(lp[:Tb, b], targets[b, :target_lengths[b]])
        grad[:Tb, b] = g
    return out, grad


def torch_ctc(lp, targets, input_lengths, target_lengths, reduction="mean", zero_infinity=False, blank=0):
    """torch's (loss, raw gradient of lp, gradient of the logits x with lp = log_softmax(x))."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = torch.tensor(lp, requires_grad=True)                 # lp is already a log_softmax: its own logits
    lpt = x.log_softmax(-1)
    lpt.retain_grad()
    loss = F.ctc_loss(lpt, torch.tensor(targets), torch.tensor(input_lengths), torch.tensor(target_lengths),
                      blank=blank, reduction=reduction, zero_infinity=zero_infinity)
    loss.sum().backward()
    return loss.detach().numpy(), lpt.grad.numpy(), x.grad.numpy()


def weights(reduction, target_lengths):
    B = len(target_lengths)
    if reduction == "mean":
        return 1.0 / (np.maximum(target_lengths, 1) * B)
    return np.ones(B)


def logits_grad(lp, dlp):
    """The gradient of the logits x through lp = log_softmax(x): dlp - softmax * sum(dlp)."""
    return dlp - np.exp(lp) * dlp.sum(-1, keepdims=True)


# ------------------------------------------------------------------------------ the loss

def test_reference_is_the_definition():
    rng = np.random.default_rng(0)
    for target in ([1], [1, 1], [1, 2, 1], [], [2, 2, 2]):
        for T in (1, 3, 5, 6):
            lp = rng.standard_normal((T, 3))              # unnormalised log-weights: the formulas do not care
            expected, expected_grad = brute_force_ctc(lp, target)
            loss, grad = reference_ctc(lp, target)
            if expected == np.inf:
                assert loss == np.inf
                continue
            assert abs(loss - expected) <= 1e-12 * abs(expected) + 1e-12
            assert_close(grad, expected_grad, 1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_matches_the_definition_unnormalised(seed):
    rng = np.random.default_rng(seed)
    lp, targets, il, tl = random_case(rng, 6, 5, 3, 3, normalised=False)
    loss, grad = losses.ctc(lp, targets, il, tl, reduction="none")
    exp_loss, exp_grad = reference_batch(lp, targets, il, tl, brute_force_ctc)
    assert_close(loss, exp_loss, 1e-12)
    assert_close(grad, exp_grad, 1e-12)


CASES = {
    "random": dict(T=30, B=6, C=6, S=8),
    "repeats": dict(T=20, B=4, C=2, S=6),          # one non-blank label: every neighbour a repeat
    "long": dict(T=120, B=3, C=29, S=40),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference_and_torch_float64(case, reduction):
    rng = np.random.default_rng(sorted(CASES).index(case))
    lp, targets, il, tl = random_case(rng, **CASES[case])
    tl[0] = 0                                      # an empty target
    il[0] = rng.integers(1, lp.shape[0] + 1)
    loss, grad = losses.ctc(lp, targets, il, tl, reduction=reduction)
    assert grad.dtype == np.float64 and grad.shape == lp.shape
    per_seq, ref_grad = reference_batch(lp, targets, il, tl)
    w = weights(reduction, tl)
    expected = {"none": per_seq, "sum": per_seq.sum(), "mean": (per_seq / np.maximum(tl, 1)).mean()}[reduction]
    assert_close(loss, expected, 1e-10)
    assert_close(grad, ref_grad * w[None, :, None], 1e-10)
    t_loss, t_raw, t_logits = torch_ctc(lp, targets, il, tl, reduction)
    assert_close(loss, t_loss, 1e-10)
    frames = (np.arange(lp.shape[0])[:, None] < il)[:, :, None]
    assert_close(grad + np.where(frames, np.exp(lp), 0) * w[None, :, None], t_raw, 1e-10)
    assert_close(logits_grad(lp, grad), t_logits, 1e-10)
    assert np.all(grad[~frames[:, :, 0]] == 0)


def test_shortest_input_that_fits():
    # T = S + repeats: exactly one alignment (blanks only between the repeats).
    lp = log_softmax(np.random.default_rng(1).standard_normal((6, 1, 4)))
    targets = np.array([[1, 1, 2, 2]])
    loss, grad = losses.ctc(lp, targets, [6], [4], reduction="sum")
    path = [1, 0, 1, 2, 0, 2]
    assert_close(loss, -lp[np.arange(6), 0, path].sum(), 1e-12)
    expected = np.zeros_like(lp)
    expected[np.arange(6), 0, path] = -1
    assert_close(grad, expected, 1e-12)
    t_loss, _, t_logits = torch_ctc(lp, targets, [6], [4], "sum")
    assert_close(loss, t_loss, 1e-10)
    assert_close(logits_grad(lp, grad), t_logits, 1e-10)


def test_empty_target_is_all_blanks():
    lp = log_softmax(np.random.default_rng(2).standard_normal((5, 2, 3)))
    loss, grad = losses.ctc(lp, np.zeros((2, 0), np.int64), [5, 3], [0, 0], reduction="none")
    assert_close(loss, [-lp[:5, 0, 0].sum(), -lp[:3, 1, 0].sum()], 1e-12)
    assert np.all(grad[:5, 0, 0] == -1) and np.all(grad[:3, 1, 0] == -1)
    assert np.count_nonzero(grad) == 8
    assert losses.ctc(lp, [[1], [2]], [0, 3], [0, 1], reduction="none")[0][0] == 0.0   # no frames, no labels


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_impossible_alignment(zero_infinity):
    rng = np.random.default_rng(3)
    lp = log_softmax(rng.standard_normal((6, 3, 4)))
    targets = np.array([[1, 2, 3], [1, 1, 1], [2, 3, 1]])
    il, tl = np.array([6, 4, 2]), np.array([3, 3, 3])       # sequence 1 needs 5 frames, sequence 2 three
    loss, grad = losses.ctc(lp, targets, il, tl, reduction="none", zero_infinity=zero_infinity)
    t_loss, t_raw, _ = torch_ctc(lp, targets, il, tl, "none", zero_infinity)
    assert np.array_equal(loss[1:], [0.0, 0.0] if zero_infinity else [np.inf, np.inf])
    assert np.array_equal(loss[1:], t_loss[1:]) and abs(loss[0] - t_loss[0]) <= 1e-10 * loss[0]
    for b in (1, 2):
        if zero_infinity:
            assert np.all(grad[:, b] == 0)
        else:
            assert np.all(np.isnan(grad[:il[b], b])) and np.all(grad[il[b]:, b] == 0)
        assert np.array_equal(np.isnan(grad[:, b]), np.isnan(t_raw[:, b]))
    assert np.isfinite(grad[:, 0]).all()
    mean = losses.ctc(lp, targets, il, tl, zero_infinity=zero_infinity)[0]
    assert mean == (loss[0] / 3 / 3 if zero_infinity else np.inf)
    impossible_everywhere = losses.ctc(lp, targets, [1, 1, 1], tl, zero_infinity=True)
    assert impossible_everywhere[0] == 0.0 and np.all(impossible_everywhere[1] == 0)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_concatenated_targets_equal_padded(reduction):
    rng = np.random.default_rng(4)
    lp, targets, il, tl = random_case(rng, 15, 4, 5, 5)
    flat = np.concatenate([targets[b, :tl[b]] for b in range(4)]).astype(np.int32)
    padded = losses.ctc(lp, targets, il, tl, reduction=reduction)
    concatenated = losses.ctc(lp, flat, list(il), tuple(tl), reduction=reduction)
    assert np.array_equal(padded[0], concatenated[0]) and np.array_equal(padded[1], concatenated[1])
    assert_close(concatenated[0], torch_ctc(lp, flat, il, tl, reduction)[0], 1e-10)


def test_unbatched_equals_a_batch_of_one():
    rng = np.random.default_rng(5)
    lp, targets, il, tl = random_case(rng, 10, 1, 4, 4, min_target=1)
    one = losses.ctc(lp[:, 0], targets[0], il[0], np.int64(tl[0]), reduction="none")
    batch = losses.ctc(lp, targets, il, tl, reduction="none")
    assert one[0].shape == () and one[1].shape == (10, 4)
    assert one[0] == batch[0][0] and np.array_equal(one[1], batch[1][:, 0])
    torch = pytest.importorskip("torch")
    expected = torch.nn.functional.ctc_loss(torch.tensor(lp[:, 0]), torch.tensor(targets[0]), torch.tensor(il[0]),
                                            torch.tensor(tl[0]), reduction="none")
    assert_close(one[0], expected.numpy(), 1e-10)


def test_float32_against_float64():
    rng = np.random.default_rng(6)
    lp, targets, il, tl = random_case(rng, 100, 8, 29, 30)
    l64, g64 = losses.ctc(lp, targets, il, tl)
    l32, g32 = losses.ctc(lp.astype(np.float32), targets, il, tl)
    assert g32.dtype == np.float32 and isinstance(l32, float)
    assert abs(l32 - l64) <= 1e-5 * abs(l64)
    assert_close(g32, g64, 1e-5)


def test_finite_differences():
    rng = np.random.default_rng(7)
    lp, targets, il, tl = random_case(rng, 8, 3, 4, 3, min_target=1, normalised=False)
    _, grad = losses.ctc(lp, targets, il, tl)
    eps = 1e-6
    numeric = np.zeros_like(lp)
    for idx in np.ndindex(*lp.shape):
        up, down = lp.copy(), lp.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (losses.ctc(up, targets, il, tl)[0] - losses.ctc(down, targets, il, tl)[0]) / (2 * eps)
    assert_close(grad, numeric, 1e-9)


def test_same_bits_at_every_thread_count_and_inputs_untouched():
    rng = np.random.default_rng(8)
    lp, targets, il, tl = random_case(rng, 200, 16, 29, 50)
    lp = np.asfortranarray(lp.astype(np.float32))
    lp.flags.writeable = False
    before = lp.copy(), targets.copy()
    results = []
    saved = numba.get_num_threads()
    try:
        for n in (1, numba.config.NUMBA_NUM_THREADS, 1):
            numba.set_num_threads(n)
            results.append(losses.ctc(lp, targets, il, tl, reduction="none"))
    finally:
        numba.set_num_threads(saved)
    for loss, grad in results[1:]:
        assert np.array_equal(loss, results[0][0]) and np.array_equal(grad, results[0][1])
    assert np.array_equal(lp, before[0]) and np.array_equal(targets, before[1])
    strided = losses.ctc(np.ascontiguousarray(lp)[:, ::-1][:, ::-1], targets, il, tl, reduction="none")
    assert np.array_equal(strided[1], results[0][1])


def test_nan_propagates_to_its_sequence_only():
    rng = np.random.default_rng(9)
    lp, targets, il, tl = random_case(rng, 10, 3, 4, 3, min_target=1)
    il[1] = 10
    lp[2, 1, 0] = np.nan
    loss, grad = losses.ctc(lp, targets, il, tl, reduction="none")
    assert np.isnan(loss[1]) and np.isnan(grad[:, 1]).any()
    assert np.isfinite(loss[[0, 2]]).all() and np.isfinite(grad[:, [0, 2]]).all()


def test_extreme_log_probs_stay_finite():
    # A blank-confident model (labels at -60 nats a frame) over a long target: p ~ e^-3000, far below
    # the smallest float64, is still a finite loss in log space.
    T, S = 120, 50
    lp = np.full((T, 1, 3), -60.0)
    lp[:, 0, 0] = 0.0
    targets = np.tile([1, 2], S // 2)[None]
    loss, grad = losses.ctc(lp, targets, [T], [S], reduction="sum")
    assert 2500 < loss < np.inf and np.isfinite(grad).all()
    assert_close(grad.sum(axis=2), -np.ones((T, 1)), 1e-12)       # the occupancies of a frame sum to 1
    per_seq, _ = reference_batch(lp, targets, [T], [S])
    assert_close(loss, per_seq[0], 1e-12)


BAD = [
    (dict(log_probs=np.zeros((4, 2, 3), np.int64)), TypeError, "log_probs"),
    (dict(log_probs=np.zeros((4, 2, 3), np.float16)), TypeError, "log_probs"),
    (dict(log_probs=np.zeros((4, 2, 3, 1))), ValueError, "log_probs must be 3-D"),
    (dict(log_probs=np.zeros((0, 2, 3))), ValueError, "log_probs must be 3-D"),
    (dict(blank=3), ValueError, "blank must lie in \\[0, 3\\)"),
    (dict(blank=1.0), TypeError, "blank must be an integer"),
    (dict(targets=np.array([[1, 0], [2, 1]])), ValueError, "must not contain the blank label 0: sequence 0"),
    (dict(targets=np.array([[1, 3], [2, 1]])), ValueError, "targets must lie in \\[0, 3\\)"),
    (dict(targets=np.array([[1, -1], [2, 1]])), ValueError, "targets must lie in \\[0, 3\\)"),
    (dict(targets=np.array([[1.0, 2.0], [2.0, 1.0]])), TypeError, "targets must be an array of integer"),
    (dict(targets=np.array([1, 2, 2])), ValueError, "sum\\(target_lengths\\)=4 labels, got 3"),
    (dict(targets=np.array([[1, 2]])), ValueError, "targets must be \\(B, S\\) = \\(2, S\\)"),
    (dict(targets=np.ones((2, 2, 1), np.int64)), ValueError, "targets must be 2-D"),
    (dict(input_lengths=[4, 5]), ValueError, "input_lengths must be at most T=4"),
    (dict(input_lengths=[4, -1]), ValueError, "input_lengths must be non-negative"),
    (dict(input_lengths=[4.0, 3.0]), TypeError, "input_lengths must be integers"),
    (dict(input_lengths=[True, True]), TypeError, "input_lengths must be integers"),
    (dict(input_lengths=[4, 4, 4]), ValueError, "input_lengths must have shape \\(2,\\)"),
    (dict(target_lengths=[3, 2]), ValueError, "target_lengths must be at most S=2"),
    (dict(target_lengths=[-1, 2]), ValueError, "target_lengths must be non-negative"),
    (dict(target_lengths=2), ValueError, "target_lengths must have shape \\(2,\\)"),
    (dict(reduction="max"), ValueError, "reduction must be one of"),
    (dict(zero_infinity=1), TypeError, "zero_infinity must be a bool"),
]


@pytest.mark.parametrize("bad, error, match", BAD)
def test_bad_input(bad, error, match):
    args = dict(log_probs=log_softmax(np.zeros((4, 2, 3))), targets=np.array([[1, 2], [2, 1]]),
                input_lengths=[4, 3], target_lengths=[2, 2])
    args.update(bad)
    with pytest.raises(error, match=match):
        losses.ctc(**args)


def test_bad_unbatched_input():
    lp = log_softmax(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="targets must be 1-D \\(S,\\) for unbatched"):
        losses.ctc(lp, [[1, 2]], 4, 2)
    with pytest.raises(ValueError, match="input_lengths must have shape one integer"):
        losses.ctc(lp, [1, 2], [4, 4], 2)
    assert np.isfinite(losses.ctc(lp, [1, 2], [4], [2])[0])


# ------------------------------------------------------------------------------ decoders

def one_hot_frames(path, C, peak=0.9):
    """Probabilities (T, C): each frame's class of ``path`` at ``peak``, the rest shared evenly."""
    p = np.full((len(path), C), (1 - peak) / (C - 1))
    p[np.arange(len(path)), path] = peak
    return p


def test_greedy_decode_known_paths():
    paths = [[0, 1, 1, 0, 1, 2, 2, 0], [3, 3, 3, 0, 0, 3, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]]
    probs = np.stack([one_hot_frames(p, 4) for p in paths], axis=1)          # (T, B, C)
    expected = [[1, 1, 2], [3, 3], []]
    for decoded in (ctc.greedy_decode(probs), ctc.greedy_decode(np.log(probs).astype(np.float32)),
                    ctc.greedy_decode(probs.transpose(1, 0, 2), batch_first=True)):
        assert [d.tolist() for d in decoded] == expected and all(d.dtype == np.int64 for d in decoded)
    short = ctc.greedy_decode(probs, input_lengths=[5, 2, 0])
    assert [d.tolist() for d in short] == [[1, 1], [3], []]
    assert [d.tolist() for d in ctc.greedy_decode(probs[:, 0])] == [[1, 1, 2]]
    assert [d.tolist() for d in ctc.greedy_decode(probs[:, 1], blank=3)] == [[0, 0]]


def test_beam_search_beats_greedy():
    # Two frames of p(blank) = 0.6, p(a) = 0.4: the best path is "" (0.36), but "a" has three alignments
    # (a a, a -, - a: 0.16 + 0.24 + 0.24 = 0.64).
    lp = np.log(np.array([[0.6, 0.4], [0.6, 0.4]]))
    assert ctc.greedy_decode(lp)[0].tolist() == []
    assert ctc.beam_search(lp, beam_width=2)[0].tolist() == [1]
    assert ctc.beam_search(lp, beam_width=1)[0].tolist() == []
    brute = {}
    for path in itertools.product(range(2), repeat=2):
        key = tuple(collapse(path))
        brute[key] = brute.get(key, 0) + np.exp(lp[[0, 1], path].sum())
    assert max(brute, key=brute.get) == (1,)


def test_beam_search_finds_the_most_likely_labelling():
    rng = np.random.default_rng(10)
    for _ in range(5):
        lp = log_softmax(rng.standard_normal((5, 3)) * 1.5)
        brute = {}
        for path in itertools.product(range(3), repeat=5):
            key = tuple(collapse(path))
            brute[key] = brute.get(key, 0) + np.exp(lp[np.arange(5), path].sum())
        wide = ctc.beam_search(lp, beam_width=len(brute))[0]       # wide enough to keep every prefix
        assert tuple(wide.tolist()) == max(brute, key=brute.get)


def test_beam_width_one_is_greedy_on_peaked_outputs():
    rng = np.random.default_rng(11)
    paths = rng.integers(0, 5, (40, 6))
    paths[::3] = 0
    lp = np.log(np.stack([one_hot_frames(paths[:, b], 5, 0.9) for b in range(6)], axis=1))
    lengths = rng.integers(0, 41, 6)
    greedy = ctc.greedy_decode(lp, lengths)
    beam = ctc.beam_search(lp, lengths, beam_width=1)
    assert [g.tolist() for g in greedy] == [b.tolist() for b in beam]
    pruned = ctc.beam_search(lp.astype(np.float32), lengths, beam_width=4, prune=np.log(0.5))
    assert [g.tolist() for g in greedy] == [b.tolist() for b in pruned]
    assert [b.tolist() for b in ctc.beam_search(lp.transpose(1, 0, 2), lengths, 3, batch_first=True)] == \
        [b.tolist() for b in ctc.beam_search(lp, lengths, 3)]


def test_stream_decoder_equals_greedy_over_random_cuts():
    rng = np.random.default_rng(12)
    T, B, C = 60, 3, 4
    paths = rng.integers(0, C, (T, B))
    paths[rng.random((T, B)) < 0.3] = 0
    lp = np.log(np.stack([one_hot_frames(paths[:, b], C, 0.7) for b in range(B)], axis=1))
    expected = [g.tolist() for g in ctc.greedy_decode(lp)]
    decoder = ctc.GreedyStreamDecoder(batch_size=B)
    for _ in range(3):
        cuts = np.sort(rng.choice(np.arange(1, T), 6, replace=False))
        got = [[] for _ in range(B)]
        for chunk in np.split(lp, cuts) + [lp[:0]]:
            for b, labels in enumerate(decoder.push(chunk)):
                assert labels.dtype == np.int64
                got[b] += labels.tolist()
        assert got == expected
        decoder.reset()
    single = ctc.GreedyStreamDecoder()
    got = [label for t in range(T) for label in single.push(lp[t:t + 1, 0])[0].tolist()]
    assert got == expected[0]


def test_edit_distance_and_error_rate():
    assert ctc.edit_distance("kitten", "sitting") == 3
    assert ctc.edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert ctc.edit_distance([], [4, 5]) == 2 and ctc.edit_distance(np.array([1, 2]), []) == 2
    assert ctc.edit_distance([1, 2, 3, 4], [2, 3, 4, 1]) == 2
    rng = np.random.default_rng(13)
    for _ in range(20):
        a, b = rng.integers(0, 3, rng.integers(0, 8)), rng.integers(0, 3, rng.integers(0, 8))
        assert ctc.edit_distance(a, b) == slow_levenshtein(list(a), list(b)) == ctc.edit_distance(b, a)
    assert ctc.error_rate([[1, 2, 3], [4]], [[1, 3], [4, 4]]) == 2 / 4
    assert ctc.error_rate(["abc"], ["abc"]) == 0.0


def slow_levenshtein(a, b):
    if not a or not b:
        return len(a) + len(b)
    return min(slow_levenshtein(a[1:], b) + 1, slow_levenshtein(a, b[1:]) + 1,
               slow_levenshtein(a[1:], b[1:]) + (a[0] != b[0]))


def test_bad_decoder_input():
    lp = np.zeros((4, 2, 3))
    with pytest.raises(TypeError, match="log_probs must be an array of float32 or float64"):
        ctc.greedy_decode(lp.astype(int))
    with pytest.raises(ValueError, match="log_probs must be 3-D \\(B, T, num_classes\\)"):
        ctc.beam_search(lp[0, 0], batch_first=True)
    with pytest.raises(ValueError, match="input_lengths must be at most T=4"):
        ctc.greedy_decode(lp, [5, 1])
    with pytest.raises(ValueError, match="input_lengths must have shape \\(2,\\)"):
        ctc.greedy_decode(lp, [1])
    with pytest.raises(ValueError, match="blank must lie in \\[0, 3\\)"):
        ctc.beam_search(lp, blank=3)
    with pytest.raises(ValueError, match="beam_width must be a positive integer"):
        ctc.beam_search(lp, beam_width=0)
    with pytest.raises(TypeError, match="prune must be None or a log-probability"):
        ctc.beam_search(lp, prune="high")
    with pytest.raises(ValueError, match="chunk must have shape \\(T, batch_size, num_classes\\) with batch_size=2"):
        ctc.GreedyStreamDecoder(batch_size=2).push(np.zeros((3, 3)))
    with pytest.raises(TypeError, match="chunk must be an array of float32 or float64"):
        ctc.GreedyStreamDecoder().push(np.zeros((3, 3), int))
    with pytest.raises(ValueError, match="refs and hyps must hold as many sequences, got 2 and 1"):
        ctc.error_rate([[1], [2]], [[1]])
    with pytest.raises(ValueError, match="refs must hold at least one label"):
        ctc.error_rate([[]], [[1]])
    with pytest.raises(ValueError, match="ref must be a 1-D sequence of integer labels"):
        ctc.edit_distance([[1, 2]], [1])
