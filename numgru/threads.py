"""Who owns the cores: Numba's threads for a recurrence, BLAS held to one thread meanwhile.

``cpu_plan`` decides how a recurrence is shared between Numba's threads (a
pure function of the shape and the thread count); ``cpu_threads`` applies it
around a kernel call, with every loaded BLAS held to one thread
(``one_blas_thread``), so the two thread pools never fight (BASELINES.md).
"""
import numba
import scipy.linalg.cython_blas  # noqa: F401  the BLAS behind Numba's np.dot; loaded so threadpoolctl sees it
from threadpoolctl import ThreadpoolController

from . import config


def _blas_thread_controls():
    """(get, set) of the thread count of every loaded BLAS.

    OpenBLAS's own C entry points where threadpoolctl finds them: a call costs
    about 0.1 µs, where threadpoolctl's methods cost about 1 µs, and a
    streaming step holds and restores every BLAS around a few µs of work.
    threadpoolctl's methods otherwise.
    """
    controls = []
    for library in ThreadpoolController().select(user_api="blas").lib_controllers:
        direct = (library.internal_api == "openblas" and getattr(library, "threading_layer", None) != "openmp"
                  and hasattr(library, "_get_symbol"))
        get = library._get_symbol("openblas_get_num_threads") if direct else None
        set_ = library._get_symbol("openblas_set_num_threads") if direct else None
        if get is None or set_ is None:
            get, set_ = (lambda library=library: library.num_threads), library.set_num_threads
        controls.append((get, set_))
    return controls


_blas_controls = None


class one_blas_thread:
    """Context manager: hold every loaded BLAS to one thread for the duration.

    Inside the parallel kernels each Numba thread calls BLAS itself. In the
    serial kernels and around them (a Linear head, a training loop), BLAS
    workers woken by one product keep spinning after it and compete for the
    cores with whatever runs next: numgru's own threads, or another library's
    (PyTorch in the same process ran 2-4x slower). Costs about 1 µs a call.
    """

    __slots__ = ("_restore",)

    def __enter__(self):
        global _blas_controls
        if _blas_controls is None:
            _blas_controls = _blas_thread_controls()
        self._restore = []
        for get, set_ in _blas_controls:
            count = get()
            if count is not None and count != 1:
                set_(1)
                self._restore.append((set_, count))
        return self

    def __exit__(self, *exc_info):
        for set_, count in self._restore:
            set_(count)


def threads_for(work):
    """Numba's threads for ``work`` elements worth waking them for (as the recurrences decide), else 1."""
    return _numba_threads() if work >= config.PARALLEL_MIN_REGION_WORK else 1


def _numba_threads():
    """numba.get_num_threads(), for the calling thread, in 0.26 µs instead of 2.1.

    numba.get_num_threads() from Python takes two locks each call, a tenth of
    a streaming step. Once Numba's threads are launched, its threading layer's
    own C entry point (the one compiled code calls) gives the same value
    without them; a compiled wrapper would too, but cannot be cached on disk
    (it holds a C pointer) and compiling it cost a first call 1 s. The first
    call puts that entry point in this function's place.
    """
    global _numba_threads
    count = numba.get_num_threads()
    from numba.np.ufunc import parallel
    _numba_threads = getattr(parallel, "_get_num_threads", numba.get_num_threads)
    return count


def cpu_plan(B, H, steps, itemsize, threads):
    """How ``threads`` Numba threads share one recurrence: (blocks, by_batch); see ``cpu_threads``.

    A pure function of the shape and the thread count, so the plan of any
    shape can be checked without patching anything.
    """
    step_work = B * 3 * H * H
    w_hh_bytes = 3 * H * H * itemsize
    by_batch = (B >= threads and w_hh_bytes <= config.BATCH_SPLIT_MAX_WEIGHT_BYTES
                and (H <= config.BATCH_SPLIT_ALWAYS_MAX_H or B // threads >= config.BATCH_SPLIT_MIN_BLOCK))
    if threads > 1 and by_batch and steps * step_work >= config.PARALLEL_MIN_REGION_WORK:
        return threads, True
    if threads > 1 and step_work >= config.PARALLEL_MIN_REGION_WORK:
        return threads, False
    return 1, False


class cpu_threads(one_blas_thread):
    """Context manager deciding who owns the cores for one recurrence; gives (blocks, by_batch).

    ``steps``: how many steps a sequence runs, on average (the real work of
    a ragged batch is B x steps sequence-steps: the kernels skip padding;
    a stream passes 1, so that its split, and with it its bits, do not
    depend on how the stream is cut);
    ``itemsize``: the bytes of a float. A recurrence is shared between
    Numba's threads by sequences (by_batch: each thread runs its own block
    of sequences through every step, one parallel region in all) at small H
    or with large blocks (``config.BATCH_SPLIT_ALWAYS_MAX_H``,
    ``config.BATCH_SPLIT_MIN_BLOCK``), as long as W_hh is small enough for
    every thread to read all of it each step
    (``config.BATCH_SPLIT_MAX_WEIGHT_BYTES``); else by hidden units (the
    threads meet at every step). It runs on one thread (where both splits
    are the same computation) when a parallel region would hold fewer than
    ``config.PARALLEL_MIN_REGION_WORK`` multiply-adds. BLAS is held to one
    thread throughout, so no two thread pools ever fight. The block count is
    the number of Numba threads, so results are bit-stable for a fixed
    ``numba.set_num_threads``.
    """

    __slots__ = ("plan",)

    def __init__(self, B, H, steps, itemsize):
        self.plan = cpu_plan(B, H, steps, itemsize, _numba_threads())

    def __enter__(self):
        super().__enter__()
        return self.plan
