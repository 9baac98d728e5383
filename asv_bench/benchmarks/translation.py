"""Translation: numgru.Seq2Seq against the same model in PyTorch, and beam-search decoding.

The ``translate`` task's recipe (``numgru.benchmarks.SEQ2SEQ_SHAPE``):
Embedding(128) + bidirectional GRU(256) encoder, GRU(256) decoder, Luong's
general attention, dropout 0.3, a Linear over the 2,500 French words,
float32, threads pinned. A training step is one batch of 32 real Tatoeba
pairs: forward, cross-entropy, backward, clipping and Adam (torch: its
encoder over a packed batch, ``numgru.benchmarks.TorchSeq2Seq``). Beam search:
``Seq2Seq.translate`` of the 260 test sentences at beam 5 (numgru only;
sentences per second = 260 / the time). Skipped (NotImplementedError) where an
engine or an older numgru's harness lacks what they need.
"""
from . import common


def _seq2seq(engine):
    model = getattr(common.harness, "seq2seq_model", None)
    if model is None:
        raise NotImplementedError("this numgru's benchmark harness has no seq2seq_model")
    return model(engine, threads=common.THREADS)


class Seq2Seq:
    params = [["numgru-cpu", "torch-cpu"]]
    param_names = ["engine"]
    timeout = 300

    def setup(self, engine):
        self.train_step, _ = _seq2seq(engine)

    def time_train_step(self, engine):
        self.train_step()


class BeamSearch:
    """Seq2Seq.translate of the 260 test sentences, numgru only (one parameter, so asv prints "ok" and a table)."""
    params = [["numgru-cpu"]]
    param_names = ["engine"]
    timeout = 300

    def setup(self, engine):
        _, self.translate = _seq2seq(engine)

    def time_translate(self, engine):
        self.translate()
