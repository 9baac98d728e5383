"""numgru.Embedding against torch.nn.Embedding (float64), its compiled scatter-add, bad input, I/O and training."""
import numba
import numpy as np
import pytest

import numgru
from numgru import losses
from numgru.kernels import cpu

from reference import assert_close as close    # max|a - b| <= tol * max(1, max|b|)

torch = pytest.importorskip("torch")


def pair(num, dim, padding_idx=None, dtype="float64", seed=0):
    """A numgru Embedding and a torch one holding the same weights."""
    emb = numgru.Embedding(num, dim, padding_idx=padding_idx, dtype=dtype, seed=seed)
    ref = torch.nn.Embedding(num, dim, padding_idx=padding_idx, dtype=getattr(torch, dtype))
    ref.load_state_dict({"weight": torch.from_numpy(emb.state_dict()["weight"])})
    return emb, ref


# ------------------------------------------------------------------------- against torch

@pytest.mark.parametrize("shape", [(), (6,), (5, 3), (2, 3, 4)])
@pytest.mark.parametrize("padding_idx", [None, 0, 3, -2])
def test_matches_torch_with_repeated_ids(shape, padding_idx):
    rng = np.random.default_rng(len(shape))
    emb, ref = pair(7, 5, padding_idx)
    ids = rng.integers(0, 7, size=shape)
    ids.reshape(-1)[:2] = 3                     # repeated ids, padding among them
    dvec = rng.standard_normal(shape + (5,))
    out = ref(torch.from_numpy(ids))
    (out * torch.from_numpy(dvec)).sum().backward()
    vectors = emb(ids)
    assert emb.backward(dvec) is None
    close(vectors, out.detach().numpy())
    close(emb.grads["weight"], ref.weight.grad.numpy())
    if padding_idx is not None:
        assert emb.padding_idx == ref.padding_idx
        assert not emb.weight[emb.padding_idx].any()
        assert not emb.grads["weight"][emb.padding_idx].any()


def test_defaults_and_protocol():
    emb = numgru.Embedding(50, 8, padding_idx=-1, seed=3)
    assert emb.weight is emb.parameters()["weight"]
    assert emb.weight.shape == (50, 8) and emb.weight.dtype == np.float32
    assert emb.padding_idx == 49 and not emb.weight[49].any()
    assert emb.config() == dict(num_embeddings=50, embedding_dim=8, padding_idx=49, dtype="float32")
    assert repr(emb) == "Embedding(50, 8, padding_idx=49, dtype='float32')"
    assert repr(numgru.Embedding(5, 2, dtype="float64")) == "Embedding(5, 2, dtype='float64')"
    # N(0, 1), from the seeded generator
    big = numgru.Embedding(1000, 100, dtype="float64", seed=4).weight
    assert abs(big.mean()) < 0.01 and abs(big.std() - 1) < 0.01
    np.testing.assert_array_equal(numgru.Embedding(50, 8, padding_idx=-1, seed=3).weight, emb.weight)
    assert not np.array_equal(numgru.Embedding(50, 8, seed=5).weight, emb.weight)
    ids = np.array([[1, 2], [2, 3]])
    np.testing.assert_array_equal(emb.forward(ids), emb(ids))
    emb(ids)
    emb.backward(np.ones((2, 2, 8), np.float32))
    emb.backward(np.ones((2, 2, 8), np.float32))     # accumulates, as every backward does
    assert emb.grads["weight"][2].tolist() == [4.0] * 8
    emb.zero_grad()
    assert not emb.grads["weight"].any()


def test_empty_ids_give_empty_vectors():
    emb = numgru.Embedding(4, 3, seed=0)
    vectors = emb(np.zeros((0, 5), np.int64))
    assert vectors.shape == (0, 5, 3)
    emb.backward(np.zeros((0, 5, 3), np.float32))
    assert not emb.grads["weight"].any()


# ------------------------------------------------------------------- the scatter-add kernel

