"""Text to token ids and back: tokenisers, a vocabulary, padding into ``(ids, lengths)``.

    >>> from numgru import text
    >>> sentences = ["The cat sat.", "The dog didn't bark!"]
    >>> tokens = [text.word_tokenize(s) for s in sentences]
    >>> tokens[1]
    ['the', 'dog', "didn't", 'bark', '!']
    >>> vocab = text.Vocabulary.build(tokens)
    >>> vocab.tokens
    ['<pad>', '<unk>', '<bos>', '<eos>', 'the', '!', '.', 'bark', 'cat', "didn't", 'dog', 'sat']
    >>> ids, lengths = text.pad([vocab.encode(t) for t in tokens])
    >>> ids
    array([[ 4,  8, 11,  6,  0],
           [ 4, 10,  9,  7,  5]])
    >>> lengths
    array([4, 5])
    >>> vocab.decode(vocab.encode(["the", "bird"]))
    ['the', '<unk>']

Tokenisers normalise to Unicode NFC first, so a precomposed "é" and "e" followed
by a combining accent give the same tokens. ``char_tokenize`` yields code points
(an emoji written as several code points, e.g. a flag or a ZWJ family, gives
several tokens; ``detokenize`` joins them back). ``word_tokenize`` yields words
(letters, digits, underscores and combining marks, with inner apostrophes ' or ’
and hyphens: "don't", "well-known") and every other visible character as a token
of its own (punctuation, symbols, emoji); white space only separates.

A vocabulary's order is fixed and documented: the specials ``<pad>`` = 0,
``<unk>`` = 1, ``<bos>`` = 2, ``<eos>`` = 3, then the tokens by descending count,
ties in Unicode code-point order, so the same counts give the same ids whatever
order the sequences came in. Tokens never seen when it was built encode as ``<unk>``.
"""
import functools
import re
import sys
import unicodedata
from collections import Counter

import numpy as np

from . import validation

__all__ = ["PAD", "UNK", "BOS", "EOS", "SPECIALS", "Vocabulary", "char_tokenize", "word_tokenize", "tokenize",
           "detokenize", "tokenize_texts", "pad", "TOKENIZERS"]

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)
TOKENIZERS = ("word", "char")
_DEFAULT_LOWER = {"word": True, "char": False}
_INNER = "'\u2019\\-\u2010\u2011"      # joiners inside a word: apostrophes ' ’ and hyphens - ‐ ‑


