"""One epoch of a model: minicnn beside PyTorch (eager and compiled), TensorFlow and JAX, at 1
and 2 threads.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/epoch.py
    python benchmarks/epoch.py --filters 64 --threads 1,2 --repeats 5 --out results/epoch64
    python benchmarks/epoch.py --arch tf-mnist-tutorial      # any preset or --arch spec

Every contender trains the identical model (the same layers, translated by
benchmarks/frameworks.py; the lab model by default, SGD 0.1, batch 50, or a
preset's learning rate and batch) for one epoch of 55,000 images of the
model's input shape (random: timings do not depend on the values).  Each
(contender, thread count) lives in its own worker process, so thread settings
(which TensorFlow fixes at start-up) and thread pools never mix; the workers
take turns, one epoch each per repeat, so a noisy machine slows all of them
alike.  minicnn trains through ``minicnn.nn.fit.train_epoch``, the loop of
``python -m minicnn.train``.  Reported: median and range of the epoch times,
images per second, the ratio to the fastest framework at the same thread count
and at its best thread count, minor page faults per step, the BLAS core type,
a per-step breakdown of minicnn's plan (each convolution's algorithm named),
and the one-time costs of a cold start (Numba compilation) and a training
process's peak memory, each measured in a fresh process (minicnn's side of all
this: minicnn_contender.py; the frameworks': frameworks.py).
"""
import multiprocessing
import os
import resource
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import save_json  # noqa: E402
from minicnn.cli import ArgumentParser, number_list, positive_float, positive_int  # noqa: E402
from minicnn.nn.presets import PRESETS  # noqa: E402
from minicnn_contender import (MinicnnModel, breakdown, one_time_costs,  # noqa: E402
                               synthetic_data)

PROG = "benchmarks/epoch.py"
FRAMEWORKS = ("pytorch", "pytorch-compile", "tensorflow", "jax")


def parse_args(argv=None):
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="lab", help="a preset or an --arch spec (default lab)")
    p.add_argument("--filters", type=positive_int, default=16, help="the lab model's width")
    p.add_argument("--batch-size", type=positive_int,
                   help="default 50, or the preset's batch size")
    p.add_argument("--lr", type=positive_float, help="default 0.1, or the preset's")
    p.add_argument("--images", type=positive_int, default=55_000, help="images per epoch")
    p.add_argument("--threads", type=number_list(int), default=sorted({1, os.cpu_count()}),
                   help="comma-separated thread counts, each contender runs at each "
                        "(default: 1 and all cores)")
    p.add_argument("--repeats", type=positive_int, default=5,
                   help="alternating repeats of every contender (default 5): median and range")
    p.add_argument("--backends", default="numba",
                   help="comma-separated minicnn backends (default numba; numpy, cudasim and "
                        "cupy where it can run)")
    p.add_argument("--conv-algo", default="auto", help="minicnn's convolution algorithm")
    p.add_argument("--shards-per-thread", type=number_list(int), default=[1],
                   help="comma-separated: each minicnn backend also runs with this many shards "
                        "per thread, taken by whichever thread is free (default 1)")
    p.add_argument("--neighbour", action="store_true",
                   help="keep a busy process on the last core during the timed epochs: one "
                        "core slowed, as by a neighbour on a shared machine")
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                   help="comma-separated: pytorch (eager), pytorch-compile (torch.compile), "
                        "tensorflow (a tf.function step), jax (a jax.jit step); default all: "
                        "those not installed are reported")
    p.add_argument("--tensorboard", action="store_true",
                   help="also time each minicnn backend with TensorBoard logging (every "
                        "--log-every steps, and the epoch's histograms): its cost")
    p.add_argument("--log-every", type=positive_int, default=100)
    p.add_argument("--augment", action="store_true",
                   help="minicnn's contenders train on the CIFAR-10 tutorial's augmented crops "
                        "of 32x32 images (made on a background thread, data/augment.py); the "
                        "breakdown gives the augmentation's own time per step")
    p.add_argument("--breakdown-steps", type=int, default=200,
                   help="minicnn steps timed step by step of the plan (0: no breakdown)")
    p.add_argument("--no-subprocess", action="store_true",
                   help="skip the cold-start compile and peak-memory measurements")
    p.add_argument("--out", help="write epoch.json here")
    args = p.parse_args(argv)
    args.backends = [b for b in args.backends.split(",") if b]
    args.frameworks = [f for f in args.frameworks.split(",") if f]
    if set(args.frameworks) - set(FRAMEWORKS):
        p.error(f"--frameworks: use {', '.join(FRAMEWORKS)}, got {','.join(args.frameworks)}")
    preset = PRESETS.get(args.arch.lower())
    defaults = preset.defaults if preset else {}
    args.batch_size = args.batch_size or defaults.get("batch_size", 50)
    args.lr = args.lr or defaults.get("lr", 0.1)
    args.input_shape = preset.input_shape if preset else (1, 28, 28)
    return args


