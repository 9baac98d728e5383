"""The one place compiler flags live (STUMPY's config.py pattern).

Kernels import these at module import; nothing is looked up inside compiled code.
"""

# No fast-math flags. The compiled loops are element-wise (no reductions for
# reassociation to vectorise), and measured without the flags that used to be
# here (nsz, arcp, contract, reassoc) a training step took the same time
# (B=16/64, H=64/256, float32, one process: 0.91-1.01x). Reassociation would
# also break the float64 exp's range reduction (kernels/cpu.py: _exp64 then
# errs by 2e-14 near |x| = 700 instead of 1 ulp), and LLVM applies a caller's
# flags to everything inlined into it.
FASTMATH = frozenset()

# error_model="numpy" drops the division-by-zero check that blocks vectorisation
# (BASELINES.md); a float division by zero then gives inf/NaN as in NumPy.
NJIT_OPTIONS = dict(fastmath=set(FASTMATH), error_model="numpy", nogil=True)

# The packed products of the recurrence (kernels/cpu.py, "packed weights") alone may
# contract a multiply and an add into one fused multiply-add ("contract": one rounding
# instead of two, so no less exact; no reordering). Without it LLVM keeps separate
# multiplies and adds, and the product runs at about half the speed. Only that
# function is compiled with it; the cell's maths is not.
PRODUCT_FASTMATH = FASTMATH | {"contract"}
PRODUCT_NJIT_OPTIONS = dict(NJIT_OPTIONS, fastmath=set(PRODUCT_FASTMATH))

# A forward packs W_hh for those products once it runs at least this many steps, and W_ih
# once its input projection has at least this many rows; shorter calls multiply through
# BLAS (packing reads and writes a matrix once, about what a few of its products cost).
# Read by kernels.cpu.forward and pack_gates at each call.
PACK_MIN_STEPS = 8

# CUDA kernels: no fastmath. On the GPU it means approximate division and
# flush-to-zero, which would cost float64 its 1e-10 parity.
CUDA_JIT_OPTIONS = dict(fastmath=False)

# Below this many multiply-adds per parallel region the CPU kernels run on one
# thread: waking threads (and meeting at a barrier) costs more than sharing
# such a region saves, and far more when another process holds a core. A
# region is one step of a recurrence split by hidden units, the whole call of
# one split by sequences (see BATCH_SPLIT_MIN_BLOCK). Measured on the
# idle 2-core machine, split by units (T=200 forward, time / torch's): B=1
# H=256 and B=16 H=64 (196,608 a step each) 0.57 / 1.17 serial, 0.38 / 0.71
# on two threads; B=1 H=128 (49,152) 0.41 serial, 0.59 on two. Read by
# numgru.threads at each call.
PARALLEL_MIN_REGION_WORK = 1 << 17

# A recurrence is split between threads by sequences, rather than by hidden
# units, when H <= BATCH_SPLIT_ALWAYS_MAX_H or each thread's block holds at
# least BATCH_SPLIT_MIN_BLOCK sequences. Split by sequences the threads never
# meet, which is what counts at small H, where a step is short next to a
# barrier; but each thread multiplies all of W_hh by its few sequences every
# step, which pays at larger H only for large blocks. Measured in one process
# (T=200 forward, float32, 2 threads; time split by sequences / by units,
# blocks of B/2): H=64: B=8 0.46, B=16 0.81, B=64 0.66; H=128: B=8 1.24,
# B=16 1.10, B=32 0.84, B=64 0.81; H=256: B=16 1.13, B=32 0.93, B=64 0.91,
# B=128 0.90; H=512: B=16 1.24, B=64 0.98; H=1024: B=16 1.34.
BATCH_SPLIT_ALWAYS_MAX_H = 64
BATCH_SPLIT_MIN_BLOCK = 16

# ... and only while W_hh holds at most this many bytes: split by sequences,
# every thread reads all of W_hh at every step, from the shared L3 cache once
# W_hh outgrows a core's L2 (1 MB here); split by units, each reads its share.
# Measured in one process (T=200 forward, 2 threads, time by sequences / by
# units): float32 H=512 (W_hh 3 MB) B=64 0.94, B=128 0.95; float64 H=512
# (6 MB) B=64 0.96; float32 H=1024 (12.6 MB) B=64 1.09, 0.98 and 1.00 in
# three runs (each a median of 5-9, spread 0.87-1.13), B=128 1.09 and 1.10,
# training steps B=64 1.00; float64 H=1024 (25 MB) B=32 1.22, B=64 1.13.
BATCH_SPLIT_MAX_WEIGHT_BYTES = 8 << 20

# The embedding backward (a scatter-add of token rows into the table) shares its columns between
# threads only for tables of at least this many bytes, with at least PARALLEL_MIN_REGION_WORK
# gradient elements: below it the rows it adds into sit in cache and one thread is faster.
# Measured idle (2 threads / 1 thread, float32, tokens x dim, table rows): 6400x64 into 69
# rows 2.7; 1000x128 into 5000 (2.5 MB) 1.9; 16000x128 into 5000 (2.5 MB) 1.95; 6400x256 into
# 5000 (5 MB) 0.79; 32000x128 into 10000 (5 MB) 0.59; 20000x256 into 10000 (10 MB) 0.65.
EMBEDDING_PARALLEL_MIN_TABLE_BYTES = 4 << 20
