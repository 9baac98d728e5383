"""How numgru.distributed.fit scales: measured on a LocalCluster of this machine, then modelled to 64 workers.

    python scripts/distributed_scaling.py                      # GRUModel(16, 128, 1), T=50, batch 256, N=2048
    python scripts/distributed_scaling.py --bandwidth-gbit 1 --plot scaling.png

Measures training throughput (samples/s, epochs after the first, so compilation is not counted) for one
process with 1 and 2 Numba threads (``numgru.fit``) and for 1 and 2 worker processes of 1 thread each
(``numgru.distributed.fit`` on a ``LocalCluster``), and splits a distributed step into compute (the slowest
part's forward + backward on its worker), transfer (the rest of the round trip: weights out in each part's
task, gradients back, scheduling) and reduction (the client's weighted sum, clipping, optimiser step).

The model of W workers, from those measured parts (``scaling_model``): a part of B/W sequences computes in
the time the part task takes on a worker (measured at each B/W); the client sends the weights to and
receives the gradients from each worker, 2 W P bytes per step through its link of the stated bandwidth, on
top of the measured round trip and the measured cost of each further part task; the reduction grows by its
measured cost per part. Speed-up(W) = step(1) / step(W), at the same global batch.
"""
import argparse
import copy
import time

import numpy as np
from distributed import Client, LocalCluster

import numgru
from numgru import distributed as numgru_distributed
from numgru import losses, plotting

WORKERS_MODELLED = (1, 2, 4, 8, 16, 32, 64)


def _task(N, T, features, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, T, features)).astype(np.float32)
    y = x[:, :, :1].mean(axis=1)            # a target the GRU can learn: the mean of the first feature
    return x, y


def _model(args):
    return numgru.GRUModel(args.features, args.hidden, 1, seed=0)


def _fit_args(args):
    return {"lr": 1e-3, "epochs": args.epochs, "batch_size": args.batch_size, "seed": 0, "progress": False}


def measure_one_process(args, x, y, threads):
    import numba
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        history = numgru.fit(_model(args), x, y, **_fit_args(args))
    finally:
        numba.set_num_threads(before)
    return float(np.median(history.samples_per_s[1:]))


def measure_cluster(args, x, y, workers):
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        history = numgru_distributed.fit(_model(args), x, y, client=client, **_fit_args(args))
        per_task = _seconds_per_task(client, history.gradient_bytes) if workers == 1 else None
        part_compute = _part_compute(client, args, x, y) if workers == 1 else None
    per_epoch = len(history.steps) // len(history.epochs)
    compute, transfer, reduce = np.median(np.array(history.steps[per_epoch:]), axis=0)   # after the first epoch
    return {"samples_per_s": float(np.median(history.samples_per_s[1:])), "compute": compute, "transfer": transfer,
            "reduce": reduce, "gradient_bytes": history.gradient_bytes, "per_task": per_task,
            "part_compute": part_compute}


