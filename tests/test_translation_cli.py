"""tasks.translate's split, `python -m numgru train --task translate` at a tiny budget, and `translate`."""
import io
import json

import pytest

import numgru
from numgru.__main__ import build_parser, cmd_train, main


def test_the_split_keeps_each_english_sentence_and_its_translations_in_one_part():
    task = numgru.tasks.translate()
    english, french, _ = numgru.tasks.tatoeba_pairs()
    train, val, test = set(task.sources_train), set(task.sources_val), set(task.sources_test)
    assert (len(train), len(val), len(test)) == (2103, 234, 260)
    assert not (train & val or train & test or val & test)
    assert len(task.sources_train) + len(task.sources_val) + sum(map(len, task.references_test)) == len(english)
    for source, references in zip(task.sources_test, task.references_test):
        assert references == [f for e, f in zip(english, french) if e == source]
    assert set(zip(task.sources_train, task.targets_train)) <= set(zip(english, french))
    again = numgru.tasks.translate(seed=0)
    assert again.sources_test == task.sources_test and again.targets_train == task.targets_train
    other = numgru.tasks.translate(seed=1)
    assert other.sources_test != task.sources_test
    small = numgru.tasks.translate(n_train=50, n_test=7)
    assert len(small.sources_train) == 50 and len(small.references_test) == 7
    with pytest.raises(ValueError, match="test_fraction"):
        numgru.tasks.translate(test_fraction=1.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("translate-run")
    buffer = io.StringIO()
    args = build_parser().parse_args(["train", "--task", "translate", "--n-train", "200", "--n-test", "12",
                                      "--epochs", "2", "--hidden", "16", "--embedding-dim", "8", "--quiet",
                                      "--out", str(out)])
    assert cmd_train(args, out=buffer) == 0
    return out, buffer.getvalue()


def test_train_translate_reports_bleu_next_to_both_baselines(trained):
    out, log = trained
    for line in ("copy the source", "attention, greedy", "attention, beam 5", "no attention, greedy",
                 "no attention, beam 5", "examples (attention, beam 5):"):
        assert line in log
    model, meta = numgru.load(out / "translate.npz", return_metadata=True)
    assert isinstance(model, numgru.Seq2Seq) and model.attention_score == "general"
    assert model.source_vocabulary is not None and model.target_vocabulary is not None
    assert numgru.load(out / "translate-no-attention.npz").attention_score is None
    task = numgru.tasks.translate(n_test=12)
    from numgru.bleu import corpus_bleu
    assert meta["test_bleu"]["copy the source"] == corpus_bleu(task.sources_test, task.references_test).score
    history = json.loads((out / "translate-history.json").read_text())
    assert history["attention"]["epochs"] == [1, 2] and history["no_attention"]["epochs"] == [1, 2]
    assert (out / "translate.png").stat().st_size > 10_000


def test_translate_prints_one_line_a_sentence_in_order(trained, capsys, monkeypatch):
    out, _ = trained
    model = numgru.load(out / "translate.npz")
    sentences = ["I am cold.", "Go.", "Thank you."]
    expected = model.translate(sentences, beam_width=5)
    assert main(["translate", str(out / "translate.npz"), *sentences]) == 0
    assert capsys.readouterr().out.split("\n")[:-1] == expected
    monkeypatch.setattr("sys.stdin", io.StringIO("Go.\nThank you.\n"))
    assert main(["translate", str(out / "translate.npz"), "I am cold.", "-", "--beam", "1"]) == 0
    assert capsys.readouterr().out.split("\n")[:-1] == model.translate(sentences, beam_width=1)


def test_translate_bad_input(trained, tmp_path, capsys):
    out, _ = trained
    path = str(out / "translate.npz")
    assert main(["translate", path, "Go.", "", "Qwzx vbnm"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.split("\n")[:-1]
    assert len(lines) == 3 and lines[1] == lines[2] == ""
    assert "sentence 2 '' cannot be translated: it holds no word or punctuation" in captured.err
    assert "sentence 3 'Qwzx vbnm' cannot be translated: none of its 2 tokens" in captured.err
    for flags, message in ((["--beam", "0"], "--beam must be at least 1, got 0"),
                           (["--max-len", "0"], "--max-len must be at least 1, got 0"),
                           (["--length-penalty", "-1"], "--length-penalty must not be negative")):
        assert main(["translate", path, "Go.", *flags]) == 2
        assert message in capsys.readouterr().err
    ids_only = numgru.save(tmp_path / "ids.npz", numgru.Seq2Seq(9, 8, embedding_dim=3, hidden_size=4, seed=0))
    assert main(["translate", str(ids_only), "Go."]) == 2
    assert "holds a Seq2Seq without its vocabularies" in capsys.readouterr().err
    other = numgru.save(tmp_path / "gru.npz", numgru.GRUModel(2, 4, 1, seed=0))
    assert main(["translate", str(other), "Go."]) == 2
    assert "holds a GRUModel; translate runs a Seq2Seq" in capsys.readouterr().err
    assert main(["translate", str(tmp_path / "missing.npz"), "Go."]) == 2
    assert "missing.npz" in capsys.readouterr().err
