"""Learning-rate schedules: the rate of each training step, as ``--lr-schedule`` names them.

    constant                    lr at every step (the default)
    staircase:RATE:EPOCHS       lr * RATE ** floor(step / decay_steps)   tf.train.exponential_decay
    exponential:RATE:EPOCHS     lr * RATE ** (step / decay_steps)        ... with staircase=False
    step:E1,E2,...:FACTOR       lr times FACTOR at each of the epochs E1, E2, ... (MultiStepLR)
    cosine                      lr * (1 + cos(pi * step / total_steps)) / 2, to 0 at the end

decay_steps = int(EPOCHS * steps per epoch), as the TensorFlow CIFAR-10 tutorial computes
it (its run is staircase:0.1:350 from lr 0.1).  EPOCHS may be fractional.  The training
loop asks ``rate(step)`` before each step (step 0 first) and records the rates it used.
"""
import math
from typing import NamedTuple

KINDS = ("constant", "staircase", "exponential", "step", "cosine")


class ScheduleError(ValueError):
    """--lr-schedule is not one of the forms above; the message says which it should be."""


class Schedule(NamedTuple):
    kind: str
    lr: float
    decay_steps: int = 0        # staircase, exponential
    rate: float = 1.0           # staircase, exponential; the factor of step
    boundaries: tuple = ()      # step: the steps at which the rate is multiplied
    total_steps: int = 0        # cosine

    def __call__(self, step):
        """The learning rate of training step ``step`` (0 for the first)."""
        if self.kind == "constant":
            return self.lr
        if self.kind in ("staircase", "exponential"):
            p = step / self.decay_steps
            return self.lr * self.rate ** (math.floor(p) if self.kind == "staircase" else p)
        if self.kind == "step":
            return self.lr * self.rate ** sum(step >= b for b in self.boundaries)
        return self.lr * 0.5 * (1 + math.cos(math.pi * min(step, self.total_steps)
                                             / self.total_steps))


def _positive(text, what, spec):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ScheduleError(f"--lr-schedule {spec!r}: {what} must be a positive number, "
                            f"got {text!r}")
    return value


def parse_schedule(spec, lr, steps_per_epoch, epochs):
    """The Schedule that ``spec`` (see the module docstring) names, for ``epochs`` epochs of
    ``steps_per_epoch`` steps (a float: images / batch size, as TensorFlow counts) from
    ``lr``.  Raises ScheduleError in one line."""
    kind, *args = (spec or "constant").strip().split(":")
    if kind not in KINDS:
        raise ScheduleError(f"--lr-schedule: unknown schedule {kind!r}; use one of "
                            "constant, staircase:RATE:EPOCHS, exponential:RATE:EPOCHS, "
                            "step:E1,E2:FACTOR, cosine")
    wanted = {"constant": 0, "cosine": 0, "staircase": 2, "exponential": 2, "step": 2}[kind]
    if len(args) != wanted:
        form = {"constant": "constant", "cosine": "cosine", "staircase": "staircase:RATE:EPOCHS",
                "exponential": "exponential:RATE:EPOCHS", "step": "step:E1,E2:FACTOR"}[kind]
        raise ScheduleError(f"--lr-schedule {spec!r}: write it as {form}")
    if kind == "constant":
        return Schedule(kind, lr)
    if kind == "cosine":
        return Schedule(kind, lr, total_steps=max(1, math.ceil(steps_per_epoch * epochs)))
    if kind == "step":
        epochs_at = [_positive(e, "each epoch", spec) for e in args[0].split(",") if e.strip()]
        if not epochs_at:
            raise ScheduleError(f"--lr-schedule {spec!r}: give the epochs, e.g. step:30,60:0.1")
        return Schedule(kind, lr, rate=_positive(args[1], "the factor", spec),
                        boundaries=tuple(int(e * steps_per_epoch) for e in sorted(epochs_at)))
    rate = _positive(args[0], "the decay rate", spec)
    decay_steps = int(_positive(args[1], "the epochs per decay", spec) * steps_per_epoch)
    if decay_steps < 1:
        raise ScheduleError(f"--lr-schedule {spec!r}: the decay comes more often than once a "
                            "step; give more epochs per decay")
    return Schedule(kind, lr, decay_steps=decay_steps, rate=rate)