def test_backward_is_deterministic_at_any_split():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 20, size=5000)       # every id repeated about 250 times
    grad = rng.standard_normal((5000, 37)).astype(np.float32)
    results = []
    for nchunks in (1, 1, 2, 3, 37, 100):      # 1: the serial build; more blocks than columns are capped
        out = np.zeros((20, 37), np.float32)
        cpu.embedding_backward(ids, grad, out, 4, nchunks)
        results.append(out)
    for out in results[1:]:
        assert out.tobytes() == results[0].tobytes()
    assert not results[0][4].any()
    expected = np.zeros((20, 37))
    np.add.at(expected, ids, grad.astype(np.float64))
    expected[4] = 0
    np.testing.assert_allclose(results[0], expected, rtol=1e-4, atol=1e-4)


def test_module_backward_gives_the_same_bits_twice_and_at_every_thread_count(monkeypatch):
    monkeypatch.setattr(numgru.config, "EMBEDDING_PARALLEL_MIN_TABLE_BYTES", 0)    # the threaded build for any table
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 30, size=(64, 100))   # enough tokens for the threaded build
    dvec = rng.standard_normal((64, 100, 32)).astype(np.float32)
    threads = numba.get_num_threads()
    grads = []
    try:
        for count in (threads, threads, 1):
            numba.set_num_threads(count)
            emb = numgru.Embedding(30, 32, padding_idx=0, seed=0)
            emb(ids)
            emb.backward(dvec)
            grads.append(emb.grads["weight"].tobytes())
    finally:
        numba.set_num_threads(threads)
    assert grads[0] == grads[1] == grads[2]


def test_inputs_are_not_modified():
    emb = numgru.Embedding(6, 4, padding_idx=0, dtype="float64", seed=0)
    ids = np.array([[0, 1, 5], [5, 5, 2]], np.int32)
    dvec = np.random.default_rng(0).standard_normal((2, 3, 4))
    ids.flags.writeable = False
    dvec.flags.writeable = False
    ids_copy, dvec_copy = ids.copy(), dvec.copy()
    vectors = emb(ids)
    vectors[:] = 7                               # the output is a copy, not a view of the weights
    emb.backward(dvec)
    np.testing.assert_array_equal(ids, ids_copy)
    np.testing.assert_array_equal(dvec, dvec_copy)
    assert emb.weight.max() < 7


# ------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("ids, error, match", [
    (np.array([0.0, 1.0]), TypeError, "ids must be an array of integer token ids, got dtype float64"),
    (np.array([True, False]), TypeError, "ids .* got dtype bool"),
    (np.array(["a"], object), TypeError, "ids .* got dtype object"),
    (np.array([0, 10]), ValueError, r"ids must lie in \[0, 10\) for num_embeddings=10, got min 0 and max 10"),
    (np.array([[-1, 2]]), ValueError, r"ids must lie in \[0, 10\) .* got min -1 and max 2"),
    (np.array([2**40], np.uint64), ValueError, r"ids must lie in \[0, 10\)"),
])
def test_bad_ids_name_the_argument_and_write_nothing(ids, error, match):
    emb = numgru.Embedding(10, 3, seed=0)
    emb(np.array([1, 2]))
    before = emb.weight.copy()
    with pytest.raises(error, match=match):
        emb(ids)
    np.testing.assert_array_equal(emb.weight, before)
    emb.backward(np.ones((2, 3), np.float32))   # the last good forward's cache is still in place
    assert emb.grads["weight"][1].tolist() == [1.0] * 3


@pytest.mark.parametrize("padding_idx, error, match", [
    (10, ValueError, r"padding_idx must lie in \[-10, 10\) for num_embeddings=10, got 10"),
    (-11, ValueError, r"padding_idx must lie in \[-10, 10\) .* got -11"),
    (1.0, TypeError, "padding_idx must be an integer, got 1.0"),
    (True, TypeError, "padding_idx must be an integer, got True"),
])
def test_bad_padding_idx(padding_idx, error, match):
    with pytest.raises(error, match=match):
        numgru.Embedding(10, 3, padding_idx=padding_idx)


