"""Speech: the CTC loss against PyTorch's, and log-mel / MFCC features against librosa's.

CTC: ``numgru.losses.ctc`` (loss and gradient) against
``torch.nn.functional.ctc_loss`` forward + backward, CPU, T=200 frames, B=32,
C=29 classes (blank included), targets of S=50 labels, random log_softmax
inputs (``numgru.benchmarks.CTC_SHAPE``), threads pinned, float32 and float64.
Features: log-mel dB (and + 13 MFCCs) of about 60 s of audio, utterance by
utterance, with ``numgru.audio.FSDD_SETTINGS`` (8 kHz, 256-point FFT, 40
mels): FSDD recordings where ../shared/datasets/fsdd is present, seeded noise
otherwise. Seconds of audio per second = 60 / the time of a call.
Skipped (NotImplementedError) where an engine, librosa or an older numgru's
harness lacks what they need.
"""
from . import common


def _harness(name):
    """The harness's ``name`` (older harnesses have no speech benchmarks: skipped)."""
    fn = getattr(common.harness, name, None)
    if fn is None:
        raise NotImplementedError(f"this numgru's benchmark harness has no {name}")
    return fn


class CTC:
    params = [["numgru-cpu", "torch-cpu"], ["float32", "float64"]]
    param_names = ["engine", "dtype"]
    timeout = 300

    def setup(self, engine, dtype):
        self.model = _harness("ctc_model")(engine, dtype, threads=common.THREADS)

    def time_loss_and_gradient(self, engine, dtype):
        self.model.step()


class Features:
    params = [["numgru", "librosa"]]
    param_names = ["library"]
    timeout = 300

    def setup(self, library):
        self.extractor = _harness("feature_extractor")(library, threads=common.THREADS)

    def time_log_mel(self, library):
        self.extractor.log_mel()

    def time_mfcc(self, library):
        self.extractor.mfcc()