class Vocabulary:
    """Token <-> id map: the specials (ids 0-3), then ``tokens`` in the order given.

    ``Vocabulary.build`` makes one from token sequences in the documented order;
    the constructor takes an explicit list (the non-special tokens, each once).
    """

    def __init__(self, tokens):
        tokens = _check_tokens("tokens", tokens)
        clashes = sorted(set(tokens) & set(SPECIALS))
        if clashes:
            raise ValueError(f"tokens must not contain the specials {SPECIALS} (they come first by themselves), "
                             f"got {clashes}")
        self._tokens = SPECIALS + tuple(tokens)
        self._index = {token: i for i, token in enumerate(self._tokens)}
        if len(self._index) != len(self._tokens):
            repeated = sorted(t for t, n in Counter(tokens).items() if n > 1)
            raise ValueError(f"tokens must be distinct, got repeats of {repeated[:10]}")

    @classmethod
    def build(cls, sequences, min_freq=1, max_size=None):
        """The vocabulary of ``sequences`` (an iterable of token lists).

        Tokens seen fewer than ``min_freq`` times are dropped; ``max_size`` caps the
        number of non-special tokens (the most frequent are kept). Order: descending
        count, ties by code point. A special appearing among the tokens is not counted.
        """
        min_freq = validation.check_positive_int("min_freq", min_freq)
        if max_size is not None:
            max_size = validation.check_positive_int("max_size", max_size)
        if isinstance(sequences, str) or not hasattr(sequences, "__iter__"):
            raise TypeError(f"sequences must be an iterable of token lists, got {type(sequences).__name__} "
                            "(tokenize text first, e.g. [text.char_tokenize(s)])")
        counts = Counter()
        n = 0
        for n, sequence in enumerate(sequences, 1):
            counts.update(_check_tokens(f"sequences[{n - 1}]", sequence))
        if n == 0:
            raise ValueError("sequences must hold at least one token sequence, got none")
        for special in SPECIALS:
            counts.pop(special, None)
        ranked = sorted((token for token, count in counts.items() if count >= min_freq),
                        key=lambda token: (-counts[token], token))
        return cls(ranked[:max_size])

    @classmethod
    def from_list(cls, tokens):
        """Inverse of ``to_list``: the full token list, specials first."""
        tokens = _check_tokens("tokens", tokens)
        if tuple(tokens[:len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"tokens must start with the specials {list(SPECIALS)}, got {tokens[:len(SPECIALS)]}")
        return cls(tokens[len(SPECIALS):])

    def to_list(self):
        """Every token, specials included, in id order: JSON-able, and ``from_list`` rebuilds the vocabulary."""
        return list(self._tokens)

    @property
    def tokens(self):
        """Every token in id order (specials first), a new list."""
        return list(self._tokens)

    pad_index = SPECIALS.index(PAD)
    unk_index = SPECIALS.index(UNK)
    bos_index = SPECIALS.index(BOS)
    eos_index = SPECIALS.index(EOS)

    def __len__(self):
        return len(self._tokens)

    def __contains__(self, token):
        return token in self._index

    def __getitem__(self, token):
        """The id of ``token``; ``unk_index`` for a token the vocabulary does not hold."""
        if not isinstance(token, str):
            raise TypeError(f"token must be a str, got {type(token).__name__}")
        return self._index.get(token, self.unk_index)

    def encode(self, tokens, add_bos=False, add_eos=False):
        """Token list -> int64 ids; unseen tokens become ``unk_index``. The result may not be empty."""
        tokens = _check_tokens("tokens", tokens)
        get, unk = self._index.get, self.unk_index
        ids = [self.bos_index] * bool(add_bos) + [get(t, unk) for t in tokens] + [self.eos_index] * bool(add_eos)
        if not ids:
            raise ValueError("tokens must hold at least one token (or ask for add_bos/add_eos), got an empty list")
        return np.array(ids, np.int64)

    def decode(self, ids, skip_specials=False):
        """Integer ids -> list of tokens. ``skip_specials`` drops <pad>, <bos> and <eos>
        (<unk> stays: it stands for a token that was there). No ids give an empty list."""
        arr = np.asarray(ids)
        if arr.size == 0:
            return []
        if arr.dtype.kind not in "iu":
            raise TypeError(f"ids must be an array of integer token ids, got dtype {arr.dtype.name}")
        if arr.ndim != 1:
            raise ValueError(f"ids must be 1-D (one sequence), got shape {arr.shape}")
        if arr.min() < 0 or arr.max() >= len(self):
            raise ValueError(f"ids must lie in [0, {len(self)}) for a vocabulary of {len(self)} tokens, "
                             f"got min {arr.min()} and max {arr.max()}")
        skip = {self.pad_index, self.bos_index, self.eos_index} if skip_specials else ()
        return [self._tokens[i] for i in arr.tolist() if i not in skip]

    def __eq__(self, other):
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self._tokens == other._tokens

    def __hash__(self):
        return hash(self._tokens)

    def __repr__(self):
        shown = ", ".join(map(repr, self._tokens[len(SPECIALS):len(SPECIALS) + 8]))
        more = ", ..." if len(self) > len(SPECIALS) + 8 else ""
        return f"Vocabulary({len(self)} tokens: specials, then [{shown}{more}])"


def _check_tokens(name, tokens):
    """A list of non-empty str tokens (any iterable that is not itself a str) -> list."""
    tokens = validation.check_str_list(name, tokens, "str tokens", "str token",
                                       " (tokenize it first: text.tokenize(s, kind))")
    for i, token in enumerate(tokens):
        if not token:
            raise ValueError(f"{name}[{i}] is an empty string: a token has at least one character")
    return tokens


def _check_text(s, lower):
    """Input of a tokeniser -> NFC-normalised (and lower-cased) text."""
    if not isinstance(s, str):
        raise TypeError(f"s must be a str, got {type(s).__name__}")
    if not s:
        raise ValueError("s must be a non-empty str, got ''")
    if not isinstance(lower, (bool, np.bool_)):
        raise TypeError(f"lower must be True or False, got {lower!r}")
    return unicodedata.normalize("NFC", s.lower() if lower else s)


def char_tokenize(s, lower=False):
    """The NFC-normalised code points of ``s`` (lower-cased first with ``lower``), white space included."""
    return list(_check_text(s, lower))


@functools.cache
def _word_pattern():
    # Python's \w omits combining marks (categories M*), which Devanagari, Thai, Arabic, ... need inside
    # words; their class is built once, on first use (~0.2 s), so that importing numgru stays fast.
    marks = [c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c))[0] == "M"]
    ranges, start = [], marks[0]
    for previous, c in zip(marks, marks[1:] + [None]):
        if c != previous + 1:
            ranges.append(f"\\U{start:08x}" + (f"-\\U{previous:08x}" if previous > start else ""))
            start = c
    letter = f"[\\w{''.join(ranges)}]"
    return re.compile(f"{letter}+(?:[{_INNER}]{letter}+)*|[^\\w\\s]")


