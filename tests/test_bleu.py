"""numgru.bleu against sacrebleu on the shipped Tatoeba sentences, its bad inputs, and the shipped pairs themselves."""
import os
import subprocess
import sys
import unicodedata
from collections import defaultdict

import numpy as np
import pytest

from numgru import bleu, tasks

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.pardir, "shared", "datasets")
ENGLISH, FRENCH, ATTRIBUTIONS = tasks.tatoeba_pairs()


@pytest.fixture(scope="module")
def sacrebleu():
    return pytest.importorskip("sacrebleu")


def assert_same(ours, theirs):
    assert ours.score == pytest.approx(theirs.score, abs=1e-9, rel=0)
    assert ours.precisions == pytest.approx(theirs.precisions, abs=1e-9, rel=0)
    assert ours.bp == pytest.approx(theirs.bp, abs=1e-12, rel=0)
    assert (ours.counts, ours.totals) == (tuple(theirs.counts), tuple(theirs.totals))
    assert (ours.sys_len, ours.ref_len) == (theirs.sys_len, theirs.ref_len)
    assert str(ours) == theirs.format()


def drop_word(s, rng):
    words = s.split()
    if len(words) > 1:
        del words[rng.integers(len(words))]
    return " ".join(words)


def shuffle_words(s, rng):
    words = s.split()
    return " ".join(words[i] for i in rng.permutation(len(words)))


def strip_accents(s, rng):
    return "".join(c for c in unicodedata.normalize("NFD", s) if not unicodedata.combining(c))


def change_punctuation(s, rng):
    return s.replace("\u202f", " ").replace("\xa0", " ").replace(" !", "!").replace(".", " .").replace("'", " ' ")


def keep_three_words(s, rng):
    return " ".join(s.split()[:3])


CORRUPTIONS = [drop_word, shuffle_words, strip_accents, change_punctuation, keep_three_words]


def corrupted(function, seed=0):
    rng = np.random.default_rng(seed)
    return [function(s, rng) for s in FRENCH]


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=lambda f: f.__name__)
def test_corpus_bleu_matches_sacrebleu(sacrebleu, corruption):
    hypotheses = corrupted(corruption)
    for tokenize, lowercase in (("13a", False), ("13a", True), ("none", False)):
        assert_same(bleu.corpus_bleu(hypotheses, FRENCH, tokenize=tokenize, lowercase=lowercase),
                    sacrebleu.corpus_bleu(hypotheses, [FRENCH], tokenize=tokenize, lowercase=lowercase))


def test_corpus_bleu_edge_cases_match_sacrebleu(sacrebleu):
    rng = np.random.default_rng(1)
    mixed = [[drop_word, shuffle_words, strip_accents][i % 3](s, rng) for i, s in enumerate(FRENCH)]
    some_empty = ["" if i % 7 == 0 else s for i, s in enumerate(mixed)]
    cases = {"perfect": FRENCH, "some empty": some_empty, "all empty": [""] * len(FRENCH),
             "copy the English": ENGLISH, "trailing space": [s + "  " for s in mixed],
             "no match": ["zzz"] * len(FRENCH), "one word each": [s.split()[0] for s in FRENCH]}
    for name, hypotheses in cases.items():
        ours = bleu.corpus_bleu(hypotheses, FRENCH)
        assert_same(ours, sacrebleu.corpus_bleu(hypotheses, [FRENCH]))
    assert bleu.corpus_bleu(FRENCH, FRENCH).score == pytest.approx(100.0, abs=1e-9)
    assert bleu.corpus_bleu(FRENCH, FRENCH).bp == 1.0
    empty = bleu.corpus_bleu([""] * 3, FRENCH[:3])
    assert (empty.score, empty.bp, empty.sys_len) == (0.0, 0.0, 0)
    assert bleu.corpus_bleu(["Va !"], ["Va !"]).score == 0.0      # no 3- or 4-grams: 0, as sacrebleu
    # a single-sentence corpus with unmatched orders exercises the "exp" smoothing
    hypothesis, reference = ["Le chien est assis sur le tapis rouge."], ["Le chat est sur le tapis."]
    assert_same(bleu.corpus_bleu(hypothesis, reference), sacrebleu.corpus_bleu(hypothesis, [reference]))


def test_several_references_match_sacrebleu(sacrebleu):
    translations = defaultdict(list)
    for english, french in zip(ENGLISH, FRENCH):
        translations[english].append(french)
    sources = list(translations)
    rng = np.random.default_rng(2)
    hypotheses = [drop_word(translations[e][-1], rng) for e in sources]
    references = [translations[e] for e in sources]
    width = max(map(len, references))
    assert width > 1 and min(map(len, references)) == 1
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]
    ours = bleu.corpus_bleu(hypotheses, references)
    assert_same(ours, sacrebleu.corpus_bleu(hypotheses, streams))
    assert ours.score > bleu.corpus_bleu(hypotheses, [refs[0] for refs in references]).score
    # a list of one reference each is the same as the references themselves
    assert bleu.corpus_bleu(hypotheses, [[r[0]] for r in references]) == bleu.corpus_bleu(hypotheses,
                                                                                        [r[0] for r in references])


