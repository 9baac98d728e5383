"""numgru.text (tokenisers, Vocabulary, pad) and the text data sets that ship in numgru/data/."""
import json
import os
import pickle
import random
import unicodedata

import numpy as np
import pytest

from numgru import tasks, text

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.pardir, "shared", "datasets")
needs_shared = pytest.mark.skipif(not os.path.isdir(SHARED), reason="../shared/datasets is not here")

SEQUENCES = [["b", "a", "c", "a"], ["c", "a", "d"], ["é", "b"]]      # a 3, b 2, c 2, d 1, é 1


# ------------------------------------------------------------------ vocabulary

def test_build_order_is_specials_then_count_then_code_point():
    vocab = text.Vocabulary.build(SEQUENCES)
    assert vocab.tokens == ["<pad>", "<unk>", "<bos>", "<eos>", "a", "b", "c", "d", "é"]
    assert (vocab.pad_index, vocab.unk_index, vocab.bos_index, vocab.eos_index) == (0, 1, 2, 3)
    assert [vocab[s] for s in text.SPECIALS] == [0, 1, 2, 3]
    assert (text.PAD, text.UNK, text.BOS, text.EOS) == ("<pad>", "<unk>", "<bos>", "<eos>")
    assert len(vocab) == 9 and "a" in vocab and "z" not in vocab and vocab["z"] == vocab.unk_index


def test_build_is_independent_of_input_order():
    words = text.word_tokenize(tasks.shakespeare_text()[:20000])
    reference = text.Vocabulary.build([words])
    rng = random.Random(0)
    for _ in range(3):
        shuffled = words[:]
        rng.shuffle(shuffled)
        chunks = [shuffled[i:i + 37] for i in range(0, len(shuffled), 37)]
        rng.shuffle(chunks)
        assert text.Vocabulary.build(iter(chunks)) == reference       # any iterable, a generator included


def test_min_freq_and_max_size():
    assert text.Vocabulary.build(SEQUENCES, min_freq=2).tokens[4:] == ["a", "b", "c"]
    assert text.Vocabulary.build(SEQUENCES, max_size=2).tokens[4:] == ["a", "b"]
    assert text.Vocabulary.build(SEQUENCES, min_freq=2, max_size=10).tokens[4:] == ["a", "b", "c"]
    assert text.Vocabulary.build(SEQUENCES, min_freq=4).tokens == list(text.SPECIALS)


def test_specials_in_the_input_keep_their_ids_and_are_not_counted():
    vocab = text.Vocabulary.build([["<unk>", "x", "<pad>", "<pad>"]])
    assert vocab.tokens == list(text.SPECIALS) + ["x"]
    assert list(vocab.encode(["<pad>", "x", "<eos>"])) == [0, 4, 3]


def test_encode_decode_round_trip():
    vocab = text.Vocabulary.build(SEQUENCES)
    tokens = ["a", "é", "d", "c"]
    ids = vocab.encode(tokens)
    assert ids.dtype == np.int64 and list(ids) == [4, 8, 7, 6]
    assert vocab.decode(ids) == tokens
    with_ends = vocab.encode(tokens, add_bos=True, add_eos=True)
    assert list(with_ends) == [2, 4, 8, 7, 6, 3]
    assert vocab.decode(with_ends, skip_specials=True) == tokens
    assert vocab.decode([0, 1, 2, 3], skip_specials=True) == ["<unk>"]   # <unk> stands for a real token
    assert vocab.decode(np.array([4, 5], np.int32)) == ["a", "b"]
    assert vocab.decode([]) == []
    assert list(vocab.encode([], add_bos=True)) == [2]


def test_unknown_tokens_become_unk():
    vocab = text.Vocabulary.build(SEQUENCES)
    ids = vocab.encode(["a", "zebra", "e\u0301", "É"])      # NFD é and capital É were never seen
    assert list(ids) == [4, 1, 1, 1]
    assert vocab.decode(ids) == ["a", "<unk>", "<unk>", "<unk>"]


def test_to_list_from_list_json_pickle_eq_hash_repr():
    vocab = text.Vocabulary.build(SEQUENCES)
    stored = json.loads(json.dumps(vocab.to_list()))
    assert text.Vocabulary.from_list(stored) == vocab
    assert pickle.loads(pickle.dumps(vocab)) == vocab
    assert text.Vocabulary(["a", "b", "c", "d", "é"]) == vocab and hash(text.Vocabulary(vocab.tokens[4:])) == hash(vocab)
    assert text.Vocabulary(["b", "a", "c", "d", "é"]) != vocab and vocab != vocab.to_list()
    stored.append("new")
    assert len(vocab) == 9 and vocab.tokens.append("x") is None and len(vocab.tokens) == 9   # copies out
    assert repr(vocab) == "Vocabulary(9 tokens: specials, then ['a', 'b', 'c', 'd', 'é'])"
    assert "..." in repr(text.Vocabulary([str(i) for i in range(20)]))


