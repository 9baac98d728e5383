"""LanguageModel: gradients against torch, truncated BPTT as char-rnn, generation, files, bad input, the CLI."""
import json
import os

import numpy as np
import pytest

import numgru
from numgru import text
from numgru.__main__ import main
from numgru.kernels import cpu

CORPUS = "the quick brown fox jumps over the lazy dog. "


def vocabulary(s=CORPUS):
    return text.Vocabulary.build([text.char_tokenize(s)])


def small_lm(**kwargs):
    kwargs = dict(dict(embedding_dim=5, hidden_size=7, num_layers=2, dtype="float64", seed=0), **kwargs)
    return numgru.LanguageModel(vocabulary(), **kwargs)


def relative(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


def torch_twin(lm):
    """nn.Embedding + nn.GRU + nn.Linear with attributes embedding, gru, head: lm's state_dict loads as is."""
    torch = pytest.importorskip("torch")

    class Twin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(len(lm.vocabulary), lm.embedding_dim)
            self.gru = torch.nn.GRU(lm.embedding_dim, lm.hidden_size, lm.num_layers)
            self.head = torch.nn.Linear(lm.hidden_size, len(lm.vocabulary))

        def forward(self, ids_tb, h0):
            out, hn = self.gru(self.embedding(ids_tb), h0)
            return self.head(out), hn

    twin = Twin().double()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in lm.state_dict().items()})
    return twin


def test_gradients_match_torch_autograd():
    torch = pytest.importorskip("torch")
    lm = small_lm()
    twin = torch_twin(lm)
    rng = np.random.default_rng(1)
    B, T, V = 3, 6, len(lm.vocabulary)
    ids = rng.integers(0, V, (B, T))
    targets = rng.integers(0, V, (B, T))
    h0 = rng.standard_normal((lm.num_layers, B, lm.hidden_size))
    logits, hn = lm(ids, h0)
    loss, dlogits = numgru.losses.cross_entropy(logits, targets)
    lm.backward(dlogits)
    t_logits, t_hn = twin(torch.from_numpy(ids.T.copy()), torch.from_numpy(h0))
    t_loss = torch.nn.functional.cross_entropy(t_logits.reshape(-1, V), torch.from_numpy(targets.T.reshape(-1)))
    t_loss.backward()
    assert relative(logits, t_logits.detach().numpy().transpose(1, 0, 2)) < 1e-12
    assert relative(hn, t_hn.detach().numpy()) < 1e-12
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    t_grads = {name: p.grad.numpy() for name, p in twin.named_parameters()}
    assert set(t_grads) == set(lm.grads)
    for name, grad in lm.grads.items():
        assert relative(grad, t_grads[name]) < 1e-10, name
    lm.load_state_dict(twin.state_dict())           # and torch's loads into numgru as is


def test_truncated_bptt_streams_windows_and_carried_state():
    """One fit epoch's per-window losses are those of contiguous streams read window after window, the
    state carried; lr so small that the weights stay put to float64 rounding."""
    corpus = CORPUS * 3
    lm = small_lm()
    B, bptt = 4, 5
    history = lm.fit(corpus, batch_size=B, bptt=bptt, epochs=1, lr=1e-13, clip_norm=None, eval_every=1,
                     progress=False)
    ids = lm.encode(corpus)
    n = (len(ids) - 1) // B
    streams = ids[:B * n].reshape(B, n)           # stream b: tokens [b*n, (b+1)*n)
    labels = ids[1:B * n + 1].reshape(B, n)
    expected, carried_off, h = [], [], None
    for start in range(0, n, bptt):
        logits, h = lm(streams[:, start:start + bptt], h)
        expected.append(numgru.losses.cross_entropy(logits, labels[:, start:start + bptt])[0])
        cold, _ = lm(streams[:, start:start + bptt])
        carried_off.append(numgru.losses.cross_entropy(cold, labels[:, start:start + bptt])[0])
    assert history.windows == list(range(1, len(expected) + 1))
    assert history.epochs[-1] == 1.0
    np.testing.assert_allclose(history.train_loss, expected, rtol=1e-9)
    assert relative(history.train_loss[1:], carried_off[1:]) > 1e-3   # the state really was carried
    assert history.val_nats == [None] * len(expected)