def _part_compute(client, args, x, y, repeats=3):
    """{W: seconds of one part of B/W sequences}, numgru.distributed's own part task timed on the worker."""
    template = client.submit(copy.copy, _model(args), pure=False)
    shard = client.submit(numgru_distributed._shard, x[:args.batch_size], y[:args.batch_size], None, pure=False)
    weights = _model(args).state_dict()
    seconds = {}
    for w in WORKERS_MODELLED:
        rows = np.arange(max(args.batch_size // w, 1))
        runs = [client.submit(numgru_distributed._part_gradients, template, weights, shard, rows, losses.mse,
                              pure=False).result()[-1] for _ in range(repeats)]
        seconds[w] = float(np.median(runs))
    return seconds


def _echo(weights):
    return weights


def _seconds_per_task(client, nbytes, tasks=8, repeats=5):
    """What one more part task adds to a step's round trip, workers idle: tasks carrying and returning
    ``nbytes``, 8 at once against 1 at a time (medians of ``repeats``)."""
    weights = np.zeros(nbytes // 4, np.float32)

    def round_trip(n):
        began = time.perf_counter()
        client.gather([client.submit(_echo, weights, pure=False) for _ in range(n)])
        return time.perf_counter() - began
    round_trip(tasks)                                   # warm-up
    one = np.median([round_trip(1) for _ in range(repeats)])
    many = np.median([round_trip(tasks) for _ in range(repeats)])
    return max(many - one, 0.0) / (tasks - 1)


def scaling_model(one, two, bandwidth):
    """Step time (compute, transfer, reduce) of W workers, from the measured parts (see the module's docstring).

    Compute: a part of B/W sequences, timed on a worker by itself. Transfer: the measured 1-worker round trip (its bytes cross
    the loopback, at no cost), plus the cost of each further part task (measured with idle workers: the
    2-worker run's own round trip also holds the contention of 4 processes on 2 cores), plus 2 W P bytes
    over the client's link. Reduction: the 1-worker cost plus what each further part added (2 against 1).
    """
    P = one["gradient_bytes"]
    per_task = one["per_task"]
    per_part_reduce = max(two["reduce"] - one["reduce"], 0.0)

    def step(w):
        compute = one["part_compute"][w]
        transfer = one["transfer"] + per_task * (w - 1) + 2 * w * P / bandwidth
        reduce = one["reduce"] + per_part_reduce * (w - 1)
        return compute, transfer, reduce
    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--N", type=int, default=2048, help="training sequences")
    parser.add_argument("--T", type=int, default=50, help="steps per sequence")
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=256, help="the global batch")
    parser.add_argument("--epochs", type=int, default=3, help="the first is warm-up")
    parser.add_argument("--bandwidth-gbit", type=float, default=10.0, help="the client's link, Gbit/s")
    parser.add_argument("--plot", default="distributed_scaling.png")
    args = parser.parse_args(argv)
    x, y = _task(args.N, args.T, args.features)
    bandwidth = args.bandwidth_gbit * 1e9 / 8

    print(f"GRUModel({args.features}, {args.hidden}, 1), T={args.T}, N={args.N}, global batch {args.batch_size}, "
          f"float32, {args.epochs - 1} timed epochs")
    alone = {t: measure_one_process(args, x, y, t) for t in (1, 2)}
    rows = [(f"1 process, {t} Numba thread{'s' * (t > 1)}", rate, None) for t, rate in alone.items()]
    cluster = {w: measure_cluster(args, x, y, w) for w in (1, 2)}
    rows += [(f"LocalCluster, {w} worker{'s' * (w > 1)} x 1 thread", m["samples_per_s"], m)
             for w, m in cluster.items()]
    print("\n| run | samples/s | compute ms | transfer ms | reduce ms |\n|---|---:|---:|---:|---:|")
    for name, rate, parts in rows:
        split = " | ".join(f"{parts[k] * 1e3:.2f}" for k in ("compute", "transfer", "reduce")) if parts else "| |"
        print(f"| {name} | {rate:.0f} | {split} |")

    P = cluster[1]["gradient_bytes"]
    step = scaling_model(cluster[1], cluster[2], bandwidth)
    base = sum(step(1))
    print(f"\nModel: {P / 1e3:.0f} kB of gradients (and of weights) per worker per step, "
          f"{args.bandwidth_gbit:g} Gbit/s at the client, {cluster[1]['per_task'] * 1e3:.2f} ms per further part task")
    print("| workers | compute ms | transfer ms | reduce ms | step ms | speed-up |\n|---:|---:|---:|---:|---:|---:|")
    speedups = {}
    for w in WORKERS_MODELLED:
        compute, transfer, reduce = step(w)
        speedups[w] = base / (compute + transfer + reduce)
        print(f"| {w} | {compute * 1e3:.2f} | {transfer * 1e3:.2f} | {reduce * 1e3:.2f} | "
              f"{(compute + transfer + reduce) * 1e3:.2f} | {speedups[w]:.2f} |")
    best = max(speedups, key=speedups.get)
    compute, transfer, reduce = step(best)
    print(f"\nThe speed-up peaks at W={best} ({speedups[best]:.2f}x; compute {compute * 1e3:.2f} ms, transfer "
          f"{transfer * 1e3:.2f} ms, reduction {reduce * 1e3:.2f} ms a step). It stops there because every step "
          "goes through the client: W part tasks to schedule and 2 W P bytes to carry grow with W, while the "
          "compute of B/W sequences shrinks; an allreduce between workers would carry about 2 P per worker "
          "instead, whatever W.")

    fig, (ax,) = plotting._figure(1)
    ax.plot(list(speedups), list(speedups.values()), marker="o", label=f"model, {args.bandwidth_gbit:g} Gbit/s")
    ax.plot([1, 2], [1.0, cluster[2]["samples_per_s"] / cluster[1]["samples_per_s"]], "s", color="black",
            label="measured (LocalCluster, shared 2 cores)")
    ax.plot(list(speedups), list(speedups), ":", color="gray", label="linear")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("workers (1 thread each)")
    ax.set_ylabel("speed-up over 1 worker")
    ax.set_title(f"numgru.distributed.fit, global batch {args.batch_size}, H={args.hidden}, T={args.T}")
    ax.legend()
    fig.savefig(args.plot, dpi=120)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
