"""What two cores give one model: the lab model's step on two threads, beside what the machine
allows (the same two halves of the batch in two processes that share nothing) and two
independent models on two threads of one process (the GIL, but no step to synchronise).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/two_cores.py --filters 16,64

Each repeat runs, one after another, --steps training steps (random MNIST-shaped images,
numba backend, SGD 0.01) of:
  1 thread, batch B      one model, one thread (what --threads 1 trains at)
  1 thread, batch B/2    the same model on half the batch
  model, 2 threads       the model on two threads: two shards of B/2, their gradients
                         summed, one update (what --threads 2 trains at)
  2 models, 2 threads    two independent models of batch B/2 on two threads of one process
  2 processes            two processes of batch B/2 each, started together
Two of a kind count as the slower of the two.  The table gives medians and ranges in ms per
step, and the speed-up of each two-core row over "1 thread, batch B": "2 processes" is the
most two cores of this machine give this step; the gap from there to "2 models" is the
GIL's, and from there to "model" the step's synchronisation.  Last, a timeline of the
model's two-thread step (medians, untimed run): where it runs Python and waits.
"""
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minicnn.cli import ArgumentParser, number_list, positive_int  # noqa: E402

PROG = "benchmarks/two_cores.py"
ROWS = ("1 thread, batch B", "1 thread, batch B/2", "model, 2 threads", "2 models, 2 threads",
        "2 processes")


def parse_args(argv=None):
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--filters", type=number_list(int), default=[16],
                   help="lab-model filter counts (default 16)")
    p.add_argument("--batch-size", type=positive_int, default=50, help="B, even (default 50)")
    p.add_argument("--steps", type=positive_int, default=40, help="steps per timing")
    p.add_argument("--repeats", type=positive_int, default=8,
                   help="alternating repeats of every row (default 8)")
    p.add_argument("--out", help="write two_cores.json here")
    args = p.parse_args(argv)
    if args.batch_size % 2:
        p.error(f"--batch-size must be even (two halves), got {args.batch_size}")
    if any(f <= 0 for f in args.filters):
        p.error(f"--filters must be positive, got {','.join(map(str, args.filters))}")
    return args


class Trainer:
    """One lab model on ``threads`` threads and its data: ``ms_per_step()`` trains ``steps``
    batches of ``batch`` images."""

    def __init__(self, filters, batch, steps, threads=1):
        import numpy as np
        import minicnn
        minicnn.configure_threads(2)        # BLAS one thread per call, two callers at most
        self.model = minicnn.lab_model(filters, backend="numba", threads=threads)
        self.opt = minicnn.SGD(0.01)
        rng = np.random.default_rng(0)
        self.batch, self.steps = batch, steps
        self.x = rng.random((batch * steps, 1, 28, 28), dtype=np.float32)
        self.y = rng.integers(0, 10, batch * steps)
        self.order = np.arange(batch * steps)
        self.ms_per_step()                  # compiled, buffers made

    def ms_per_step(self):
        from minicnn.nn.fit import train_epoch
        start = time.perf_counter()
        train_epoch(self.model, self.opt, self.x, self.y, self.batch, self.order)
        return (time.perf_counter() - start) / self.steps * 1e3


def process_worker(connection, filters, batch, steps):
    """The second of "2 processes": one timing per message received, sent back."""
    trainer = Trainer(filters, batch, steps)
    connection.send("ready")
    while connection.recv() == "go":
        connection.send(trainer.ms_per_step())


