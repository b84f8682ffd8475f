"""The Dask cluster that runs a sweep's trials, and the rule that places them.

Default: a local cluster on this machine (a Dask SpecCluster, the building
block of LocalCluster, so that each worker can be given its own cores and
GPU).  Every CPU trial runs its shard threads on cores of its own: the
cluster has cores // threads workers, each with one task slot, the resource
``cores=threads`` and its own block of cores (the trial pins itself to
them).  GPU trials: one worker per visible GPU (CUDA_VISIBLE_DEVICES narrowed
to it, resource ``GPU=1``).  Or any running Dask cluster (dask scheduler /
dask worker, dask-jobqueue, Kubernetes; docs/distributed.md), reached by its
address.

A worker that dies mid-trial loses only that trial: Dask runs it again
elsewhere (up to ``distributed.scheduler.allowed-failures`` times).
"""
import time
import uuid

from ..parallel.mpi import visible_gpus
from ..parallel.threads import usable_cores
from . import SweepError, TrialFailed
from .trial import run_trial

CONNECT_TIMEOUT = 5          # seconds to reach an existing scheduler
GPU_BACKENDS = ("cupy",)


def _span(cores):
    cores = sorted(cores)
    if cores and cores == list(range(cores[0], cores[-1] + 1)) and len(cores) > 1:
        return f"cores {cores[0]}-{cores[-1]}"
    return ("core " if len(cores) == 1 else "cores ") + ",".join(map(str, cores))


