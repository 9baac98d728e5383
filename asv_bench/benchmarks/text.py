"""The character language model against the same model in PyTorch: training throughput and generation speed.

Embedding(65, 64) + 2-layer GRU + Linear over 65 symbols, float32, threads pinned
(``numgru.benchmarks.LM_SHAPE``; H=512 is the issue's, H=128 a small one). A
training step is one TBPTT window of B=64 streams x bptt=100 characters: forward,
cross-entropy, backward, gradient clipping and an Adam step, the state carried to
the next window. Generation is ``LM_GENERATE_LENGTH`` characters at B=1: numgru's
``LanguageModel.generate`` (one compiled step a character) against torch stepping
its GRU with ``torch.multinomial``. Characters per second = 6,400 / time per
training step, or 200 / time per generation.
"""
from . import common


class LanguageModel:
    params = [["numgru-cpu", "torch-cpu"], list(common.LM_HIDDEN)]
    param_names = ["engine", "H"]
    timeout = 600           # set-up compiles; an H=512 training step takes about a second

    def setup(self, engine, H):
        self.model, self.inputs, self.targets = common.language_model(engine, H)

    def time_train_step(self, engine, H):
        self.model.train_step(self.inputs, self.targets)

    def time_generate(self, engine, H):
        self.model.generate(common.LM_GENERATE_LENGTH)
