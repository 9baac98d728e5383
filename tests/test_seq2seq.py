"""numgru.Seq2Seq: finite differences through the whole loss, padding, a copy task learnt exactly, greedy decoding."""
import numpy as np
import pytest

import numgru
from numgru.bleu import corpus_bleu

BOS, EOS = 2, 3


def _batch(rng, B, vocab, low=2, high=5):
    """Random source sentences of symbols 4..vocab-1; targets are the same (a copy task) with <bos>/<eos>."""
    lengths = rng.integers(low, high + 1, B)
    source = np.zeros((B, high), np.int64)
    target_in = np.zeros((B, high + 1), np.int64)
    target_out = np.zeros((B, high + 1), np.int64)
    for b, n in enumerate(lengths):
        words = rng.integers(4, vocab, n)
        source[b, :n] = words
        target_in[b, :n + 1] = np.concatenate([[BOS], words])
        target_out[b, :n + 1] = np.concatenate([words, [EOS]])
    return source, lengths, target_in, target_out, lengths + 1


def _loss(model, batch):
    source, source_lengths, target_in, target_out, target_lengths = batch
    logits = model(source, target_in, source_lengths, target_lengths)
    return numgru.losses.cross_entropy(logits, target_out, lengths=target_lengths, batch_first=True)


@pytest.mark.parametrize("attention", ["general", "additive", None])
def test_gradient_of_the_whole_loss_matches_finite_differences(attention):
    model = numgru.Seq2Seq(9, 8, embedding_dim=3, hidden_size=4, num_layers=2, attention=attention,
                           dtype="float64", seed=0)
    batch = _batch(np.random.default_rng(1), 3, 8)
    model.zero_grad()
    _, dlogits = _loss(model, batch)
    model.backward(dlogits)
    names = [n for n in model.parameters() if not n.endswith("bias_ih_l1")]
    for name in names:
        param = model.parameters()[name]
        index = tuple(int(i) for i in np.unravel_index(min(5, param.size - 1), param.shape))
        if name.endswith("embedding.weight"):
            index = (5, 1)                                            # a row the batch uses, not <pad>
        old = param[index]
        values = []
        for step in (1e-6, -1e-6):
            param[index] = old + step
            values.append(_loss(model, batch)[0])
        param[index] = old
        assert abs((values[0] - values[1]) / 2e-6 - model.grads[name][index]) <= 1e-8, name


def test_padding_never_changes_the_logits():
    model = numgru.Seq2Seq(9, 8, embedding_dim=3, hidden_size=4, seed=0).eval()
    source, source_lengths, target_in, _, target_lengths = _batch(np.random.default_rng(2), 4, 8)
    logits = model(source, target_in, source_lengths, target_lengths)
    padded = source.copy()
    for b, n in enumerate(source_lengths):
        padded[b, n:] = 7
    again = model(padded, target_in, source_lengths, target_lengths)
    valid = np.arange(target_in.shape[1]) < target_lengths[:, None]
    assert np.array_equal(again[valid], logits[valid])


def test_a_copy_task_is_learnt_exactly_and_decoded_greedily(tmp_path):
    rng = np.random.default_rng(0)
    model = numgru.Seq2Seq(10, 10, embedding_dim=16, hidden_size=32, seed=0)
    optimizer = numgru.optim.Adam([model], lr=0.01)
    for _ in range(800):
        batch = _batch(rng, 32, 10)
        optimizer.zero_grad()
        model.backward(_loss(model, batch)[1])
        optimizer.step()
    source, lengths, _, target_out, _ = _batch(np.random.default_rng(99), 50, 10)
    decoded = model.greedy_decode(source, lengths, bos=BOS, eos=EOS, max_len=8)
    exact = [np.array_equal(d, source[b, :lengths[b]]) for b, d in enumerate(decoded)]
    assert all(exact), np.mean(exact)
    again = numgru.load(numgru.save(tmp_path / "seq2seq.npz", model))
    assert all(np.array_equal(a, b) for a, b in zip(again.greedy_decode(source, lengths, max_len=8), decoded))


def test_bad_input():
    with pytest.raises(ValueError, match="attention must be one of"):
        numgru.Seq2Seq(5, 5, attention="dot")
    model = numgru.Seq2Seq(5, 5, embedding_dim=2, hidden_size=3, seed=0)
    with pytest.raises(ValueError, match="source"):
        model(np.zeros(3, np.int64), np.zeros((1, 2), np.int64))
    with pytest.raises(ValueError, match="target_in"):
        model(np.zeros((2, 3), np.int64), np.zeros((3, 2), np.int64))
    with pytest.raises(ValueError, match="max_len"):
        model.greedy_decode(np.zeros((1, 3), np.int64), max_len=0)
    with pytest.raises(RuntimeError, match="cuda"):
        numgru.Seq2Seq(5, 5, device="cuda")