def test_fit_is_adam_over_the_windows_with_the_learning_rate_falling_linearly():
    corpus, B, bptt, epochs = CORPUS * 3, 4, 5, 2
    fitted, by_hand = small_lm(), small_lm()
    fitted.fit(corpus, batch_size=B, bptt=bptt, epochs=epochs, lr=1e-2, lr_end=1e-3, clip_norm=0.5, progress=False)
    ids = by_hand.encode(corpus)
    n = (len(ids) - 1) // B
    streams, labels = ids[:B * n].reshape(B, n), ids[1:B * n + 1].reshape(B, n)
    optimizer = numgru.optim.Adam([by_hand], lr=1e-2)
    starts = range(0, n, bptt)
    done = 0
    for _ in range(epochs):
        h = None
        for start in starts:
            optimizer.lr = 1e-2 + (1e-3 - 1e-2) * done / (epochs * len(starts))
            optimizer.zero_grad()
            logits, h = by_hand(streams[:, start:start + bptt], h)
            by_hand.backward(numgru.losses.cross_entropy(logits, labels[:, start:start + bptt])[1])
            numgru.optim.clip_grad_norm([by_hand], 0.5)
            optimizer.step()
            done += 1
    for name, value in by_hand.state_dict().items():
        assert relative(fitted.state_dict()[name], value) < 1e-9, name


def test_memorises_a_short_text_and_writes_it_back():
    lm = numgru.LanguageModel(vocabulary(), embedding_dim=16, hidden_size=48, num_layers=1, seed=0)
    lm.fit(CORPUS, batch_size=1, bptt=len(CORPUS), epochs=300, lr=1e-2, progress=False)
    assert lm.generate(CORPUS[0], len(CORPUS) - 1, top_k=1) == CORPUS[1:]
    assert lm.generate(CORPUS[0], len(CORPUS) - 1, temperature=0.05, seed=3) == CORPUS[1:]
    assert lm.evaluate(CORPUS, streams=1)["nats"] < 0.01


def test_generation_is_reproducible_under_a_seed():
    lm = small_lm(dtype="float32")
    a = lm.generate("the", 60, seed=0)
    assert a == lm.generate("the", 60, seed=0) and len(a) == 60
    assert a != lm.generate("the", 60, seed=1)
    assert set(a) <= set(CORPUS)                  # never a special token
    assert lm.generate("the", 0, seed=0) == ""


@pytest.mark.parametrize("layers", [1, 3])
def test_generate_kernel_logits_equal_a_teacher_forced_forward(layers):
    lm = small_lm(num_layers=layers)
    prompt = lm.encode("the qu")
    uniforms = np.random.default_rng(0).random(30)
    tokens, logits = lm._continue(prompt, uniforms, 1.3, None)
    with numgru.no_grad():
        full, _ = lm(np.concatenate([prompt, tokens[:-1]])[None])
    assert relative(logits, full[0, len(prompt) - 1:]) < 1e-12
    tokens, logits = lm._continue(prompt, uniforms, 1.0, 3)      # each among the 3 likeliest non-specials
    chosen = logits[np.arange(30), tokens]
    assert lm._allowed[tokens].all() and ((logits[:, lm._allowed] > chosen[:, None]).sum(-1) < 3).all()


def test_generate_kernel_threads_agree():
    """The kernel's parallel build (each layer's step split by units) draws what the serial build draws."""
    lm = small_lm(hidden_size=16)
    p = lm.parameters()
    table = lm.embedding.weight @ p["gru.weight_ih_l0"].T + p["gru.bias_ih_l0"]
    args = (table, p["gru.weight_ih_l1"][None], p["gru.bias_ih_l1"][None],
            np.stack([p["gru.weight_hh_l0"], p["gru.weight_hh_l1"]]),
            np.stack([p["gru.bias_hh_l0"], p["gru.bias_hh_l1"]]), p["head.weight"], p["head.bias"])
    uniforms = np.random.default_rng(0).random(40)
    runs = [cpu.generate(*args, np.zeros((2, 16)), 5, uniforms, 1.0, 4, lm._allowed, nchunks) for nchunks in (1, 3)]
    assert np.array_equal(runs[0][0], runs[1][0])
    assert relative(runs[0][1], runs[1][1]) < 1e-13


def test_evaluate_streams_with_full_warmup_equal_one_stream():
    lm = small_lm()
    corpus = CORPUS * 4
    one = lm.evaluate(corpus, streams=1)
    many = lm.evaluate(corpus, streams=7, warmup=len(corpus))
    assert many["nats"] == pytest.approx(one["nats"], rel=1e-12)
    assert one["bits"] == pytest.approx(one["nats"] / np.log(2)) and one["perplexity"] == pytest.approx(
        np.exp(one["nats"]))
    assert lm.evaluate(corpus, streams=7, warmup=0)["nats"] != pytest.approx(one["nats"], rel=1e-9)


