"""BLEU (Papineni et al. 2002) as sacrebleu computes it, in plain Python: no sacrebleu needed.

    >>> from numgru import bleu
    >>> result = bleu.corpus_bleu(["Le chat est assis sur le tapis."], ["Le chat est sur le tapis."])
    >>> round(result.score, 2), result.counts, result.totals
    (50.0, (7, 5, 3, 1), (8, 7, 6, 5))
    >>> print(result)
    BLEU = 50.00 87.5/71.4/50.0/20.0 (BP = 1.000 ratio = 1.143 hyp_len = 8 ref_len = 7)

``corpus_bleu`` gives the numbers of ``sacrebleu.corpus_bleu`` with its defaults
(sacrebleu 2.x: the ``13a`` tokeniser of WMT's mteval-v13a.pl, mixed case,
n-grams up to 4, ``smooth_method="exp"``, no effective order) and
``sentence_bleu`` those of ``sacrebleu.sentence_bleu`` (the same with the
effective order); a test checks them against sacrebleu on the Tatoeba French
sentences. Each sentence is lower-cased first with ``lowercase=True``, stripped
of trailing white space and tokenised; its tokens are what ``str.split()``
makes of the tokenised line. With several references, a hypothesis n-gram is
matched up to its largest count in any one reference, and the brevity penalty
uses the reference length closest to the hypothesis's (the shorter on a tie).

The score is ``bp * exp(mean(log p_n))`` in percent over the corpus totals,
with ``bp = exp(1 - ref_len / sys_len)`` when the hypotheses are shorter than
the references (0 when they are empty) and 1 otherwise. An order n with no
match gets the precision ``100 / (2**k * totals[n])``, k counting such orders
from 1 ("exp" smoothing, mteval's); no match at all, or no n-gram of some order
(every hypothesis shorter than 4 tokens), gives 0.
"""
import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from . import validation

__all__ = ["BLEUScore", "corpus_bleu", "sentence_bleu", "tokenize_13a", "TOKENIZERS", "MAX_ORDER"]

TOKENIZERS = ("13a", "none")
MAX_ORDER = 4
_13A_RULES = tuple((re.compile(pattern), replacement) for pattern, replacement in (   # sacrebleu's TokenizerRegexp
    (r"([\{-\~\[-\` -\&\(-\+\:-\@\/])", r" \1 "),   # ASCII punctuation and symbols but ' , - .
    (r"([^0-9])([\.,])", r"\1 \2 "),               # period and comma unless preceded by a digit
    (r"([\.,])([^0-9])", r" \1 \2"),               # period and comma unless followed by a digit
    (r"([0-9])(-)", r"\1 \2 "),                    # dash when preceded by a digit
))


@dataclass(frozen=True)
class BLEUScore:
    """A BLEU score and its statistics, as sacrebleu's ``BLEUScore`` holds them.

    ``score`` and ``precisions`` (n = 1..4) are percentages; ``counts`` are the
    matched n-grams of each order, ``totals`` the hypothesis n-grams; ``sys_len``
    and ``ref_len`` count tokens (of the hypotheses, of the closest references).
    """

    score: float
    precisions: tuple
    bp: float
    sys_len: int
    ref_len: int
    counts: tuple
    totals: tuple

    @property
    def ratio(self):
        """sys_len / ref_len (0 when there is no reference token)."""
        return self.sys_len / self.ref_len if self.ref_len else 0

    def __str__(self):
        precisions = "/".join(f"{p:.1f}" for p in self.precisions)
        return (f"BLEU = {self.score:.2f} {precisions} (BP = {self.bp:.3f} ratio = {self.ratio:.3f} "
                f"hyp_len = {self.sys_len:d} ref_len = {self.ref_len:d})")


def tokenize_13a(line):
    """sacrebleu's ``13a`` tokenisation of one line (mteval-v13a.pl's): the tokens joined by single spaces.

    Drops "<skipped>" and hyphenated line breaks, turns line feeds into spaces,
    decodes the entities &quot; &amp; &lt; &gt;, then separates ASCII
    punctuation and symbols from words (a period or comma only where it is not
    between two digits, a dash only after a digit, an apostrophe never). Other
    characters are left as they are, accented letters and the non-ASCII spaces
    and quotes included; white space of any kind separates tokens.
    """
    if not isinstance(line, str):
        raise TypeError(f"line must be a str, got {type(line).__name__}")
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    for pattern, replacement in _13A_RULES:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


def _tokens(sentence, tokenize, lowercase):
    if lowercase:
        sentence = sentence.lower()
    sentence = sentence.rstrip()
    return (tokenize_13a(sentence) if tokenize == "13a" else sentence).split()


def _ngrams(tokens):
    """Counts of the 1- to MAX_ORDER-grams of a token list."""
    return Counter(tuple(tokens[i:i + n]) for n in range(1, MAX_ORDER + 1) for i in range(len(tokens) - n + 1))


def _str_list(name, value):
    return validation.check_str_list(name, value, hint=" (wrap a single sentence in a list)")


def _check_options(tokenize, lowercase):
    validation.check_choice("tokenize", tokenize, TOKENIZERS)
    if not isinstance(lowercase, (bool, np.bool_)):
        raise TypeError(f"lowercase must be True or False, got {lowercase!r}")


