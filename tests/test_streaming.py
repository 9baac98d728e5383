"""GRUStream: chunk-invariant bits, agreement with the whole-sequence forward and the
reference, ragged chunks, resets, and bad input."""
import numpy as np
import pytest

import numgru
from numgru import config
from reference import gru_forward_stack, rel_err

T, B, I, H = 9, 3, 4, 5
TOL = {"float32": 1e-5, "float64": 1e-10}


def make(dtype="float64", num_layers=2, **kw):
    return numgru.GRU(I, H, num_layers=num_layers, dtype=dtype, seed=0, **kw)


def sequence(dtype, steps=T, batch=B, seed=1):
    return np.random.default_rng(seed).standard_normal((steps, batch, I)).astype(dtype)


def run_in_chunks(stream, x, cuts):
    """Feed x (T, B, I) cut at ``cuts``; returns the outputs joined along time."""
    bounds = [0, *cuts, x.shape[0]]
    return np.concatenate([stream(x[a:b])[0] for a, b in zip(bounds, bounds[1:])])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_any_cut_gives_the_same_bits(dtype, reset_after, bias, cpu_plan):
    gru = make(dtype, reset_after=reset_after, bias=bias)
    x = sequence(dtype)
    whole, hn = numgru.GRUStream(gru, batch_size=B)(x)
    for cuts in ([1, 2, 3, 4, 5, 6, 7, 8], [4], [1, 7], [2, 3, 8]):
        stream = numgru.GRUStream(gru, batch_size=B)
        np.testing.assert_array_equal(run_in_chunks(stream, x, cuts), whole)
        np.testing.assert_array_equal(stream.state, hn)
    stream = numgru.GRUStream(gru, batch_size=B)
    steps = np.stack([stream.step(x[t]) for t in range(T)])
    np.testing.assert_array_equal(steps, whole)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reset_after", [True, False])
def test_matches_the_whole_sequence_forward_and_the_reference(dtype, reset_after, cpu_plan):
    gru = make(dtype, reset_after=reset_after)
    x = sequence(dtype)
    h0 = np.random.default_rng(2).standard_normal((2, B, H)).astype(dtype)
    stream = numgru.GRUStream(gru, batch_size=B, h0=h0)
    out = run_in_chunks(stream, x, [3, 4])
    gru_out, gru_hn = gru(x, h0)
    ref_out, ref_hn = gru_forward_stack(x, gru.state_dict(), 2, False, h0=h0, reset_after=reset_after)
    assert rel_err(out, gru_out) < TOL[dtype] and rel_err(stream.state, gru_hn) < TOL[dtype]
    assert rel_err(out, ref_out) < TOL[dtype] and rel_err(stream.state, ref_hn) < TOL[dtype]


def test_batch_first_and_unbatched_layouts():
    gru = make(batch_first=True)
    x = sequence("float64")
    out, hn = numgru.GRUStream(gru, batch_size=B)(x.transpose(1, 0, 2))
    expected, expected_hn = numgru.GRUStream(make(), batch_size=B)(x)
    np.testing.assert_array_equal(out, expected.transpose(1, 0, 2))
    np.testing.assert_array_equal(hn, expected_hn)

    single = numgru.GRUStream(make())
    out, hn = single(x[:, 0])
    assert out.shape == (T, H) and hn.shape == (2, H)
    assert single.step(x[0, 0]).shape == (H,)
    assert rel_err(out, make()(x[:, 0])[0]) < 1e-10


def test_ragged_chunks_carry_each_streams_state():
    """lengths in a chunk: a stream with fewer real steps (or none) keeps its state after them."""
    gru = make()
    x = sequence("float64", steps=6)
    stream = numgru.GRUStream(gru, batch_size=B)
    out1, _ = stream(x[:3], lengths=[3, 0, 1])
    assert (out1[:, 1] == 0).all() and (out1[1:, 2] == 0).all()
    # stream 0 goes on, stream 1 starts now, stream 2 goes on after its single step
    out2, hn = stream(np.stack([x[3:6, 0], x[0:3, 1], x[1:4, 2]], axis=1))
    fed = [(x[:6, 0], np.concatenate([out1[:, 0], out2[:, 0]])),
           (x[:3, 1], out2[:, 1]),
           (x[:4, 2], np.concatenate([out1[:1, 2], out2[:, 2]]))]
    for b, (steps, outputs) in enumerate(fed):
        ref_out, ref_hn = gru_forward_stack(steps[:, None], gru.state_dict(), 2, False)
        assert rel_err(outputs, ref_out[:, 0]) < 1e-10
        assert rel_err(hn[:, b], ref_hn[:, 0]) < 1e-10


