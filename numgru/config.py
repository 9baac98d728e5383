"""The one place compiler flags live (STUMPY's config.py pattern).

Kernels import these at module import; nothing is looked up inside compiled code.
"""

# Flags that let LLVM vectorise the gate loops without changing what the maths
# means: no `nnan`/`ninf`, so NaN still propagates and σ/tanh saturate at ±inf.
FASTMATH = frozenset({"nsz", "arcp", "contract", "reassoc"})

# error_model="numpy" drops the division-by-zero check that blocks vectorisation
# (BASELINES.md); a float division by zero then gives inf/NaN as in NumPy.
NJIT_OPTIONS = dict(fastmath=set(FASTMATH), error_model="numpy", nogil=True)
