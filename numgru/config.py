"""The one place compiler flags live (STUMPY's config.py pattern).

Kernels import these at module import; nothing is looked up inside compiled code.
"""

# Flags that let LLVM vectorise the gate loops without changing what the maths
# means: no `nnan`/`ninf`, so NaN still propagates and σ/tanh saturate at ±inf.
FASTMATH = frozenset({"nsz", "arcp", "contract", "reassoc"})

# error_model="numpy" drops the division-by-zero check that blocks vectorisation
# (BASELINES.md); a float division by zero then gives inf/NaN as in NumPy.
NJIT_OPTIONS = dict(fastmath=set(FASTMATH), error_model="numpy", nogil=True)

# CUDA kernels: no fastmath. On the GPU it means approximate division and
# flush-to-zero, which would cost float64 its 1e-10 parity.
CUDA_JIT_OPTIONS = dict(fastmath=False)

# Below this many multiply-adds per recurrent step (B * 3H * H) the CPU kernels
# run on one thread: waking threads and meeting at a barrier every step costs
# more than sharing such a step saves (and far more when another process holds
# a core). Measured on the idle 2-core machine (T=200 forward, time / torch's):
# B=1 H=256 and B=16 H=64 (196,608 each) 0.57 / 1.17 serial, 0.38 / 0.71 on
# two threads; B=1 H=128 (49,152) 0.41 serial, 0.59 on two. Read by
# numgru.dispatch at each call.
PARALLEL_MIN_STEP_WORK = 1 << 17