def test_sentence_bleu_matches_sacrebleu(sacrebleu):
    rng = np.random.default_rng(3)
    for i in range(0, len(FRENCH), 10):
        corruption = CORRUPTIONS[i // 10 % len(CORRUPTIONS)]
        hypothesis = corruption(FRENCH[i], rng)
        references = [FRENCH[i], FRENCH[i - 1]] if i % 20 else FRENCH[i]
        theirs = sacrebleu.sentence_bleu(hypothesis, [references] if isinstance(references, str) else references)
        assert_same(bleu.sentence_bleu(hypothesis, references), theirs)


def test_tokenizer_13a_matches_sacrebleu_on_every_sentence(sacrebleu):
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    theirs = Tokenizer13a()
    tricky = ["3.5, 1,000 and 2-3 a-b -4 x.y 7.", "&quot;A&quot; &amp; &lt;b&gt; <skipped> hy-\nphen\nline",
              "l'été: «\u202fOui\u202f»\u00a0! {a}|b~c`d^e_f@g#h$i%j*k+l=m/n\\o",  " \t  ", "", "...,,,"]
    for line in ENGLISH + FRENCH + tricky:
        assert bleu.tokenize_13a(line) == theirs(line), line


def test_numgru_does_not_import_sacrebleu():
    code = "import sys, numgru, numgru.bleu; assert 'sacrebleu' not in sys.modules, 'sacrebleu imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))


def test_bad_inputs():
    with pytest.raises(ValueError, match="references must hold one entry per hypothesis: 2 hypotheses, 1"):
        bleu.corpus_bleu(["a", "b"], ["a"])
    with pytest.raises(TypeError, match=r"hypotheses\[1\] must be a str, got int"):
        bleu.corpus_bleu(["a", 3], ["a", "b"])
    with pytest.raises(TypeError, match="hypotheses must be a list of str, got a str"):
        bleu.corpus_bleu("a b", ["a b"])
    with pytest.raises(TypeError, match="hypotheses must be a list of str, got int"):
        bleu.corpus_bleu(3, ["a"])
    with pytest.raises(TypeError, match="references must be a list"):
        bleu.corpus_bleu(["a"], "a")
    with pytest.raises(TypeError, match=r"references\[0\]\[1\] must be a str, got NoneType"):
        bleu.corpus_bleu(["a"], [["a", None]])
    with pytest.raises(ValueError, match=r"references\[1\] is empty"):
        bleu.corpus_bleu(["a", "b"], ["a", []])
    with pytest.raises(ValueError, match="hypotheses is empty"):
        bleu.corpus_bleu([], [])
    with pytest.raises(ValueError, match="tokenize must be one of"):
        bleu.corpus_bleu(["a"], ["a"], tokenize="intl")
    with pytest.raises(TypeError, match="lowercase must be True or False"):
        bleu.corpus_bleu(["a"], ["a"], lowercase="yes")
    with pytest.raises(TypeError, match="hypothesis must be a str, got list"):
        bleu.sentence_bleu(["a"], "a")
    with pytest.raises(ValueError, match="references is empty"):
        bleu.sentence_bleu("a", [])
    with pytest.raises(TypeError, match="line must be a str"):
        bleu.tokenize_13a(None)


# ------------------------------------------------------------------ the shipped pairs

def test_tatoeba_pairs():
    assert len(ENGLISH) == len(FRENCH) == len(ATTRIBUTIONS) == 5000
    assert (ENGLISH[0], FRENCH[0]) == ("Go.", "Va !") and len(set(ENGLISH)) == 2597
    assert ENGLISH == sorted(ENGLISH, key=lambda s: (len(s), s))
    for column in (ENGLISH, FRENCH, ATTRIBUTIONS):
        assert all(isinstance(s, str) and s and s == s.strip() and "\t" not in s and "\n" not in s for s in column)
    assert all(a.startswith("CC-BY 2.0 (France) Attribution: tatoeba.org #") and " & #" in a for a in ATTRIBUTIONS)


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED, "tatoeba-eng-fra")),
                    reason="../shared/datasets/tatoeba-eng-fra is not here")
def test_shipped_pairs_match_the_original_byte_for_byte():
    rebuilt = "".join(f"{e}\t{f}\t{a}\n" for e, f, a in zip(ENGLISH, FRENCH, ATTRIBUTIONS))
    with open(os.path.join(SHARED, "tatoeba-eng-fra", "eng-fra.txt"), "rb") as f:
        assert rebuilt.encode("utf-8") == f.read()