def _sequence_log_prob(model, source, source_length, tokens, eos=EOS):
    """log p(tokens + <eos> | source) by teacher forcing."""
    target_in = np.array([[BOS, *tokens]])
    target_out = np.array([[*tokens, eos]])
    with numgru.no_grad():
        logits = model(source[None], target_in, [source_length], [len(tokens) + 1]).astype(np.float64)[0]
    log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    return float(log_probs[np.arange(len(target_out[0])), target_out[0]].sum())


def test_beam_search_finds_the_best_sequence_of_an_exhaustive_search():
    import itertools
    model = numgru.Seq2Seq(7, 6, embedding_dim=4, hidden_size=5, dtype="float64", seed=4).eval()
    source = np.array([[4, 5, 6], [6, 4, 0]])
    lengths = np.array([3, 2])
    # Every target of at most 2 words over {0, 1, 4, 5} and <eos> (ids 2 = <bos> and 3 = <eos> excluded inside).
    words = [0, 1, 4, 5]
    candidates = [list(c) for n in range(3) for c in itertools.product(words, repeat=n)]
    for b in range(2):
        scored = {tuple(c): _sequence_log_prob(model, source[b], lengths[b], c) for c in candidates}
        # A huge beam on max_len 3 keeps every prefix: beam search is then exhaustive over lengths <= 2 + <eos>.
        found = model.beam_search(source[b:b + 1], lengths[b:b + 1], beam_width=216, max_len=3, length_penalty=0.0)[0]
        best_found = _sequence_log_prob(model, source[b], lengths[b], list(found))
        assert best_found >= max(scored.values()) - 1e-9


def test_beam_width_one_equals_greedy_and_beams_are_batched():
    model = numgru.Seq2Seq(9, 8, embedding_dim=3, hidden_size=6, seed=3)
    source, lengths, *_ = _batch(np.random.default_rng(5), 6, 8)
    greedy = model.greedy_decode(source, lengths, max_len=7)
    beam = model.beam_search(source, lengths, beam_width=1, max_len=7)
    assert all(np.array_equal(g, b) for g, b in zip(greedy, beam))
    wide = model.beam_search(source, lengths, beam_width=4, max_len=7)
    alone = [model.beam_search(source[b:b + 1], lengths[b:b + 1], beam_width=4, max_len=7)[0] for b in range(6)]
    assert all(np.array_equal(w, a) for w, a in zip(wide, alone))
    with pytest.raises(ValueError, match="beam_width"):
        model.beam_search(source, lengths, beam_width=0)


def test_dropout_masks_are_the_ones_backward_uses():
    """In training with dropout, the gradient matches finite differences when each forward draws the same masks."""
    model = numgru.Seq2Seq(9, 8, embedding_dim=3, hidden_size=4, num_layers=2, dropout=0.4, dtype="float64", seed=0)
    batch = _batch(np.random.default_rng(1), 3, 8)

    def loss():
        for layer in (model, model.encoder, model.decoder):   # the same masks at every call
            layer._rng = np.random.default_rng(7)
        return _loss(model, batch)

    model.zero_grad()
    value, dlogits = loss()
    model.backward(dlogits)
    model.eval()
    assert _loss(model, batch)[0] != value                    # dropout was on in training, and is off in eval
    model.train()
    for name in ("source_embedding.weight", "decoder.weight_hh_l0", "head.weight", "encoder.weight_ih_l1"):
        param = model.parameters()[name]
        index = (5, 1) if name.endswith("embedding.weight") else (1, 2)
        old = param[index]
        values = []
        for step in (1e-6, -1e-6):
            param[index] = old + step
            values.append(loss()[0])
        param[index] = old
        assert abs((values[0] - values[1]) / 2e-6 - model.grads[name][index]) <= 1e-8, name


# ------------------------------------------------------------------ sentences: vocabularies, fit, translate

WORDS = ["red", "blue", "green", "cat", "dog", "big", "small", "the"]
FRENCH = {"red": "rouge", "blue": "bleu", "green": "vert", "cat": "chat", "dog": "chien", "big": "grand",
          "small": "petit", "the": "le"}


