"""numgru.Attention: additive, dot and general scores against torch autograd (float64), masking, bad input."""
import numpy as np
import pytest

import numgru

from reference import assert_close

B, TQ, S, DQ, DK = 3, 4, 6, 5, 7
LENGTHS = np.array([6, 2, 4])


def _layer(score, dq=DQ, dk=DK, dtype="float64"):
    return numgru.Attention(dq, dk, score=score, attention_size=8 if score == "additive" else None, dtype=dtype,
                            seed=1)


def _inputs(dq=DQ, dk=DK, seed=0, single=False):
    rng = np.random.default_rng(seed)
    query = rng.standard_normal((B, DQ if dq is None else dq) if single else (B, TQ, dq))
    return query, rng.standard_normal((B, S, dk))


def _torch_attention(torch, layer, query, memory, lengths):
    p = {k: torch.tensor(v, requires_grad=True) for k, v in layer.state_dict().items()}
    q = torch.tensor(query, requires_grad=True)
    m = torch.tensor(memory, requires_grad=True)
    if layer.score == "dot":
        scores = q @ m.transpose(1, 2)
    elif layer.score == "general":
        scores = q @ p["weight"] @ m.transpose(1, 2)
    else:
        hidden = torch.tanh((q @ p["query_weight"].T)[:, :, None] + (m @ p["memory_weight"].T)[:, None] + p["bias"])
        scores = hidden @ p["score_weight"]
    mask = torch.arange(m.shape[1])[None, None] < torch.tensor(lengths)[:, None, None]
    weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    return q, m, p, weights @ m, weights


@pytest.mark.parametrize("score", ["additive", "dot", "general"])
def test_forward_and_backward_match_torch(score):
    torch = pytest.importorskip("torch")
    dk = DQ if score == "dot" else DK
    layer = _layer(score, dk=dk)
    query, memory = _inputs(dk=dk)
    rng = np.random.default_rng(5)
    dcontext, dweights = rng.standard_normal((B, TQ, dk)), rng.standard_normal((B, TQ, S))
    context, weights = layer(query, memory, LENGTHS)
    dquery, dmemory = layer.backward(dcontext, dweights)
    q, m, p, t_context, t_weights = _torch_attention(torch, layer, query, memory, LENGTHS)
    ((t_context * torch.tensor(dcontext)).sum() + (t_weights * torch.tensor(dweights)).sum()).backward()
    assert_close(context, t_context.detach().numpy(), 1e-12)
    assert_close(weights, t_weights.detach().numpy(), 1e-12)
    assert_close(dquery, q.grad.numpy(), 1e-10)
    assert_close(dmemory, m.grad.numpy(), 1e-10)
    for name, value in p.items():
        assert_close(layer.grads[name], value.grad.numpy(), 1e-10)


@pytest.mark.parametrize("score", ["additive", "dot", "general"])
def test_padding_gets_exactly_zero_weight_and_gradient_and_is_never_read(score):
    dk = DQ if score == "dot" else DK
    layer = _layer(score, dk=dk)
    query, memory = _inputs(dk=dk)
    context, weights = layer(query, memory, LENGTHS)
    for b, n in enumerate(LENGTHS):
        assert np.all(weights[b, :, n:] == 0)
        assert_close(weights[b, :, :n].sum(axis=-1), np.ones(TQ), 1e-14)
    _, dmemory = layer.backward(np.ones_like(context))
    assert np.all(dmemory[1, 2:] == 0) and np.all(dmemory[2, 4:] == 0)
    poisoned = memory.copy()
    poisoned[1, 2:] = np.nan
    poisoned[2, 4:] = np.inf
    again, again_weights = layer(query, poisoned, LENGTHS)
    assert np.array_equal(again, context) and np.array_equal(again_weights, weights)


def test_one_query_per_sequence_and_float32():
    layer = _layer("general", dtype="float32")
    query, memory = _inputs(seed=2)
    context, weights = layer(query[:, 0].astype(np.float32), memory.astype(np.float32), LENGTHS)
    assert context.shape == (B, DK) and weights.shape == (B, S) and context.dtype == np.float32
    full, _ = _layer("general")(query, memory, LENGTHS)
    assert_close(context, full[:, 0], 1e-5)
    dquery, dmemory = layer.backward(np.ones((B, DK), np.float32))
    assert dquery.shape == (B, DQ) and dmemory.shape == (B, S, DK)


def test_finite_differences_additive():
    layer = _layer("additive")
    query, memory = _inputs(seed=3)
    rng = np.random.default_rng(4)
    dcontext = rng.standard_normal((B, TQ, DK))
    layer.zero_grad()
    layer(query, memory, LENGTHS)
    layer.backward(dcontext)
    for name in ("query_weight", "memory_weight", "bias", "score_weight"):
        param = layer.parameters()[name]
        index = (1,) * param.ndim
        old = param[index]
        values = []
        for step in (1e-6, -1e-6):
            param[index] = old + step
            values.append(float((layer(query, memory, LENGTHS)[0] * dcontext).sum()))
        param[index] = old
        assert abs((values[0] - values[1]) / 2e-6 - layer.grads[name][index]) <= 1e-8


def test_bad_input():
    with pytest.raises(ValueError, match="score must be one of"):
        numgru.Attention(4, 4, score="cosine")
    with pytest.raises(ValueError, match="query_size == memory_size"):
        numgru.Attention(4, 5, score="dot")
    with pytest.raises(ValueError, match="attention_size applies"):
        numgru.Attention(4, 4, score="dot", attention_size=3)
    layer = _layer("additive")
    query, memory = _inputs()
    with pytest.raises(ValueError, match="query must be"):
        layer(query[..., :2], memory)
    with pytest.raises(ValueError, match="memory must be"):
        layer(query, memory[:2])
    with pytest.raises(ValueError, match="lengths"):
        layer(query, memory, [7, 1, 1])
    with pytest.raises(ValueError, match="lengths"):
        layer(query, memory, [0, 1, 1])
    with pytest.raises(RuntimeError, match="backward needs a forward"):
        _layer("dot", dk=DQ).backward(np.zeros((B, TQ, DQ)))
    with pytest.raises(RuntimeError, match="cuda"):
        numgru.Attention(4, 4, device="cuda")


def test_save_and_load(tmp_path):
    layer = _layer("additive", dtype="float32")
    again = numgru.load(numgru.save(tmp_path / "attention.npz", layer))
    query, memory = _inputs()
    assert repr(again) == repr(layer)
    assert np.array_equal(again(query, memory, LENGTHS)[0], layer(query, memory, LENGTHS)[0])


@pytest.mark.parametrize("score", ["additive", "dot", "general"])
def test_keys_projected_once_give_the_same_bits(score):
    """A decoder projects the memory once (``project``) and passes it to every step's forward."""
    layer = _layer(score, dq=DK if score == "dot" else DQ)
    query, memory = _inputs(dq=DK if score == "dot" else DQ)
    padded = memory.copy()
    padded[1, LENGTHS[1]:] = 1e6                                     # never read, even through the keys
    keys = layer.project(padded, LENGTHS)
    assert not keys[1, LENGTHS[1]:].any()
    for q in (query, query[:, 0]):
        fresh = layer(q, memory, LENGTHS)
        kept = layer(q, padded, LENGTHS, keys=keys)
        for a, b in zip(fresh, kept):
            assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="memory must be"):
        layer.project(memory[0])