def test_vocabulary_does_not_modify_its_inputs():
    sequences = [list(s) for s in SEQUENCES]
    tokens = ["a", "b"]
    text.Vocabulary.build(sequences)
    text.Vocabulary(tokens).encode(tokens)
    assert sequences == SEQUENCES and tokens == ["a", "b"]


# ------------------------------------------------------------------ tokenisers

def test_word_tokenize_words_apostrophes_hyphens_punctuation():
    assert text.word_tokenize("Don't stop -- it's a well-known fact, isn't it?!") == [
        "don't", "stop", "-", "-", "it's", "a", "well-known", "fact", ",", "isn't", "it", "?", "!"]
    assert text.word_tokenize("Don’t   go\n\tnow...", lower=False) == ["Don’t", "go", "now", ".", ".", "."]
    assert text.word_tokenize("'quoted' dogs' x-") == ["'", "quoted", "'", "dogs", "'", "x", "-"]
    assert text.word_tokenize("3.5 km/h, snake_case 42nd") == ["3", ".", "5", "km", "/", "h", ",", "snake_case",
                                                              "42nd"]


def test_word_tokenize_unicode():
    nfc, nfd = "Café Noël", unicodedata.normalize("NFD", "Café Noël")
    assert nfc != nfd
    assert text.word_tokenize(nfc) == text.word_tokenize(nfd) == ["café", "noël"]
    assert text.word_tokenize("ÉCOLE", lower=False) == ["ÉCOLE"]
    assert text.word_tokenize("Привет, мир! Γειά σου.") == ["привет", ",", "мир", "!", "γειά", "σου", "."]
    assert text.word_tokenize("हिन्दी नमस्ते") == ["हिन्दी", "नमस्ते"]       # vowel signs are marks, inside words
    assert text.word_tokenize("مرحبا بالعالم") == ["مرحبا", "بالعالم"]
    assert text.word_tokenize("日本語のテキスト。") == ["日本語のテキスト", "。"]
    assert text.word_tokenize("good😀👍 ok") == ["good", "😀", "👍", "ok"]


def test_char_tokenize_unicode_and_round_trip():
    assert text.char_tokenize("Ab c") == ["A", "b", " ", "c"]
    assert text.char_tokenize("Ab", lower=True) == ["a", "b"]
    nfd = unicodedata.normalize("NFD", "é!")
    assert len(nfd) == 3 and text.char_tokenize(nfd) == ["é", "!"]
    assert text.char_tokenize("日本 😀") == ["日", "本", " ", "😀"]
    family = "👨\u200d👩\u200d👧"                                   # one emoji, five code points
    assert text.char_tokenize(family) == list(family)
    sample = "Ça va?\nНу, 日本 👨\u200d👩\u200d👧 e\u0301"
    assert text.detokenize(text.char_tokenize(sample), "char") == unicodedata.normalize("NFC", sample)


def test_tokenize_dispatch_and_detokenize():
    assert text.tokenize("Hi there!") == ["hi", "there", "!"]
    assert text.tokenize("Hi there!", kind="word", lower=False) == ["Hi", "there", "!"]
    assert text.tokenize("Hi", kind="char") == ["H", "i"]
    assert text.tokenize("Hi", kind="char", lower=True) == ["h", "i"]
    assert text.detokenize(["hi", "there", "!"], "word") == "hi there !"
    assert text.detokenize(["H", "i"], "char") == "Hi"
    assert text.detokenize([], "word") == ""


# ------------------------------------------------------------------ pad

def test_pad_both_layouts_and_max_len():
    seqs = [np.array([5, 6, 7]), [8], np.array([9, 10], np.int32)]
    ids, lengths = text.pad(seqs)
    assert ids.dtype == lengths.dtype == np.int64
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]] and lengths.tolist() == [3, 1, 2]
    ids_t, lengths_t = text.pad(seqs, batch_first=False)
    assert ids_t.shape == (3, 3) and (ids_t == ids.T).all() and ids_t.flags.c_contiguous
    assert (lengths_t == lengths).all()
    ids, lengths = text.pad(seqs, pad_index=99, max_len=2)
    assert ids.tolist() == [[5, 6], [8, 99], [9, 10]] and lengths.tolist() == [2, 1, 2]
    ids, lengths = text.pad(seqs, max_len=10)                       # T is the longest, never more
    assert ids.shape == (3, 3)
    ids, lengths = text.pad(np.array([[1, 2], [3, 4]]))             # a 2-D array: its rows
    assert ids.tolist() == [[1, 2], [3, 4]] and lengths.tolist() == [2, 2]
    assert seqs[0].tolist() == [5, 6, 7]


# ------------------------------------------------------------------ bad input, argument named

