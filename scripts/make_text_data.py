"""Build the text data that ships in numgru/data/ from the copies in ../shared/datasets/.

    python scripts/make_text_data.py [--source ../shared/datasets] [--out numgru/data]

writes
- ``tinyshakespeare.txt.xz``: ``tinyshakespeare/input.txt``, byte for byte;
- ``sentiment_sentences.tsv.xz``: the three ``sentiment-labelled-sentences/*_labelled.txt``
  files as one UTF-8 table, a header ``source<TAB>label<TAB>sentence`` and then one line
  per sentence, in the files' order (amazon, imdb, yelp), each sentence exactly as in its
  file (imdb's trailing spaces and its stray C1 control characters U+0085/U+0096/U+0097
  included), so that each original file is ``sentence<TAB>label<LF>`` per row of its source;
- ``tatoeba_eng_fra.tsv.xz``: ``tatoeba-eng-fra/eng-fra.txt``, byte for byte (5,000 lines
  ``english<TAB>french<TAB>attribution``, checked for that format).

All three are compressed with the standard library's lzma (xz, preset 9 | PRESET_EXTREME),
which ``numgru.tasks`` reads back without any extra dependency. The script checks
that each decompresses to what it read and prints sizes and SHA-256 digests.
"""
import argparse
import hashlib
import lzma
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SENTIMENT_FILES = (("amazon", "amazon_cells_labelled.txt"), ("imdb", "imdb_labelled.txt"),
                   ("yelp", "yelp_labelled.txt"))
SENTIMENT_HEADER = "source\tlabel\tsentence"
TATOEBA_ATTRIBUTION = "CC-BY 2.0 (France) Attribution: tatoeba.org #"
PRESET = 9 | lzma.PRESET_EXTREME


def sentiment_rows(folder):
    """(source, label, sentence) of every line of the three files, checked for the documented format."""
    rows = []
    for source, name in SENTIMENT_FILES:
        with open(os.path.join(folder, name), "rb") as f:
            content = f.read().decode("utf-8")
        if not content.endswith("\n"):
            raise ValueError(f"{name}: the last line has no line feed")
        # split on LF only: imdb's sentences hold U+0085 (NEL), which str.splitlines() would cut at
        for number, line in enumerate(content[:-1].split("\n"), 1):
            sentence, tab, label = line.rpartition("\t")
            if not tab or "\t" in sentence or label not in ("0", "1"):
                raise ValueError(f"{name} line {number} is not 'sentence<TAB>0|1': {line!r}")
            rows.append((source, label, sentence))
    return rows


def check_tatoeba(content):
    """Raise unless ``content`` is LF-terminated lines ``english<TAB>french<TAB>attribution``, none empty."""
    if not content.endswith("\n") or "\r" in content:
        raise ValueError("eng-fra.txt: lines must end in a line feed (and no carriage return)")
    for number, line in enumerate(content[:-1].split("\n"), 1):
        fields = line.split("\t")
        if len(fields) != 3 or not all(fields) or not fields[2].startswith(TATOEBA_ATTRIBUTION):
            raise ValueError(f"eng-fra.txt line {number} is not 'english<TAB>french<TAB>attribution': {line!r}")


def compress(path, data):
    packed = lzma.compress(data, preset=PRESET)
    if lzma.decompress(packed) != data:
        raise RuntimeError(f"{path}: lzma round trip failed")
    with open(path, "wb") as f:
        f.write(packed)
    print(f"{os.path.relpath(path, ROOT)}: {len(data):,} bytes -> {len(packed):,} bytes xz, "
          f"SHA-256 of the content {hashlib.sha256(data).hexdigest()}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=os.path.join(os.path.dirname(ROOT), "shared", "datasets"),
                        help="folder holding tinyshakespeare/, sentiment-labelled-sentences/ and tatoeba-eng-fra/")
    parser.add_argument("--out", default=os.path.join(ROOT, "numgru", "data"), help="where the .xz files go")
    args = parser.parse_args(argv)
    with open(os.path.join(args.source, "tinyshakespeare", "input.txt"), "rb") as f:
        shakespeare = f.read()
    shakespeare.decode("utf-8")                       # fails loudly if it is not UTF-8
    compress(os.path.join(args.out, "tinyshakespeare.txt.xz"), shakespeare)
    rows = sentiment_rows(os.path.join(args.source, "sentiment-labelled-sentences"))
    table = "".join(f"{line}\n" for line in [SENTIMENT_HEADER] + ["\t".join(row) for row in rows])
    compress(os.path.join(args.out, "sentiment_sentences.tsv.xz"), table.encode("utf-8"))
    with open(os.path.join(args.source, "tatoeba-eng-fra", "eng-fra.txt"), "rb") as f:
        tatoeba = f.read()
    check_tatoeba(tatoeba.decode("utf-8"))
    compress(os.path.join(args.out, "tatoeba_eng_fra.tsv.xz"), tatoeba)


if __name__ == "__main__":
    main()