def word_tokenize(s, lower=True):
    """Words (with inner apostrophes and hyphens) and single punctuation/symbol characters of ``s``, NFC."""
    tokens = _word_pattern().findall(_check_text(s, lower))
    if not tokens:
        raise ValueError(f"s holds no word or punctuation, only white space: {s!r}")
    return tokens


def tokenize(s, kind="word", lower=None):
    """``word_tokenize`` or ``char_tokenize`` by name; ``lower=None`` is that tokeniser's default."""
    validation.check_choice("kind", kind, TOKENIZERS)
    lower = _DEFAULT_LOWER[kind] if lower is None else lower
    return (word_tokenize if kind == "word" else char_tokenize)(s, lower)


def _check_texts(name, texts):
    """A list (or 1-D array, any iterable that is not a str) of non-empty str -> list of str."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{name} must be a list of str (one text each), got a single {type(texts).__name__}: "
                        f"wrap it in a list")
    if isinstance(texts, np.ndarray) and texts.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one text per entry), got an array of shape {texts.shape}")
    texts = validation.check_str_list(name, texts)
    if not texts:
        raise ValueError(f"{name} must hold at least one text, got none")
    return texts


def tokenize_texts(name, texts, tokenizer, lower):
    """Each text of ``texts`` as its token list; a text that gives no token raises ValueError naming it."""
    texts = _check_texts(name, texts)
    tokenized = []
    for i, s in enumerate(texts):
        try:
            tokenized.append(tokenize(s, tokenizer, lower))
        except ValueError as err:
            raise ValueError(f"{name}[{i}] gives no token: {err}") from None
    return tokenized


def detokenize(tokens, kind):
    """Tokens back to a str: joined by "" for ``kind="char"``, by " " for ``"word"``; no tokens give ""."""
    validation.check_choice("kind", kind, TOKENIZERS)
    return ("" if kind == "char" else " ").join(_check_tokens("tokens", tokens))


def pad(encoded_sequences, pad_index=0, max_len=None, batch_first=True):
    """Encoded sequences of different lengths -> (ids int64 (B, T), lengths int64 (B,)).

    T is the longest length, at most ``max_len`` (longer sequences keep their first
    ``max_len`` ids); positions past a sequence's length hold ``pad_index``.
    ``batch_first=False`` gives ids as (T, B), the layout of ``numgru.GRU``'s default.
    """
    if isinstance(encoded_sequences, np.ndarray) and encoded_sequences.dtype != object:
        encoded_sequences = list(encoded_sequences)        # a 2-D array: its rows
    try:
        sequences = list(encoded_sequences)
    except TypeError:
        raise TypeError("encoded_sequences must be a list of 1-D integer arrays, "
                        f"got {type(encoded_sequences).__name__}") from None
    if not sequences:
        raise ValueError("encoded_sequences must hold at least one sequence, got none")
    pad_index = validation.check_nonnegative_int("pad_index", pad_index)
    if max_len is not None:
        max_len = validation.check_positive_int("max_len", max_len)
    arrays = []
    for i, sequence in enumerate(sequences):
        name = f"encoded_sequences[{i}]"
        if isinstance(sequence, str):
            raise TypeError(f"{name} must be a 1-D array of integer ids, got a str (encode it first: vocab.encode)")
        arr = np.asarray(sequence)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"{name} must be a non-empty 1-D sequence of ids, got shape {arr.shape}")
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer ids, got dtype {arr.dtype.name}")
        arrays.append(arr[:max_len])
    lengths = np.array([len(a) for a in arrays], np.int64)
    ids = np.full((len(arrays), lengths.max()), pad_index, np.int64)
    for row, arr in zip(ids, arrays):
        row[:len(arr)] = arr
    return (ids, lengths) if batch_first else (np.ascontiguousarray(ids.T), lengths)