@pytest.mark.parametrize("call, error, name", [
    (lambda: text.word_tokenize(""), ValueError, "s"),
    (lambda: text.word_tokenize(" \n\t"), ValueError, "s"),
    (lambda: text.char_tokenize(""), ValueError, "s"),
    (lambda: text.word_tokenize(b"bytes"), TypeError, "s"),
    (lambda: text.char_tokenize(None), TypeError, "s"),
    (lambda: text.char_tokenize("a", lower="yes"), TypeError, "lower"),
    (lambda: text.tokenize("a", kind="bpe"), ValueError, "kind"),
    (lambda: text.detokenize(["a"], "words"), ValueError, "kind"),
    (lambda: text.detokenize("abc", "char"), TypeError, "tokens"),
    (lambda: text.Vocabulary.build([]), ValueError, "sequences"),
    (lambda: text.Vocabulary.build("abc"), TypeError, "sequences"),
    (lambda: text.Vocabulary.build(["ab", "c"]), TypeError, "sequences[0]"),
    (lambda: text.Vocabulary.build([["a", 1]]), TypeError, "sequences[0][1]"),
    (lambda: text.Vocabulary.build([["a", ""]]), ValueError, "sequences[0][1]"),
    (lambda: text.Vocabulary.build(5), TypeError, "sequences"),
    (lambda: text.Vocabulary.build(SEQUENCES, min_freq=0), ValueError, "min_freq"),
    (lambda: text.Vocabulary.build(SEQUENCES, min_freq=1.5), TypeError, "min_freq"),
    (lambda: text.Vocabulary.build(SEQUENCES, max_size=0), ValueError, "max_size"),
    (lambda: text.Vocabulary.build(SEQUENCES, max_size="10"), TypeError, "max_size"),
    (lambda: text.Vocabulary(["a", "a"]), ValueError, "tokens"),
    (lambda: text.Vocabulary(["<unk>", "a"]), ValueError, "tokens"),
    (lambda: text.Vocabulary.from_list(["a", "b"]), ValueError, "tokens"),
    (lambda: text.Vocabulary(["a"]).encode([]), ValueError, "tokens"),
    (lambda: text.Vocabulary(["a"]).encode("a"), TypeError, "tokens"),
    (lambda: text.Vocabulary(["a"]).encode(["a", None]), TypeError, "tokens[1]"),
    (lambda: text.Vocabulary(["a"])[3], TypeError, "token"),
    (lambda: text.Vocabulary(["a"]).decode([0, 5]), ValueError, "ids"),
    (lambda: text.Vocabulary(["a"]).decode([-1]), ValueError, "ids"),
    (lambda: text.Vocabulary(["a"]).decode([1.0]), TypeError, "ids"),
    (lambda: text.Vocabulary(["a"]).decode([[1]]), ValueError, "ids"),
    (lambda: text.pad([]), ValueError, "encoded_sequences"),
    (lambda: text.pad(None), TypeError, "encoded_sequences"),
    (lambda: text.pad([[1], []]), ValueError, "encoded_sequences[1]"),
    (lambda: text.pad([[1.5]]), TypeError, "encoded_sequences[0]"),
    (lambda: text.pad(["ab"]), TypeError, "encoded_sequences[0]"),
    (lambda: text.pad([[1]], max_len=0), ValueError, "max_len"),
    (lambda: text.pad([[1]], pad_index=-1), ValueError, "pad_index"),
])
def test_bad_input_names_the_argument(call, error, name):
    with pytest.raises(error, match=rf"^{name.replace('[', '.').replace(']', '.')} "):
        call()


# ------------------------------------------------------------------ shipped data

def test_shakespeare_text():
    s = tasks.shakespeare_text()
    assert isinstance(s, str) and len(s) == 1_115_394
    assert s.startswith("First Citizen:\nBefore we proceed any further") and s.endswith("\n")
    assert len(set(s)) == 65


def test_sentiment_sentences():
    sentences, labels, sources = tasks.sentiment_sentences()
    assert len(sentences) == len(sources) == 3000 and labels.shape == (3000,) and labels.dtype == np.int64
    assert set(labels.tolist()) == {0, 1} and labels.sum() == 1500
    assert {s: sources.count(s) for s in set(sources)} == {"amazon": 1000, "imdb": 1000, "yelp": 1000}
    for source in ("amazon", "imdb", "yelp"):
        assert labels[np.array(sources) == source].sum() == 500
    assert sentences[0].startswith("So there is no way for me to plug it in here in the US")
    assert all(isinstance(s, str) and s.strip() and "\t" not in s and "\n" not in s for s in sentences)
    assert all(text.word_tokenize(s) for s in sentences)


@needs_shared
def test_shipped_data_match_the_originals_byte_for_byte():
    with open(os.path.join(SHARED, "tinyshakespeare", "input.txt"), "rb") as f:
        assert tasks.shakespeare_text().encode("utf-8") == f.read()
    sentences, labels, sources = tasks.sentiment_sentences()
    for source, name in (("amazon", "amazon_cells"), ("imdb", "imdb"), ("yelp", "yelp")):
        rebuilt = "".join(f"{s}\t{y}\n" for s, y, src in zip(sentences, labels, sources) if src == source)
        with open(os.path.join(SHARED, "sentiment-labelled-sentences", f"{name}_labelled.txt"), "rb") as f:
            assert rebuilt.encode("utf-8") == f.read(), name