def test_word_level_with_dropout_is_reproducible_under_a_seed():
    corpus = "The cat sat on the mat. The dog sat on the log. " * 5
    vocab = text.Vocabulary.build([text.word_tokenize(corpus)])
    runs = []
    for _ in range(2):
        lm = numgru.LanguageModel(vocab, embedding_dim=6, hidden_size=10, num_layers=2, dropout=0.3,
                                  tokenizer="word", lower=True, seed=0)
        lm.fit(corpus, batch_size=2, bptt=8, epochs=2, seed=1, progress=False)
        runs.append(lm)
    assert all(np.array_equal(v, runs[1].state_dict()[k]) for k, v in runs[0].state_dict().items())
    words = runs[0].generate("the cat", 12, seed=0).split(" ")
    assert len(words) == 12 and set(words) <= set(vocab.tokens[4:])


def test_unseen_characters_read_as_unk():
    lm = small_lm()
    assert lm.encode("thé!").tolist()[2:] == [lm.vocabulary.unk_index] * 2
    assert len(lm.generate("XYZ", 5, seed=0)) == 5


def test_bad_input_names_the_argument():
    lm = small_lm()
    for kwargs, kind, word in [(dict(temperature=0), ValueError, "temperature"),
                               (dict(temperature=-1.0), ValueError, "temperature"),
                               (dict(top_k=0), ValueError, "top_k"), (dict(length=-1), ValueError, "length"),
                               (dict(prompt=""), ValueError, "prompt"), (dict(prompt=3), TypeError, "prompt")]:
        call = dict(dict(prompt="the", length=5), **kwargs)
        with pytest.raises(kind, match=word):
            lm.generate(**call)
    V = len(lm.vocabulary)
    with pytest.raises(TypeError, match="ids"):
        lm(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=f"ids.*{V}"):
        lm(np.full((2, 3), V))
    with pytest.raises(ValueError, match="ids"):
        lm(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="train_text"):
        lm.fit("the", batch_size=8, progress=False)
    with pytest.raises(ValueError, match="time_limit"):
        lm.fit(CORPUS, epochs=None, progress=False)
    with pytest.raises(ValueError, match="vocabulary"):
        numgru.LanguageModel(text.Vocabulary([]))
    with pytest.raises(RuntimeError, match="LanguageModel"):
        small_lm(device="cuda")
    with pytest.raises(RuntimeError, match="forward"):
        small_lm().backward(np.zeros((1, 1, V)))


def test_save_load_round_trip_and_a_vocabulary_that_does_not_fit(tmp_path):
    lm = small_lm(tokenizer="char", lower=True)
    path = numgru.save(tmp_path / "lm.npz", lm)
    back = numgru.load(path)
    assert isinstance(back, numgru.LanguageModel) and back.vocabulary == lm.vocabulary and back.lower
    assert all(np.array_equal(v, back.state_dict()[k]) for k, v in lm.state_dict().items())
    assert back.generate("The", 20, seed=4) == lm.generate("The", 20, seed=4)
    with np.load(path) as f:
        arrays = dict(f)
    header = json.loads(str(arrays["__numgru__"]))
    header["config"]["vocabulary"] = header["config"]["vocabulary"][:-2]
    arrays["__numgru__"] = np.array(json.dumps(header))
    np.savez(tmp_path / "bad.npz", **arrays)
    V = len(lm.vocabulary)
    with pytest.raises(numgru.ModelFileError, match=f"vocabulary .* {V - 2} tokens .* embedding has {V} rows"):
        numgru.load(tmp_path / "bad.npz")


def test_cli_train_shakespeare_and_generate(tmp_path, capsys):
    out = str(tmp_path)
    rc = main(["train", "--task", "shakespeare", "--n-train", "2000", "--n-val", "300", "--hidden", "16",
               "--layers", "1", "--embedding-dim", "8", "--batch", "4", "--bptt", "25", "--epochs", "1",
               "--eval-every", "5", "--out", out, "--quiet"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "validation:" in printed and "nats/char" in printed and "ROMEO:" in printed
    model = os.path.join(out, "shakespeare.npz")
    history = json.load(open(os.path.join(out, "shakespeare-history.json")))
    assert history["windows"] == [5, 10, 15, 20] and history["epochs"][-1] == 1.0   # ceil(1999 // 4 / 25) windows
    pytest.importorskip("matplotlib")
    assert os.path.getsize(os.path.join(out, "shakespeare.png")) > 0
    texts = []
    for _ in range(2):
        assert main(["generate", model, "--prompt", "ROMEO:", "--length", "50", "--temperature", "0.8",
                     "--seed", "0"]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] and texts[0].startswith("ROMEO:") and len(texts[0]) == len("ROMEO:") + 50 + 1
    assert main(["generate", model, "--prompt", "ROMEO:", "--temperature", "0"]) == 2
    assert "temperature" in capsys.readouterr().err
    assert main(["train", "--task", "adding", "--bptt", "10"]) == 2
    assert "--bptt" in capsys.readouterr().err