def test_bad_construction_and_backward():
    with pytest.raises(RuntimeError, match="device='cuda' is not available for Embedding"):
        numgru.Embedding(10, 3, device="cuda")
    with pytest.raises(RuntimeError, match="device='cuda' is not available for Embedding"):
        numgru.Embedding(10, 3).to("cuda")
    with pytest.raises(ValueError, match="num_embeddings must be a positive integer"):
        numgru.Embedding(0, 3)
    with pytest.raises(TypeError, match="embedding_dim must be a positive integer"):
        numgru.Embedding(10, 2.0)
    with pytest.raises(TypeError, match="dtype must be 'float32' or 'float64'"):
        numgru.Embedding(10, 3, dtype="float16")
    emb = numgru.Embedding(10, 3, seed=0)
    with pytest.raises(RuntimeError, match="backward needs a forward first"):
        emb.backward(np.ones((2, 3), np.float32))
    with numgru.no_grad():
        emb(np.array([1, 2]))
    with pytest.raises(RuntimeError, match="backward needs a forward first"):
        emb.backward(np.ones((2, 3), np.float32))
    emb(np.array([1, 2]))
    with pytest.raises(ValueError, match=r"dvectors must have the shape of the forward's output \(2, 3\)"):
        emb.backward(np.ones((2, 4), np.float32))
    with pytest.raises(TypeError, match="dvectors must be an array of float32 or float64"):
        emb.backward(np.ones((2, 3), np.int64))
    assert not emb.grads["weight"].any()


# -------------------------------------------------------------------- state, I/O, interop

def test_torch_state_dict_loads_as_is():
    ref = torch.nn.Embedding(9, 4, padding_idx=2, dtype=torch.float64)
    emb = numgru.Embedding(9, 4, padding_idx=2, dtype="float64")
    emb.load_state_dict(ref.state_dict())
    np.testing.assert_array_equal(emb.weight, ref.weight.detach().numpy())
    assert list(emb.state_dict()) == list(ref.state_dict()) == ["weight"]
    with pytest.raises(ValueError, match=r"state_dict\['weight'\] must have shape \(9, 4\)"):
        emb.load_state_dict({"weight": np.zeros((8, 4))})


def test_save_load_round_trip(tmp_path):
    emb = numgru.Embedding(12, 5, padding_idx=3, dtype="float64", seed=0)
    path = numgru.save(tmp_path / "emb.npz", emb, metadata={"note": "x"})
    back, meta = numgru.load(path, return_metadata=True)
    assert isinstance(back, numgru.Embedding) and meta == {"note": "x"}
    assert back.config() == emb.config()
    assert back.weight.tobytes() == emb.weight.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("padding_idx", [None, 1])
def test_from_torch_and_to_torch(dtype, padding_idx):
    ref = torch.nn.Embedding(8, 3, padding_idx=padding_idx, dtype=getattr(torch, dtype))
    emb = numgru.from_torch(ref)
    assert isinstance(emb, numgru.Embedding) and emb.dtype == np.dtype(dtype)
    assert emb.padding_idx == padding_idx
    assert emb.weight.tobytes() == ref.weight.detach().numpy().tobytes()
    emb.weight[:] += 1                           # a copy: torch's weights stay as they were
    assert not np.array_equal(emb.weight, ref.weight.detach().numpy())
    back = numgru.to_torch(emb)
    assert isinstance(back, torch.nn.Embedding) and back.padding_idx == padding_idx
    assert back.weight.dtype == getattr(torch, dtype)
    assert back.weight.detach().numpy().tobytes() == emb.weight.tobytes()
    with pytest.raises(ValueError, match="max_norm"):
        numgru.from_torch(torch.nn.Embedding(8, 3, max_norm=1.0))


# ------------------------------------------------------------------ optimisers and clipping

@pytest.mark.parametrize("make", [lambda m: numgru.optim.SGD(m, lr=0.1, momentum=0.9),
                                  lambda m: numgru.optim.Adam(m, lr=0.01)])