def _pairs(rng, n):
    """Word-for-word 'translations' of random 1-4 word sentences: learnable to the last token."""
    sources, targets = [], []
    for _ in range(n):
        words = list(rng.choice(WORDS, rng.integers(1, 5)))
        sources.append(" ".join(words).capitalize() + ".")
        targets.append(" ".join(FRENCH[w] for w in words).capitalize() + ".")
    return sources, targets


def _vocabularies(sources, targets):
    return (numgru.text.Vocabulary.build(numgru.text.tokenize_texts("s", sources, "word", True)),
            numgru.text.Vocabulary.build(numgru.text.tokenize_texts("t", targets, "word", False)))


@pytest.fixture(scope="module")
def translator():
    rng = np.random.default_rng(0)
    sources, targets = _pairs(rng, 600)
    model = numgru.Seq2Seq(*_vocabularies(sources, targets), embedding_dim=16, hidden_size=32, seed=0)
    history = model.fit(sources, targets, validation_data=_pairs(rng, 60), epochs=12, batch_size=32, lr=0.01,
                        seed=0, progress=False)
    return model, history


def test_fit_on_sentences_learns_a_word_for_word_translation(translator, tmp_path):
    model, history = translator
    assert history.val_loss[-1] < 0.1 * history.val_loss[0]
    sources, targets = _pairs(np.random.default_rng(5), 40)
    expected = [" ".join(numgru.text.word_tokenize(t, lower=False)) for t in targets]
    for width in (1, 3):
        translations = model.translate(sources, beam_width=width)
        assert all(isinstance(t, str) for t in translations)
        assert np.mean([t == e for t, e in zip(translations, expected)]) >= 0.9, width
        assert corpus_bleu(translations, targets).score >= 90.0
    assert model.translate(sources[:5], batch_size=2) == translations[:5]
    again = numgru.load(numgru.save(tmp_path / "translator.npz", model))
    assert again.source_vocabulary == model.source_vocabulary and again.target_vocabulary == model.target_vocabulary
    assert again.translate(sources, beam_width=3) == translations


def test_attention_weights_sum_to_one_over_the_sentence_and_are_zero_past_it(translator):
    model, _ = translator
    source, source_lengths = model.encode_sources(["The big red dog.", "Cat."])
    target_in, _, target_lengths = model.encode_targets(["Le grand rouge chien.", "Chat."])
    weights = model.attention_weights(source, target_in, source_lengths, target_lengths)
    assert weights.shape == (2, target_in.shape[1], source.shape[1])
    assert np.allclose(weights.sum(axis=-1), 1.0, atol=1e-6)
    assert not weights[1, :, source_lengths[1]:].any()
    # row t predicts target word t, the translation of source word t: the alignment learnt is the diagonal
    assert list(weights[0, :5].argmax(axis=1)) == [0, 1, 2, 3, 4]


def test_bad_sentences_and_options(translator, tmp_path):
    model, _ = translator
    with pytest.raises(ValueError, match=r"sentences\[1\] '' cannot be translated: it holds no word"):
        model.translate(["Cat.", ""])
    with pytest.raises(ValueError, match=r"sentences\[0\] '   ' cannot be translated"):
        model.translate(["   "])
    with pytest.raises(ValueError, match=r"sentences\[0\] 'Zebra xylophone' .* none of its 2 tokens"):
        model.translate(["Zebra xylophone", "Cat."])
    assert model.why_untranslatable("Zebra cat") is None             # one known word is enough: zebra reads <unk>
    assert len(model.translate(["Zebra cat"])) == 1
    with pytest.raises(TypeError, match="sentences must be a list of str"):
        model.translate("Cat.")
    with pytest.raises(ValueError, match="beam_width"):
        model.translate(["Cat."], beam_width=0)
    with pytest.raises(ValueError, match="max_len"):
        model.translate(["Cat."], max_len=0)
    with pytest.raises(ValueError, match="targets must hold one sentence per sentence of sources"):
        model.fit(["Cat.", "Dog."], ["Chat."], epochs=1, progress=False)
    ids_only = numgru.Seq2Seq(9, 8, embedding_dim=3, hidden_size=4, seed=0)
    with pytest.raises(ValueError, match="translate needs the model's vocabularies"):
        ids_only.translate(["Cat."])
    again = numgru.load(numgru.save(tmp_path / "ids.npz", ids_only))
    assert again.source_vocabulary is None and again.config()["source_vocabulary"] == 9
    with pytest.raises(TypeError, match="source_vocabulary must be a numgru.text.Vocabulary"):
        numgru.Seq2Seq("abc", 5)
    with pytest.raises(ValueError, match="dropout"):
        numgru.Seq2Seq(5, 5, dropout=1.0)
