"""What two cores give one model: the lab model's step on two threads, beside an estimate of
what the machine allows (the same two halves of the batch in two processes that share
nothing) and two independent models on two threads of one process (the GIL, but no step to
synchronise).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/two_cores.py --filters 16,64

Each repeat runs, one after another, --steps training steps (a quarter of them, 4 at least,
at 64 filters and more; random MNIST-shaped images, numba backend, SGD 0.01) of:
  1 thread, batch B      one model, one thread (what --threads 1 trains at)
  1 thread, batch B/2    the same model on half the batch
  model, 2 threads       the model on two threads: two shards of B/2, their gradients
                         summed, one update (what --threads 2 trains at)
  2 models, 2 threads    two independent models of batch B/2 on two threads of one process
  2 processes            two processes of batch B/2 each, started together
Two of a kind are timed from their common start to the later one's end.  The table gives
medians and ranges in ms per step, and the speed-up of each two-core row over "1 thread,
batch B": "2 processes" estimates the most two cores of this machine give this step (an
estimate: the runs are noisy); the gap from there to "2 models" is the GIL's, and from
there to "model" the step's synchronisation.  Last, a timeline of the model's two-thread
step (medians, untimed run): where it runs Python and waits.
"""
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import save_json  # noqa: E402
from minicnn.cli import ArgumentParser, number_list, positive_int  # noqa: E402
from minicnn_contender import synthetic_data  # noqa: E402

PROG = "benchmarks/two_cores.py"
ROWS = ("1 thread, batch B", "1 thread, batch B/2", "model, 2 threads", "2 models, 2 threads",
        "2 processes")


def parse_args(argv=None):
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--filters", type=number_list(int), default=[16],
                   help="lab-model filter counts (default 16)")
    p.add_argument("--batch-size", type=positive_int, default=50, help="B, even (default 50)")
    p.add_argument("--steps", type=positive_int, default=40,
                   help="steps per timing (default 40; a quarter, 4 at least, from 64 filters)")
    p.add_argument("--repeats", type=positive_int, default=8,
                   help="alternating repeats of every row (default 8)")
    p.add_argument("--out", help="write two_cores.json here")
    args = p.parse_args(argv)
    if args.batch_size % 2:
        p.error(f"--batch-size must be even (two halves), got {args.batch_size}")
    if args.out:
        try:
            Path(args.out).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            p.error(f"--out: cannot make the folder {args.out}: {exc.strerror}")
    return args


class Trainer:
    """One lab model on ``threads`` threads and its data: ``ms_per_step()`` trains ``steps``
    batches of ``batch`` images."""

    def __init__(self, filters, batch, steps, threads=1):
        import numpy as np
        import minicnn
        self.model = minicnn.lab_model(filters, backend="numba", threads=threads)
        self.opt = minicnn.SGD(0.01)
        self.batch, self.steps = batch, steps
        self.x, self.y = synthetic_data(batch * steps)
        self.order = np.arange(batch * steps)
        self.ms_per_step()                  # compiled, buffers made

    def ms_per_step(self):
        from minicnn.nn.fit import train_epoch
        start = time.perf_counter()
        train_epoch(self.model, self.opt, self.x, self.y, self.batch, self.order)
        return (time.perf_counter() - start) / self.steps * 1e3