def on_two_threads(a, b):
    """(a(), b()) run at once on two threads."""
    results = [None, None]
    workers = [threading.Thread(target=lambda i=i, f=f: results.__setitem__(i, f()))
               for i, f in enumerate((a, b))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return results


def timeline(trainer):
    """Medians (ms) of where the model's two-thread step spends its time outside the shards,
    from timestamps of one untimed pass over the batches."""
    import numpy as np
    model, marks = trainer.model, []

    def stamped(name, fn):
        def call(*a, **k):
            marks.append((name + " in", threading.get_ident(), time.perf_counter()))
            result = fn(*a, **k)
            marks.append((name + " out", threading.get_ident(), time.perf_counter()))
            return result
        return call
    for plan in model._plans:          # the trainer is not timed after this
        plan.train = stamped("shard", plan.train)
    model._runner.map = stamped("map", model._runner.map)
    model.train_step = stamped("step", model.train_step)
    trainer.ms_per_step()
    main, steps, current = threading.get_ident(), [], {}
    for name, thread, t in marks:
        if name == "step in":
            current = {"shards": {}}
        if name.startswith("shard"):
            current["shards"].setdefault(thread, []).append(t)
        else:
            current[name] = t
        if name == "step out" and len(current["shards"]) == 2:  # else one thread took both
            caller = current["shards"].pop(main)
            current["caller"], (current["worker"],) = caller, current["shards"].values()
            steps.append(current)
    rows = {
        "before the shards (checks, cutting, waking the worker)":
            [s["caller"][0] - s["step in"] for s in steps],
        "the worker's shard starts after the caller's":
            [s["worker"][0] - s["caller"][0] for s in steps],
        "a shard (caller's thread)": [s["caller"][1] - s["caller"][0] for s in steps],
        "a shard (worker's thread)": [s["worker"][1] - s["worker"][0] for s in steps],
        "the slower shard's end to the shards' results":
            [s["map out"] - max(s["caller"][1], s["worker"][1]) for s in steps],
        "gradient sum and update": [s["step out"] - s["map out"] for s in steps],
        "between steps (the next batch, the loss check)":
            [b["step in"] - a["step out"] for a, b in zip(steps, steps[1:])],
        "step": [s["step out"] - s["step in"] for s in steps],
    }
    if len(steps) < 2:
        return {}
    return {name: float(np.median(v)) * 1e3 for name, v in rows.items()}


def measure(filters, args):
    import numpy as np
    half = args.batch_size // 2
    steps = args.steps if filters < 64 else max(4, args.steps // 4)
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    other = context.Process(target=process_worker, args=(theirs, filters, half, steps),
                            daemon=True)
    other.start()
    whole, halves = Trainer(filters, args.batch_size, steps), [Trainer(filters, half, steps)
                                                               for _ in range(2)]
    model = Trainer(filters, args.batch_size, steps, threads=2)
    ours.recv()

    def two_processes():
        ours.send("go")
        mine = halves[0].ms_per_step()
        return max(mine, ours.recv())
    timings = {row: [] for row in ROWS}
    try:
        for _ in range(args.repeats):
            timings[ROWS[0]].append(whole.ms_per_step())
            timings[ROWS[1]].append(halves[0].ms_per_step())
            timings[ROWS[2]].append(model.ms_per_step())
            timings[ROWS[3]].append(max(on_two_threads(halves[0].ms_per_step,
                                                       halves[1].ms_per_step)))
            timings[ROWS[4]].append(two_processes())
    finally:
        ours.send("stop")
        other.join(timeout=30)
    rows = {row: {"median_ms": float(np.median(v)), "min_ms": min(v), "max_ms": max(v),
                  "runs_ms": v} for row, v in timings.items()}
    base = rows[ROWS[0]]["median_ms"]
    for row in ROWS[2:]:
        rows[row]["speedup"] = base / rows[row]["median_ms"]
    return {"filters": filters, "steps": steps, "rows": rows, "timeline_ms": timeline(model)}


def main(argv=None):
    args = parse_args(argv)
    from minicnn.parallel.threads import current_threads
    blas = current_threads()
    print(f"two cores, lab model, batch {args.batch_size}, {args.repeats} repeats; BLAS core "
          f"type {blas['blas_core']} (OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', 'unset')}), {os.cpu_count()} cores")
    out = {"config": vars(args), "blas": blas, "results": []}
    for filters in args.filters:
        result = measure(filters, args)
        out["results"].append(result)
        print(f"\n{filters} filters, {result['steps']} steps a timing (ms per step)")
        print(f"  {'':22s} {'median':>8s} {'min..max':>16s} {'vs 1 thread, B':>15s}")
        for row, r in result["rows"].items():
            speedup = f"{r['speedup']:.2f}x" if "speedup" in r else ""
            print(f"  {row:22s} {r['median_ms']:8.3f} {r['min_ms']:7.3f}..{r['max_ms']:<8.3f}"
                  f" {speedup:>15s}")
        print("  the model's two-thread step, where the time goes (medians, ms):")
        for name, ms in result["timeline_ms"].items():
            print(f"    {name:56s} {ms:7.3f}")
    if args.out:
        from minicnn.results.files import write_json
        write_json(Path(args.out) / "two_cores.json", out)
        print(f"\nwrote {Path(args.out) / 'two_cores.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