def make_contender(kind, threads, args):
    """A contender object, or a string saying why there is none."""
    import frameworks
    if kind in ("pytorch", "pytorch-compile"):
        return (frameworks.make_torch(args.arch, args.input_shape, args.lr, threads, args.filters,
                                      compiled=kind == "pytorch-compile")
                or "PyTorch is not installed")
    if kind == "jax":
        from jax_model import make_jax
        return (make_jax(args.arch, args.input_shape, args.lr, threads, args.filters)
                or "JAX is not installed")
    if kind == "tensorflow":
        return (frameworks.make_keras(args.arch, args.input_shape, args.lr, threads, args.filters)
                or "TensorFlow is not installed")
    from minicnn.backend import BackendUnavailable, get_backend
    backend, _, logged = kind.partition("+")
    backend, _, per_thread = backend.partition("@")
    try:
        get_backend(backend)
    except (BackendUnavailable, ValueError) as exc:
        return str(exc)
    return MinicnnModel(backend, args, threads, logged=bool(logged),
                        shards_per_thread=int(per_thread or 1))


def worker(conn, kind, threads, args):
    """A contender in its own process: set up, warm up, then one epoch per request."""
    contender = None
    try:
        contender = make_contender(kind, threads, args)
        if isinstance(contender, str):
            conn.send({"error": contender})
            return
        x, y = synthetic_data(args.images, args.input_shape)
        contender.train_epoch(x[:args.batch_size * 5], y[:args.batch_size * 5], args.batch_size)
        from minicnn.parallel.threads import current_threads
        conn.send({"name": contender.name, "params": contender.num_params(),
                   "threads": current_threads()})
        steps = -(-args.images // args.batch_size)
        while conn.recv() == "epoch":
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            seconds = contender.train_epoch(x, y, args.batch_size)
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            conn.send({"seconds": seconds, "faults_per_step": faults / steps})
    except Exception as exc:  # reported by the parent, which goes on with the others
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        if hasattr(contender, "close"):
            contender.close()


def start_workers(args):
    ctx = multiprocessing.get_context("spawn")
    workers, notes = {}, []
    logged = [f"{b}+tensorboard" for b in args.backends] if args.tensorboard else []
    sharded = [f"{b}@{m}" for b in args.backends for m in args.shards_per_thread if m != 1]
    for kind in [*args.backends, *sharded, *logged, *args.frameworks]:
        for threads in args.threads:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker, args=(child, kind, threads, args), daemon=True)
            proc.start()
            hello = parent.recv()
            if "error" in hello:
                notes.append(f"{kind} at {threads} thread(s): skipped ({hello['error']})")
                proc.join()
                continue
            workers[(hello["name"], threads)] = (proc, parent, hello)
    return workers, notes


def timed_epochs(workers, repeats, notes):
    """{(contender, threads): [answer per repeat]}, the workers taking turns."""
    results = defaultdict(list)
    for r in range(repeats):
        for key, (proc, conn, hello) in workers.items():
            conn.send("epoch")
            answer = conn.recv()
            if "error" in answer:
                notes.append(f"{key[0]} at {key[1]} thread(s) failed: {answer['error']}")
                continue
            results[key].append(answer)
            print(f"  repeat {r + 1}: {key[0]:28s} {key[1]} thread(s) {answer['seconds']:7.2f} s",
                  flush=True)
    return results


def busy_neighbour():
    """A process spinning on the last usable core (stopped by the caller)."""
    import subprocess
    from minicnn.parallel.threads import usable_cores
    core = usable_cores()[-1]
    print(f"  a busy process shares core {core} during the timed epochs (--neighbour)")
    # It spins until its parent is gone, so that a benchmark killed by a signal leaves no
    # core busy behind it.
    return subprocess.Popen([sys.executable, "-c", f"""import os
os.sched_setaffinity(0, {{{core}}})
parent = os.getppid()
while os.getppid() == parent:
    for _ in range(100_000):
        pass
"""])