class Cluster:
    """A Dask client and the rule that places trials: a local cluster sized to this machine,
    or an existing one.  ``threads`` is each CPU trial's thread count (None: a whole worker's
    cores); ``timing``: CPU trials must not share cores (a ``cores`` resource each);
    ``cpu``/``gpu``: which kinds of trial will come.  ``describe`` says how trials are placed."""

    def __init__(self, scheduler=None, workers=None, threads=1, cpu=True, gpu=False,
                 timing=False):
        import logging
        logging.getLogger("distributed").setLevel(logging.ERROR)
        self.timing, self.cluster = timing, None
        self.cpu_resources = self.gpu_resources = None
        if scheduler:
            self._connect(scheduler, threads, cpu, gpu)
        else:
            self._local(workers, threads, cpu, gpu)

    def _local(self, workers, threads, cpu, gpu):
        import logging
        from distributed import Client, Nanny, Scheduler, SpecCluster
        cores = usable_cores()
        gpus = (visible_gpus() or [None]) if gpu else []
        # A GPU trial drives its device from one core: keep one core per GPU worker for it.
        reserved = cores[:len(gpus)] if cpu and gpu and len(cores) > len(gpus) else []
        free = cores[len(reserved):]
        self.threads = threads = threads or len(free)
        n = workers or max(1, len(free) // threads)
        pinned = n * threads <= len(free)
        if cpu and self.timing and not pinned:
            raise SweepError(f"timing trials need cores of their own: {n} worker(s) x --threads "
                            f"{threads} is more than the {len(free)} core(s) here")
        specs, lines = {}, []
        options = {"nthreads": 1, "host": "127.0.0.1", "dashboard": False,
                   "dashboard_address": None, "silence_logs": logging.ERROR}
        if cpu:
            for i in range(n):
                own = free[i * threads:(i + 1) * threads] if pinned else []
                env = {"MINICNN_CORES": ",".join(map(str, own))} if own else {}
                specs[f"cpu-{i}"] = {"cls": Nanny, "options": dict(
                    options, name=f"cpu-{i}", resources={"cores": threads}, env=env)}
            self.cpu_resources = {"cores": threads}
            lines.append(f"{n} CPU worker(s), one trial at a time each, {threads} thread(s) "
                         "per trial" + (f" on {threads} core(s) of its own" if pinned else
                                        f" (workers share the {len(free)} cores)"))
        for i, g in enumerate(gpus):
            env = {} if g is None else {"CUDA_VISIBLE_DEVICES": g}
            if reserved:
                env["MINICNN_CORES"] = str(reserved[i])
            specs[f"gpu-{i}"] = {"cls": Nanny, "options": dict(
                options, name=f"gpu-{i}", resources={"GPU": 1}, env=env)}
        if gpus:
            self.gpu_resources = {"GPU": 1}
            lines.append(f"{len(gpus)} GPU worker(s), one GPU each "
                         f"({'CUDA_VISIBLE_DEVICES=' + ','.join(gpus) if gpus[0] else 'GPU 0'})"
                         + (f", on {_span(reserved)} kept for them" if reserved else ""))
        self.cluster = SpecCluster(
            workers=specs, silence_logs=logging.ERROR,
            scheduler={"cls": Scheduler, "options": {
                "host": "127.0.0.1", "protocol": "tcp://", "dashboard": False,
                "dashboard_address": None}})
        self.client = Client(self.cluster)
        self.describe = (f"local Dask cluster, {len(cores)} core(s) here: " + "; ".join(lines))
        if cpu and self.timing:
            self.describe += (f"; a timing trial takes cores={threads}, so no two share a core: "
                              + ("one at a time" if n == 1 else f"at most {n} at once"))

    def _connect(self, address, threads, cpu, gpu):
        from distributed import Client
        try:
            _probe(address)                # a refused or unknown address fails at once
            self.client = Client(address, timeout=f"{CONNECT_TIMEOUT}s")
        except Exception as exc:           # OSError, TimeoutError, ValueError (bad address)
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SweepError(f"cannot reach the Dask scheduler at {address} within "
                            f"{CONNECT_TIMEOUT} s ({why}); start one (dask scheduler, see "
                            "docs/distributed.md) or leave --scheduler out to run here")
        info = self.client.scheduler_info()["workers"].values()
        offered = [w.get("resources", {}) for w in info]
        cores = [r["cores"] for r in offered if "cores" in r]
        self.threads = threads or (int(max(cores)) if cores else None)
        if cpu and self.timing:
            if self.threads is None:
                raise SweepError("give --threads: no worker offers a 'cores' resource yet")
            if offered and not any(c >= self.threads for c in cores):
                raise SweepError(f"no worker of {address} offers cores={self.threads}: timing "
                                "trials need cores of their own; start workers with "
                                f"dask worker {address} --nthreads 1 --resources "
                                f"cores={self.threads}")
        if cpu and (cores or self.timing):
            self.cpu_resources = {"cores": self.threads}
        if gpu and any("GPU" in r for r in offered):
            self.gpu_resources = {"GPU": 1}
        self.threads = self.threads or 1
        slots = sum(w.get("nthreads", 0) for w in info)
        self.describe = (f"Dask cluster at {address}: {len(offered)} worker(s), {slots} task "
                         f"slot(s)" + ("" if offered else " (none yet: the trials wait for "
                                                         "workers to join)"))
        if self.cpu_resources:
            self.describe += f"; each CPU trial takes cores={self.threads}"
        if cpu and self.timing:
            self.describe += ", so no two timing trials share a worker's cores"
        if self.gpu_resources:
            self.describe += "; each GPU trial takes GPU=1"

    def resources(self, spec):
        return self.gpu_resources if spec["backend"] in GPU_BACKENDS else self.cpu_resources

    def run(self, tasks, on_result, total=None, done=0):
        """Run every (key, spec, label) of ``tasks`` as a task; ``on_result(key, result)`` is
        called here as each finishes, with a progress line (done / total, ETA).  A trial that
        raises stops the sweep with one line (the finished points are kept)."""
        from distributed import as_completed
        total = total if total is not None else len(tasks)
        run_id = uuid.uuid4().hex[:6]
        futures = {}
        for key, spec, label in tasks:
            spec = dict(spec, threads=spec["threads"] or self.threads)   # None: the worker's
            future = self.client.submit(run_trial, spec, key=f"trial-{key}-{run_id}", pure=False,
                                        resources=self.resources(spec))
            futures[future] = (key, label)
        start, finished = time.perf_counter(), 0
        try:
            for future in as_completed(futures):
                key, label = futures[future]
                try:
                    result = future.result()
                except Exception as exc:
                    raise TrialFailed(f"trial {label} failed: {type(exc).__name__}: "
                                      f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
                finished += 1
                on_result(key, result)
                elapsed = time.perf_counter() - start
                left = len(tasks) - finished
                eta = f"ETA {_duration(elapsed / finished * left)}" if left else "all done"
                where = result["placement"]
                print(f"[{done + finished}/{total}] {label}: {_summary(result)}, "
                      f"{result['with_validation_seconds'] or 0:.1f} s on worker {where['worker']}"
                      f" ({_span(where['cores'])}); {eta}", flush=True)
        finally:
            for future in futures:
                future.cancel()

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _probe(address):
    """Open and close a TCP connection to a tcp:// (or scheme-less) scheduler address."""
    import socket
    scheme, _, rest = address.rpartition("://")
    if scheme not in ("", "tcp"):
        return
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected tcp://HOST:PORT, got {address!r}")
    socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min"


def _summary(result):
    if result["diverged"]:
        return "diverged"
    last = result["epochs"][-1]
    text = f"val_acc {100 * last['val_accuracy']:.2f}%"
    if "test_accuracy" in result:
        text += f" test_err {100 * (1 - result['test_accuracy']):.2f}%"
    return text
