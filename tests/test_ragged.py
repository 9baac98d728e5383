"""Ragged batches: the CPU kernels compute only the steps each sequence runs (packed rows,
sequences sorted by length and dealt to the thread blocks). Every split gives each sequence
the numbers of the slow reference and of torch's packed sequences, forward and every gradient."""
import numpy as np
import pytest

import numgru
from numgru.kernels import cpu
from reference import gru_layer_backward, gru_layer_forward, rel_err

T, I, H = 9, 3, 5
LENGTHS = {
    "random": np.array([4, 9, 1, 7, 2, 9, 5]),
    "all-equal-short": np.array([6, 6, 6, 6, 6]),
    "one-long-rest-short": np.array([2, 2, 9, 2, 2, 2]),
    "all-one": np.array([1, 1, 1]),
    "all-full": np.array([9, 9, 9, 9, 9]),
}


def layer_weights(rng):
    return tuple(rng.uniform(-0.6, 0.6, s) for s in ((3 * H, I), (3 * H, H), (3 * H,), (3 * H,)))


@pytest.mark.parametrize("case", list(LENGTHS))
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
def test_every_split_matches_the_reference(case, reset_after, reverse, cpu_plan):
    lengths = LENGTHS[case]
    B = len(lengths)                       # odd sizes: blocks of unequal size
    rng = np.random.default_rng(0)
    weights = layer_weights(rng)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H))
    dout = rng.standard_normal((T, B, H))
    dhn = rng.standard_normal((B, H))
    out, hn, cache = numgru.gru_forward(x, weights, h0, lengths=lengths, reset_after=reset_after,
                                        reverse=reverse, training=True, device="cpu")
    dx, dh0, dweights = numgru.gru_backward(cache, dout, dhn)
    r_out, r_hn, r_cache = gru_layer_forward(x, *weights, h0, lengths=lengths, reverse=reverse,
                                             reset_after=reset_after)
    r_dx, r_dh0, *r_dweights = gru_layer_backward(r_cache, dout, dhn)
    for got, want in zip((out, hn, dx, dh0, *dweights), (r_out, r_hn, r_dx, r_dh0, *r_dweights)):
        assert rel_err(got, want) < 1e-10
    for b, length in enumerate(lengths):
        assert np.all(out[length:, b] == 0) and np.all(dx[length:, b] == 0)
    # inference runs the same steps on two rows of states
    out_i, hn_i, _ = numgru.gru_forward(x, weights, h0, lengths=lengths, reset_after=reset_after,
                                        reverse=reverse, device="cpu")
    np.testing.assert_array_equal(out_i, out)
    np.testing.assert_array_equal(hn_i, hn)


@pytest.mark.parametrize("case", ["random", "one-long-rest-short"])
def test_stack_matches_torch_packed_sequences(case, cpu_plan):
    torch = pytest.importorskip("torch")
    lengths = LENGTHS[case]
    B = len(lengths)
    rng = np.random.default_rng(1)
    gru = numgru.GRU(I, H, num_layers=2, bidirectional=True, dtype="float64", seed=0)
    ref = torch.nn.GRU(I, H, num_layers=2, bidirectional=True).double()
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in gru.state_dict().items()})
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((4, B, H))
    dout = rng.standard_normal((T, B, 2 * H))
    dhn = rng.standard_normal((4, B, H))
    for b, length in enumerate(lengths):
        dout[length:, b] = 0                                  # torch's padded outputs take no gradient
    out, hn = gru(x, h0=h0, lengths=lengths)
    dx, dh0 = gru.backward(dout, dhn)

    xt = torch.from_numpy(x).requires_grad_(True)
    h0t = torch.from_numpy(h0).requires_grad_(True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.from_numpy(lengths), enforce_sorted=False)
    out_p, hn_t = ref(packed, h0t)
    out_t = torch.nn.utils.rnn.pad_packed_sequence(out_p, total_length=T)[0]
    ((out_t * torch.from_numpy(dout)).sum() + (hn_t * torch.from_numpy(dhn)).sum()).backward()
    for got, want in ((out, out_t), (hn, hn_t), (dx, xt.grad), (dh0, h0t.grad)):
        assert rel_err(got, want.detach().numpy()) < 1e-10
    for name, param in ref.named_parameters():
        assert rel_err(gru.grads[name], param.grad.numpy()) < 1e-10, name


def test_packing_holds_only_the_real_steps():
    lengths = np.array([3, 9, 1, 5, 9, 2, 7])
    for blocks in (1, 2, 3):
        order, counts, rows, gather = cpu._packing(lengths, T, blocks)
        assert sorted(order) == list(range(len(lengths)))
        assert counts.sum() == lengths.sum() == rows[T, 0]
        assert np.all(counts[T] == 0) and np.all(np.diff(counts, axis=0) <= 0)
        starts = rows[0]
        for k in range(blocks):
            block = lengths[order[starts[k]:starts[k] + counts[0, k]]]
            assert np.all(np.diff(block) <= 0)               # longest first: the running ones are a prefix
            for s in range(T):
                assert counts[s, k] == (block > s).sum()
        block_totals = [lengths[order[starts[k]:starts[k] + counts[0, k]]].sum() for k in range(blocks)]
        assert max(block_totals) - min(block_totals) <= lengths.max()   # dealt in turn: balanced
        times, sequences = np.divmod(gather, len(lengths))
        assert np.all(times < lengths[sequences]) and len(set(gather)) == lengths.sum()
    order, counts, rows, gather = cpu._packing(np.full(4, 6), T, 2)
    assert gather is None and list(order) == [0, 1, 2, 3]     # equal lengths: x's rows as they lie