def report(rows, args):
    """The table, with ratios to the fastest framework at the same and at any thread count."""
    fw = [r for r in rows if not r["contender"].startswith("minicnn")]
    best_any = min((r["median_s"] for r in fw), default=None)
    print(f"\n{'contender':28s} {'thr':>3s} {'median s':>9s} {'min..max':>15s} {'img/s':>7s} "
          f"{'faults/step':>11s}  vs fastest framework (same threads; any threads)")
    for r in rows:
        same = [f["median_s"] for f in fw if f["threads"] == r["threads"]]
        ratios = ""
        if r["contender"].startswith("minicnn") and same:
            r["speedup_same_threads"] = min(same) / r["median_s"]
            r["speedup_any_threads"] = best_any / r["median_s"]
            ratios = (f"{r['speedup_same_threads']:.2f}x; {r['speedup_any_threads']:.2f}x "
                      "faster" if r["speedup_any_threads"] >= 1 else
                      f"{r['speedup_same_threads']:.2f}x; {r['speedup_any_threads']:.2f}x (slower)")
        print(f"{r['contender']:28s} {r['threads']:3d} {r['median_s']:9.2f} "
              f"{r['min_s']:7.2f}..{r['max_s']:<7.2f}{r['images_per_s']:7.0f} "
              f"{r['faults_per_step']:11.1f}  {ratios}")


def print_breakdown(name, found, augment=False):
    """Each step's ms, its GFLOP/s against the GEMM peak where it multiplies, and the GB/s of
    the arrays it must touch against the copy peak: the larger share says what limits it."""
    gemm, copy = found["gemm_peak_gflops"], found["copy_peak_gbs"]
    print(f"\nper-step breakdown, minicnn-{name}, 1 thread (ms per training step; GFLOP/s "
          f"nominal against this backend's 1024^3 sgemm, {gemm:.0f} GFLOP/s; GB/s of the "
          f"arrays each step reads and writes once, against a 4 MiB copy, {copy:.0f} GB/s):")
    for p in found["parts"]:
        rate = (f"  {p['gflops']:6.1f} GFLOP/s {100 * p['gflops'] / gemm:4.0f}%"
                if "gflops" in p else " " * 22)
        if "gbs" in p:
            rate += f"  {p['mbytes']:6.2f} MB {p['gbs']:6.1f} GB/s {100 * p['gbs'] / copy:4.0f}%"
        print(f"  {p['part']:52s} {p['ms']:8.3f} ms  {100 * p['share']:5.1f}%{rate}")
    print(f"  {'total':52s} "
          f"{sum(p['ms'] for p in found['parts'] if not p.get('overlapped')):8.3f} ms"
          + ("  (the augmentation runs beside it)" if augment else ""))


def main(argv=None):
    args = parse_args(argv)
    from minicnn.parallel.threads import current_threads
    from minicnn.results.sysinfo import system_info
    workers, notes = start_workers(args)
    blas = {name: hello["threads"]["blas_libraries"] for (name, _), (_, _, hello) in workers.items()}
    model = args.arch + (f", {args.filters} filters" if args.arch == "lab" else "")
    print(f"{model}, input {args.input_shape}, lr {args.lr}, batch {args.batch_size}, "
          f"{args.images:,} images "
          f"({-(-args.images // args.batch_size)} steps), threads {args.threads}, {args.repeats} "
          f"repeats; BLAS core type {current_threads()['blas_core']} "
          f"(OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')})")
    for note in notes:
        print("  " + note)
    neighbour = busy_neighbour() if args.neighbour else None
    try:
        results = timed_epochs(workers, args.repeats, notes)
    finally:
        if neighbour:
            neighbour.kill()
            neighbour.wait()
    for proc, conn, _ in workers.values():
        conn.send("stop")
        proc.join(timeout=60)
    rows = []
    for (name, threads), runs in results.items():
        t = [run["seconds"] for run in runs]
        med = statistics.median(t)
        rows.append({"contender": name, "threads": threads, "median_s": med, "min_s": min(t),
                     "max_s": max(t), "images_per_s": args.images / med, "runs": t,
                     "faults_per_step": statistics.median(run["faults_per_step"] for run in runs),
                     "blas": blas.get(name)})
    report(rows, args)
    for name, libraries in blas.items():
        print(f"  NumPy's BLAS in the {name} worker: {'; '.join(libraries) or 'none found'}")
    result = {"config": vars(args), "system": system_info(), "threads": current_threads(),
              "epochs": rows, "notes": notes, "breakdown": {}, "one_time": {}}
    for name in args.backends:
        if not any(r["contender"].startswith(f"minicnn-{name}") for r in rows):
            continue
        if args.breakdown_steps > 0:
            found = breakdown(name, args)
            result["breakdown"][name] = found
            print_breakdown(name, found, args.augment)
        if not args.no_subprocess:
            costs = one_time_costs(name, args)
            result["one_time"][name] = costs
            print(f"minicnn-{name} cold start: " + (
                "; ".join(f"{k} {v:.2f}" for k, v in costs.items()) if "error" not in costs
                else f"failed: {costs['error']}"))
    if args.out:
        save_json(args.out, "epoch.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