def _statistics(hypothesis, references, tokenize, lowercase):
    """[hyp_len, closest ref_len, matches of each order..., hypothesis n-grams of each order...]."""
    hyp_tokens = _tokens(hypothesis, tokenize, lowercase)
    best, ref_lens = Counter(), []
    for reference in references:
        ref_tokens = _tokens(reference, tokenize, lowercase)
        ref_lens.append(len(ref_tokens))
        for ngram, count in _ngrams(ref_tokens).items():
            best[ngram] = max(best[ngram], count)
    hyp_len = len(hyp_tokens)
    ref_len = min(ref_lens, key=lambda length: (abs(hyp_len - length), length))
    counts, totals = [0] * MAX_ORDER, [0] * MAX_ORDER
    for ngram, count in _ngrams(hyp_tokens).items():
        totals[len(ngram) - 1] += count
        counts[len(ngram) - 1] += min(count, best[ngram])
    return [hyp_len, ref_len] + counts + totals


def _score(stats, effective_order):
    """A BLEUScore from summed statistics, as sacrebleu's ``BLEU.compute_bleu`` with smooth_method="exp"."""
    sys_len, ref_len = stats[0], stats[1]
    counts, totals = tuple(stats[2:2 + MAX_ORDER]), tuple(stats[2 + MAX_ORDER:])
    bp = 1.0
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    precisions = [0.0] * MAX_ORDER
    if not any(counts):
        return BLEUScore(0.0, tuple(precisions), bp, sys_len, ref_len, counts, totals)
    unmatched_orders, orders = 0, MAX_ORDER
    for n in range(MAX_ORDER):
        if totals[n] == 0:       # no n-gram this long (nor longer): the order stops here
            break
        if effective_order:
            orders = n + 1
        if counts[n] == 0:
            unmatched_orders += 1
            precisions[n] = 100.0 / (2 ** unmatched_orders * totals[n])
        else:
            precisions[n] = 100.0 * counts[n] / totals[n]
    used = precisions[:orders]
    score = 0.0 if 0.0 in used else bp * math.exp(sum([math.log(p) for p in used]) / orders)
    return BLEUScore(score, tuple(precisions), bp, sys_len, ref_len, counts, totals)


def _reference_list(name, refs):
    """One reference (a str) or several (a non-empty list of str) -> a list of str."""
    refs = [refs] if isinstance(refs, str) else _str_list(name, refs)
    if not refs:
        raise ValueError(f"{name} is empty: a hypothesis needs at least one reference")
    return refs


def _references(references, n):
    """One reference (a str) or several (a list of str) per hypothesis -> a list of lists of str."""
    if isinstance(references, str):
        raise TypeError("references must be a list (one reference or a list of references per hypothesis), got a str")
    try:
        references = list(references)
    except TypeError:
        raise TypeError(f"references must be a list, got {type(references).__name__}") from None
    if len(references) != n:
        raise ValueError(f"references must hold one entry per hypothesis: {n} hypotheses, {len(references)} references")
    return [_reference_list(f"references[{i}]", refs) for i, refs in enumerate(references)]


def corpus_bleu(hypotheses, references, tokenize="13a", lowercase=False):
    """Corpus BLEU of ``hypotheses`` (a list of str) against ``references`` -> BLEUScore.

    ``references[i]`` is the reference of ``hypotheses[i]`` (a str) or a list of
    its references (one or more str; the number may vary from sentence to
    sentence). Note the layout: sacrebleu takes reference *streams* instead,
    ``refs[k][i]`` for the k-th reference of sentence i. ``tokenize`` is "13a"
    (sacrebleu's default) or "none" (split on white space only); ``lowercase``
    lower-cases hypotheses and references first. Equals
    ``sacrebleu.corpus_bleu(hypotheses, streams, tokenize=tokenize, lowercase=lowercase)``.
    """
    hypotheses = _str_list("hypotheses", hypotheses)
    if not hypotheses:
        raise ValueError("hypotheses is empty: BLEU needs at least one sentence")
    references = _references(references, len(hypotheses))
    _check_options(tokenize, lowercase)
    stats = [0] * (2 + 2 * MAX_ORDER)
    for hypothesis, refs in zip(hypotheses, references):
        stats = [a + b for a, b in zip(stats, _statistics(hypothesis, refs, tokenize, lowercase))]
    return _score(stats, effective_order=False)


def sentence_bleu(hypothesis, references, tokenize="13a", lowercase=False):
    """BLEU of one ``hypothesis`` (a str) against its ``references`` (a str or a list of str) -> BLEUScore.

    As ``sacrebleu.sentence_bleu`` with its defaults: "exp" smoothing and the
    effective order (orders longer than the hypothesis are left out of the mean
    instead of making the score 0). BLEU is meant for a corpus; this is for
    looking at single sentences.
    """
    if not isinstance(hypothesis, str):
        raise TypeError(f"hypothesis must be a str, got {type(hypothesis).__name__}")
    references = _reference_list("references", references)
    _check_options(tokenize, lowercase)
    return _score(_statistics(hypothesis, references, tokenize, lowercase), effective_order=True)
