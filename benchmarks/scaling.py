"""Scaling: images per second with 1 and 2 Dask workers (a sweep) and 1 and 2 MPI ranks (one
model, data-parallel), the bytes an all-reduce moves per step, and a model of where adding
machines stops paying.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/scaling.py
    python benchmarks/scaling.py --filters 16,256 --steps 40 --out runs/scaling

Sweep: 4 trials (seeds 0-3) of the lab model, each one epoch of --images MNIST
training images plus the usual validation of 5,000, one thread each, on a local
Dask cluster of 1 and then 2 workers (each worker warmed up first: data read,
Numba cache loaded); images per second = training images of all trials / wall
time.  Data-parallel: ``mpiexec -n P`` runs this script's rank worker, which
times --steps training steps of global batch --batch-size (MNIST-shaped random
images) with one thread per rank, and times the all-reduce of the gradient
buffer alone; 1 process x 2 threads is shown beside it (the other transport).

Model: a step on p machines takes t_c / p + 2 (p - 1) / p * S / B + 2 (p - 1) a,
with t_c the measured one-process step, S the all-reduce payload (parameters x
4 bytes), B a link bandwidth and a a per-message latency (ring all-reduce).
Adding machines stops paying when the parallel efficiency falls below 50 %, or
when the global batch has fewer images than machines.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import save_json  # noqa: E402
from minicnn.cli import ArgumentParser, number_list, positive_int  # noqa: E402

PROG = "benchmarks/scaling.py"
LINKS = {"1 GbE": 0.125e9, "10 GbE": 1.25e9, "100 Gb/s InfiniBand": 12.5e9}
LATENCY = 5e-6          # seconds per message, a fast network's order of magnitude
MACHINES = (1, 2, 4, 8, 16, 32, 64, 128)


def parse_args(argv=None):
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--filters", type=number_list(int), default=[16, 256],
                   help="lab-model filter counts (default 16,256)")
    p.add_argument("--batch-size", type=positive_int, default=50)
    p.add_argument("--steps", type=positive_int, default=40,
                   help="timed data-parallel steps (fewer are run at 64+ filters)")
    p.add_argument("--images", type=positive_int, default=2000,
                   help="training images per sweep trial (default 2000)")
    p.add_argument("--skip-sweep", action="store_true", help="only the data-parallel part")
    p.add_argument("--out", help="write scaling.json here")
    p.add_argument("--rank-worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# -- data-parallel: the rank worker (run under mpiexec) -----------------------------------
def rank_worker(args):
    import numpy as np
    import minicnn
    from minicnn.nn.fit import train_epoch
    from minicnn.parallel import mpi
    comm = mpi.communicator()
    threads = minicnn.configure_threads(int(os.environ.get("SCALING_THREADS", "1")))
    filters = args.filters[0]
    model = minicnn.lab_model(filters, backend="numba", threads=threads, comm=comm)
    opt = minicnn.SGD(0.01)
    steps = args.steps if filters < 64 else max(3, args.steps // 8)
    rng = np.random.default_rng(0)
    n = args.batch_size * steps
    x = rng.random((n, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, n)
    warm = np.arange(args.batch_size * 2)
    train_epoch(model, opt, x, y, args.batch_size, warm)
    comm.sum_scalars(0)                                    # start together
    start = time.perf_counter()
    train_epoch(model, opt, x, y, args.batch_size, np.arange(n))
    seconds = time.perf_counter() - start
    buffer = model.flat_grads.copy()
    comm.sum_scalars(0)
    t = time.perf_counter()
    for _ in range(20):
        comm.allreduce_sum(buffer)
    allreduce = (time.perf_counter() - t) / 20
    if comm.rank == 0:
        print(json.dumps({"processes": comm.size, "threads": threads, "filters": filters,
                          "parameters": model.num_params(), "steps": steps,
                          "step_s": seconds / steps, "images_per_s": n / seconds,
                          "allreduce_s": allreduce if comm.size > 1 else 0.0,
                          "payload_bytes": model.flat_grads.nbytes}))
    return 0


def mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    import shutil
    return shutil.which("mpiexec")


def data_parallel(args, filters, processes, threads):
    cmd = [sys.executable, __file__, "--rank-worker", "--filters", str(filters),
           "--batch-size", str(args.batch_size), "--steps", str(args.steps)]
    if processes > 1:
        launcher = mpiexec()
        if launcher is None:
            return {"error": "no mpiexec: pip install 'minicnn[mpi]'"}
        cmd = [launcher, "-n", str(processes)] + cmd
    env = dict(os.environ, SCALING_THREADS=str(threads))
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    except subprocess.TimeoutExpired:
        return {"error": "no result within 30 minutes"}
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["?"])[-1]}
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"the ranks printed no result: {result.stdout.strip()[-200:]!r}"}


# -- the sweep ---------------------------------------------------------------------------
def sweep_throughput(args, workers):
    from minicnn.sweeps.cluster import Cluster
    from minicnn.sweeps.trial import run_trial, trial
    trials = [trial(0.05, 16, args.batch_size, seed, "numba", epochs=1, threads=1,
                    train_limit=args.images, test=False) for seed in range(4)]
    cluster = Cluster(workers=workers, threads=1)
    try:
        client = cluster.client
        warm = trial(0.05, 16, args.batch_size, 0, "numba", epochs=1, threads=1,
                     train_limit=args.images, test=False)
        client.gather([client.submit(run_trial, warm, workers=[address], pure=False,
                                     resources={"cores": 1})
                       for address in client.scheduler_info()["workers"]])
        start = time.perf_counter()
        results = client.gather([client.submit(run_trial, t, pure=False,
                                               resources={"cores": 1}) for t in trials])
        wall = time.perf_counter() - start
    finally:
        cluster.close()
    images = sum(r["images"] for r in results)
    return {"workers": workers, "trials": len(trials), "wall_s": wall,
            "images_per_s": images / wall,
            "train_images_per_s_in_trial": images / sum(r["seconds"] for r in results),
            "describe": cluster.describe}


# -- the model -----------------------------------------------------------------------------
def step_time(t_c, payload, p, bandwidth, latency=LATENCY):
    return t_c / p + (2 * (p - 1) / p * payload / bandwidth + 2 * (p - 1) * latency if p > 1
                      else 0.0)


def model_rows(point, batch):
    rows = []
    for link, bandwidth in LINKS.items():
        speedups = {p: point["step_s"] / step_time(point["step_s"], point["payload_bytes"], p,
                                                   bandwidth) for p in MACHINES}
        possible = [p for p in MACHINES if p <= batch]          # at least one image each
        rows.append({"filters": point["filters"], "link": link, "speedups": speedups,
                     "comm_s": 2 * point["payload_bytes"] / bandwidth,
                     "half_efficiency": max(p for p in possible if speedups[p] / p >= 0.5),
                     "fastest": max(possible, key=lambda p: speedups[p])})
    return rows


def main(argv=None):
    args = parse_args(argv)
    if args.rank_worker:
        return rank_worker(args)
    from minicnn.parallel.threads import current_threads
    out = {"config": vars(args), "blas": current_threads(), "sweep": [], "data_parallel": [],
           "model": []}
    print(f"scaling on this machine: {os.cpu_count()} cores, BLAS core type "
          f"{current_threads()['blas_core']} (OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', 'unset')})")
    if not args.skip_sweep:
        print(f"\nsweep: 4 trials of the lab model (16 filters), 1 epoch of {args.images:,} "
              "images + validation each, 1 thread per trial")
        for workers in (1, 2):
            r = sweep_throughput(args, workers)
            out["sweep"].append(r)
            print(f"  {workers} worker(s): {r['wall_s']:6.1f} s wall, {r['images_per_s']:7.0f} "
                  f"training images/s (inside the trials: {r['train_images_per_s_in_trial']:.0f}"
                  f" per trial)")
        if len(out["sweep"]) == 2:
            print(f"  speed-up with 2 workers: "
                  f"{out['sweep'][1]['images_per_s'] / out['sweep'][0]['images_per_s']:.2f}x")
    print(f"\ndata-parallel: one model, global batch {args.batch_size}, numba")
    print(f"  {'filters':>7s} {'layout':26s} {'ms/step':>8s} {'img/s':>8s} "
          f"{'all-reduce':>11s} {'bytes/step':>12s}")
    for filters in args.filters:
        base = None
        for processes, threads in ((1, 1), (2, 1), (1, 2)):
            r = data_parallel(args, filters, processes, threads)
            if "error" in r:
                print(f"  {filters:7d} {processes} process(es) x {threads} thread(s): "
                      f"failed: {r['error']}")
                continue
            out["data_parallel"].append(r)
            base = base or (r if processes == threads == 1 else None)
            # what one step all-reduces: the gradient buffer plus the batch size, loss
            # and correct count (3 float64)
            moved = r["payload_bytes"] + 24 if processes > 1 else 0
            print(f"  {filters:7d} {f'{processes} process(es) x {threads} thread(s)':26s} "
                  f"{1e3 * r['step_s']:8.2f} {r['images_per_s']:8.0f} "
                  f"{1e3 * r['allreduce_s']:9.3f}ms {moved:12,d}")
        if base:
            out["model"] += model_rows(base, args.batch_size)
    print(f"\nmodel: step(p) = t_c/p + 2(p-1)/p * S/B + 2(p-1) * {LATENCY * 1e6:.0f} us, t_c "
          "measured above (1 process x 1 thread); speed-up over one machine (p <= "
          f"{args.batch_size}: one image each at least); 50%: the most machines still at >= 50 % "
          "efficiency; best: the fastest")
    print(f"  {'filters':>7s} {'link':20s} {'2S/B ms':>8s} " +
          " ".join(f"{'p=' + str(p):>6s}" for p in MACHINES) + f"  {'50%':>4s} {'best':>4s}")
    for row in out["model"]:
        print(f"  {row['filters']:7d} {row['link']:20s} {1e3 * row['comm_s']:8.2f} " +
              " ".join(f"{row['speedups'][p]:6.1f}" if p <= args.batch_size else f"{'-':>6s}"
                       for p in MACHINES) +
              f"  {row['half_efficiency']:4d} {row['fastest']:4d}")
    if args.out:
        save_json(args.out, "scaling.json", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
