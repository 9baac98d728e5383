"""numgru: GRU training and inference on NumPy arrays, with Numba-compiled kernels.

    >>> import numpy as np, numgru
    >>> gru = numgru.GRU(3, 8, seed=0)
    >>> out, hn = gru(np.zeros((5, 2, 3), np.float32))
    >>> out.shape, hn.shape
    ((5, 2, 8), (1, 2, 8))
"""
__version__ = "0.1.0"


def _map_source_tree_kernels():
    """In a source checkout, resolve ``numgru.kernels`` to the top-level ``kernels/``.

    pyproject.toml installs ``kernels/`` as ``numgru.kernels``, but ``python -m
    numgru`` (or ``python -m pytest``) from the repository root imports this
    ``numgru/`` from the source tree, which has no ``kernels/`` beside it.
    Installed, ``numgru/kernels/`` exists and nothing is done.
    """
    import importlib.util
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    source = os.path.join(os.path.dirname(here), "kernels", "__init__.py")
    if "numgru.kernels" in sys.modules or os.path.isdir(os.path.join(here, "kernels")) \
            or not os.path.isfile(source):
        return
    spec = importlib.util.spec_from_file_location(__name__ + ".kernels", source,
                                                  submodule_search_locations=[os.path.dirname(source)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    setattr(sys.modules[__name__], "kernels", module)     # as the import system does for a subpackage


_map_source_tree_kernels()

from .functional import gru_backward, gru_forward
from .grad_mode import no_grad
from .gru import GRU, GRUCell
from .linear import Linear
from .attention import Attention
from .seq2seq import Seq2Seq
from .embedding import Embedding
from .models import GRUModel
from .language_model import LanguageModel
from .text_classifier import TextClassifierModel
from .speech import CTCModel, SpeechClassifierModel, SpeechStream
from .streaming import GRUStream
from .interop import from_keras, from_torch, to_keras, to_torch
from .onnx_io import export_onnx, import_onnx, import_onnx_operators
from . import audio, bleu, ctc, losses, optim, speech, tasks, text
from .training import History, evaluate, fit, predict
from .serialization import ModelFileError, load, save

__all__ = ["GRU", "GRUCell", "GRUStream", "gru_forward", "gru_backward", "no_grad", "Linear", "Embedding", "GRUModel",
           "LanguageModel", "TextClassifierModel", "SpeechClassifierModel", "CTCModel", "SpeechStream", "Attention",
           "Seq2Seq", "audio", "bleu", "ctc", "losses", "optim", "speech", "tasks", "text", "fit", "evaluate",
           "predict",
           "History", "save", "load", "ModelFileError", "from_torch", "to_torch", "from_keras", "to_keras",
           "export_onnx", "import_onnx", "import_onnx_operators", "__version__"]


def __getattr__(name):
    """``numgru.distributed`` on first use: it imports Dask, which ``import numgru`` must not."""
    if name == "distributed":
        import importlib
        return importlib.import_module(".distributed", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