def steps_per_timing(filters, steps):
    return steps if filters < 64 else max(4, steps // 4)


def process_worker(connection, filters, batch, steps):
    """The second of "2 processes": one pass over its batches per "go", then "done"."""
    import minicnn
    minicnn.configure_threads(2)            # as in main()
    trainer = Trainer(filters, batch, steps)
    connection.send("ready")
    while connection.recv() == "go":
        trainer.ms_per_step()
        connection.send("done")


class OtherProcess:
    """The second process of "2 processes", on a pipe; a one-line RuntimeError if it dies."""

    def __init__(self, filters, batch, steps):
        context = multiprocessing.get_context("spawn")
        self._pipe, theirs = context.Pipe()
        self._process = context.Process(target=process_worker, daemon=True,
                                        args=(theirs, filters, batch, steps))
        self._process.start()
        theirs.close()              # so that its death ends our recv() with EOFError
        self.wait()

    def wait(self):
        try:
            self._pipe.recv()
        except EOFError:
            self._process.join(timeout=5)
            raise RuntimeError(f"the second process of '2 processes' died (exit code "
                               f"{self._process.exitcode})") from None

    def go(self):
        self._pipe.send("go")

    def close(self):
        try:
            self._pipe.send("stop")
        except OSError:
            pass                    # it is gone already
        self._process.join(timeout=30)


def wall_ms_per_step(run_both, steps):
    start = time.perf_counter()
    run_both()
    return (time.perf_counter() - start) / steps * 1e3


def on_two_threads(a, b):
    """a() and b() run at once on two threads; returns when both have."""
    workers = [threading.Thread(target=f) for f in (a, b)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def timeline(trainer):
    """Medians (ms) of where the model's two-thread step spends its time outside the shards,
    from timestamps of one untimed pass over the batches (the trainer is not timed after)."""
    model, marks = trainer.model, []

    def stamped(name, fn):
        def call(*a, **k):
            marks.append((name + " in", threading.get_ident(), time.perf_counter()))
            result = fn(*a, **k)
            marks.append((name + " out", threading.get_ident(), time.perf_counter()))
            return result
        return call
    for plan in model._plans:
        plan.train = stamped("shard", plan.train)
    model._runner.map = stamped("map", model._runner.map)
    model.train_step = stamped("step", model.train_step)
    trainer.ms_per_step()
    return step_timeline(marks, threading.get_ident())


def step_timeline(marks, caller):
    """[(event, thread, seconds)] of steps ("step in/out"), the runner's map ("map in/out")
    and shards ("shard in/out"), ``caller`` the thread calling train_step -> {what: median
    ms}; steps where one thread ran both shards are left out (and the gaps next to them), {}
    if fewer than two are left."""
    import numpy as np
    steps, current, index = [], {}, -1
    for name, thread, t in marks:
        if name == "step in":
            index += 1
            current = {"index": index, "shards": {}}
        if name.startswith("shard"):
            current["shards"].setdefault(thread, []).append(t)
        else:
            current[name] = t
        if name == "step out" and len(current["shards"]) == 2:
            current["caller"] = current["shards"].pop(caller)
            (current["worker"],) = current["shards"].values()
            steps.append(current)
    if len(steps) < 2:
        return {}
    rows = {
        "before the shards (checks, cutting, waking the worker)":
            [s["caller"][0] - s["step in"] for s in steps],
        "the worker's shard starts after the caller's":
            [s["worker"][0] - s["caller"][0] for s in steps],
        "a shard (caller's thread)": [s["caller"][1] - s["caller"][0] for s in steps],
        "a shard (worker's thread)": [s["worker"][1] - s["worker"][0] for s in steps],
        "the later shard's end to the shards' results":
            [s["map out"] - max(s["caller"][1], s["worker"][1]) for s in steps],
        "gradient sum and update": [s["step out"] - s["map out"] for s in steps],
        "step": [s["step out"] - s["step in"] for s in steps],
        "between steps (the next batch, the loss check)":
            [b["step in"] - a["step out"] for a, b in zip(steps, steps[1:])
             if b["index"] == a["index"] + 1],
    }
    return {name: float(np.median(v)) * 1e3 for name, v in rows.items() if v}


def measure(filters, args):
    import numpy as np
    half, steps = args.batch_size // 2, steps_per_timing(filters, args.steps)
    other = OtherProcess(filters, half, steps)
    whole, halves = Trainer(filters, args.batch_size, steps), [Trainer(filters, half, steps)
                                                               for _ in range(2)]
    model = Trainer(filters, args.batch_size, steps, threads=2)

    def two_processes():
        other.go()
        halves[0].ms_per_step()
        other.wait()
    runs = (whole.ms_per_step, halves[0].ms_per_step, model.ms_per_step,
            lambda: wall_ms_per_step(lambda: on_two_threads(*(h.ms_per_step for h in halves)),
                                     steps),
            lambda: wall_ms_per_step(two_processes, steps))
    timings = {row: [] for row in ROWS}
    try:
        for _ in range(args.repeats):
            for row, run in zip(ROWS, runs):
                timings[row].append(run())
    finally:
        other.close()
    rows = {row: {"median_ms": float(np.median(v)), "min_ms": min(v), "max_ms": max(v),
                  "runs_ms": v} for row, v in timings.items()}
    base = rows[ROWS[0]]["median_ms"]
    for row in ROWS[2:]:
        rows[row]["speedup"] = base / rows[row]["median_ms"]
    return {"filters": filters, "steps": steps, "rows": rows, "timeline_ms": timeline(model)}


def main(argv=None):
    args = parse_args(argv)
    import minicnn
    from minicnn.parallel.threads import current_threads
    minicnn.configure_threads(2)            # BLAS one thread a call: two callers, two cores
    blas = dict(current_threads(), OPENBLAS_CORETYPE=os.environ.get("OPENBLAS_CORETYPE"))
    print(f"two cores, lab model, batch {args.batch_size}, {args.repeats} repeats; BLAS core "
          f"type {blas['blas_core']} (OPENBLAS_CORETYPE={blas['OPENBLAS_CORETYPE'] or 'unset'}),"
          f" {os.cpu_count()} cores")
    out = {"config": vars(args), "blas": blas, "results": []}
    for filters in args.filters:
        try:
            result = measure(filters, args)
        except RuntimeError as exc:         # the second process died
            sys.exit(f"{PROG}: {exc}")
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
        save_json(args.out, "two_cores.json", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