def test_reset_zeroes_only_the_chosen_streams():
    gru = make()
    x = sequence("float64")
    stream = numgru.GRUStream(gru, batch_size=B)
    stream(x[:4])
    before = stream.state
    stream.reset([1])
    after = stream.state
    assert (after[:, 1] == 0).all()
    np.testing.assert_array_equal(after[:, [0, 2]], before[:, [0, 2]])
    # stream 1 now runs as a fresh stream would, bit for bit
    fresh = numgru.GRUStream(gru, batch_size=B, h0=after)
    np.testing.assert_array_equal(stream(x[4:])[0], fresh(x[4:])[0])
    stream.reset()
    assert (stream.state == 0).all()


def test_gru_cell_streams_like_its_own_steps():
    cell = numgru.GRUCell(I, H, dtype="float64", seed=0)
    x = sequence("float64")
    stream = numgru.GRUStream(cell, batch_size=B)
    h = np.zeros((B, H))
    for t in range(T):
        h = cell(x[t], h)
        assert rel_err(stream.step(x[t]), h) < 1e-10
    assert stream.state.shape == (1, B, H)


def test_sees_training_between_calls_and_never_writes_inputs():
    gru = make()
    x = sequence("float64")
    x.setflags(write=False)
    stream = numgru.GRUStream(gru, batch_size=B)
    first, _ = stream(x[:2])
    gru.parameters()["weight_hh_l0"][:] *= 0.5          # as an optimiser step would, in place
    stream.reset()
    second, _ = stream(x[:2])
    assert not np.array_equal(first, second)
    assert rel_err(second, gru(x[:2])[0]) < 1e-10


def test_float32_input_to_float64_stream_is_converted_and_ints_refused():
    stream = numgru.GRUStream(make())
    x = sequence("float32")[:, :1]
    assert stream(x)[0].dtype == np.float64
    with pytest.raises(TypeError, match="x"):
        stream(np.ones((2, 1, I), np.int64))


@pytest.mark.parametrize("call, message", [
    (lambda s: s(np.zeros((2, 2, I))), "batch_size=3"),
    (lambda s: s(np.zeros((2, B, I + 1))), "input_size"),
    (lambda s: s(np.zeros((2, B, I)), lengths=[3, 1, 1]), "lengths"),
    (lambda s: s(np.zeros((2, B, I)), lengths=[-1, 1, 1]), "lengths"),
    (lambda s: s(np.zeros((2, B, I)), lengths=[1.0, 1.0, 1.0]), "lengths"),
    (lambda s: s(np.full((2, B, I), np.inf), check_finite=True), "x"),
    (lambda s: s.step(np.zeros((2, I))), "batch_size=3"),
    (lambda s: s.step(np.zeros((B, I + 1))), "input_size"),
    (lambda s: s.reset([B]), "streams"),
    (lambda s: s.reset([0.5]), "streams"),
    (lambda s: setattr(s, "state", np.zeros((1, B, H))), "state"),
])
def test_bad_input_names_the_argument(call, message):
    stream = numgru.GRUStream(make(), batch_size=B)
    state = stream.state
    with pytest.raises((ValueError, TypeError), match=message):
        call(stream)
    np.testing.assert_array_equal(stream.state, state)      # a refused call changes nothing


def test_bad_models_are_refused():
    with pytest.raises(ValueError, match="bidirectional"):
        numgru.GRUStream(make(bidirectional=True))
    with pytest.raises(TypeError, match="model"):
        numgru.GRUStream(numgru.Linear(3, 2))
    with pytest.raises(ValueError, match="batch_size"):
        numgru.GRUStream(make(), batch_size=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cuts_that_change_a_one_gemm_projection_do_not_change_a_stream(dtype, cpu_plan):
    """At I=37, H=100 BLAS's per-row results depend on how many rows one GEMM has, so a
    stream that projected each chunk in one GEMM (as GRU.forward projects a sequence)
    would change with the cuts (checked first: elsewhere the test could not fail)."""
    gru = numgru.GRU(37, 100, dtype=dtype, seed=0)
    x = np.random.default_rng(1).standard_normal((9, 3, 37)).astype(dtype)
    cuts = [1, 2, 3, 4, 5, 6, 7, 8]
    per_chunk_forward, h = [], None
    for step in range(9):
        out, h = gru(x[step:step + 1], h)
        per_chunk_forward.append(out)
    if np.array_equal(np.concatenate(per_chunk_forward), gru(x)[0]):
        pytest.skip("this BLAS gives the same rows whatever the GEMM's height: the cuts cannot matter here")
    whole, _ = numgru.GRUStream(gru, batch_size=3)(x)
    np.testing.assert_array_equal(run_in_chunks(numgru.GRUStream(gru, batch_size=3), x, cuts), whole)