def test_optimisers_and_clipping_match_torch_and_keep_the_padding_row(make):
    emb, ref = pair(6, 4, padding_idx=0)
    torch_opt = (torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
                 if isinstance(make([emb]), numgru.optim.SGD) else torch.optim.Adam(ref.parameters(), lr=0.01))
    opt = make([emb])
    ids = np.array([[0, 1, 1], [2, 0, 5]])
    dvec = np.random.default_rng(0).standard_normal((2, 3, 4))
    for _ in range(3):
        opt.zero_grad()
        torch_opt.zero_grad()
        emb(ids)
        emb.backward(dvec)
        (ref(torch.from_numpy(ids)) * torch.from_numpy(dvec)).sum().backward()
        norm = numgru.optim.clip_grad_norm([emb], 0.5)
        torch_norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.5)
        close(norm, torch_norm.item())
        opt.step()
        torch_opt.step()
    close(emb.weight, ref.weight.detach().numpy())
    assert not emb.weight[0].any()
    assert emb.weight[3].tobytes() == pair(6, 4, padding_idx=0)[0].weight[3].tobytes()   # no token, no step


# ------------------------------------------------- Embedding -> GRU -> Linear -> cross_entropy

def small_model():
    emb = numgru.Embedding(7, 3, padding_idx=0, dtype="float64", seed=0)
    gru = numgru.GRU(3, 4, batch_first=True, dtype="float64", seed=1)
    head = numgru.Linear(4, 7, dtype="float64", seed=2)
    ids = np.array([[3, 1, 4, 1, 5], [2, 6, 2, 0, 0], [5, 5, 1, 0, 0]])       # (B, T), padded with 0
    targets = np.array([[1, 4, 1, 5, 6], [6, 2, 3, 0, 0], [5, 1, 2, 0, 0]])
    lengths = np.array([5, 3, 3])
    return emb, gru, head, ids, targets, lengths


def run_model(emb, gru, head, ids, targets, lengths, backward=False):
    out, _ = gru(emb(ids), lengths=lengths)
    loss, dlogits = losses.cross_entropy(head(out), targets, lengths=lengths, batch_first=True)
    if backward:
        dx, _ = gru.backward(head.backward(dlogits))
        emb.backward(dx)
    return loss


def test_gradients_through_gru_match_torch_and_finite_differences():
    emb, gru, head, ids, targets, lengths = small_model()
    run_model(emb, gru, head, ids, targets, lengths, backward=True)

    # torch: the same model, packed sequences, ignore_index over the padding
    t_emb, t_gru, t_head = numgru.to_torch(emb), numgru.to_torch(gru), torch.nn.Linear(4, 7, dtype=torch.float64)
    t_head.load_state_dict({k: torch.from_numpy(v) for k, v in head.state_dict().items()})
    packed = torch.nn.utils.rnn.pack_padded_sequence(t_emb(torch.from_numpy(ids)), torch.from_numpy(lengths),
                                                     batch_first=True, enforce_sorted=False)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(t_gru(packed)[0], batch_first=True, total_length=5)
    masked = torch.from_numpy(np.where(np.arange(5)[None, :] < lengths[:, None], targets, -100))
    torch.nn.functional.cross_entropy(t_head(out).reshape(-1, 7), masked.reshape(-1)).backward()
    close(emb.grads["weight"], t_emb.weight.grad.numpy(), 1e-10)
    for name, param in t_gru.named_parameters():
        close(gru.grads[name], param.grad.numpy(), 1e-10)
    close(head.grads["weight"], t_head.weight.grad.numpy(), 1e-10)

    # central finite differences on a few entries: embedding rows, a recurrent weight, the head
    checks = [(emb, "weight", (3, 0)), (emb, "weight", (1, 2)), (emb, "weight", (6, 1)), (emb, "weight", (0, 1)),
              (gru, "weight_hh_l0", (5, 2)), (gru, "bias_ih_l0", (9,)), (head, "weight", (4, 3))]
    eps = 1e-6
    for module, name, index in checks:
        param = module.parameters()[name]
        saved = param[index]
        param[index] = saved + eps
        up = run_model(emb, gru, head, ids, targets, lengths)
        param[index] = saved - eps
        down = run_model(emb, gru, head, ids, targets, lengths)
        param[index] = saved
        numeric = (up - down) / (2 * eps)
        assert abs(module.grads[name][index] - numeric) <= 1e-8 * max(1.0, abs(numeric)), (name, index)
    assert not emb.grads["weight"][0].any()              # the padding row: exactly zero
