"""An exponential moving average of the weights, evaluated in their place (``--ema DECAY``).

As tf.train.ExponentialMovingAverage(decay, num_updates=step) in the TensorFlow
CIFAR-10 tutorial: after every training step

    shadow -= (1 - d) * (shadow - weights),   d = min(decay, (1 + step) / (10 + step))

where step counts the training steps taken (1 after the first) and the
shadow starts at the initial weights.  So the early average follows the
weights closely and the late one moves slowly (0.9999: an average over about
the last 10,000 steps).  Validation,
testing and the saved model use the averaged weights (``applied``); training
continues from the raw ones.  Batch norm's running statistics are not averaged.
"""
import contextlib

from .. import ops
from ..ops.workspace import Workspace
from . import validate


class WeightAverage:
    def __init__(self, decay):
        self.decay = validate.number(decay, "decay", "--ema", high=1)
        self.shadow = None

    def begin(self, model):
        """Start the average at ``model``'s current weights (before its first step)."""
        self.shadow = model.flat_params.copy()
        self._ws = Workspace(model.backend.xp)

    def update(self, model):
        """One step of the average, after a training step of ``model``."""
        if self.shadow is None:
            self.begin(model)
        step = model.steps_taken
        d = min(self.decay, (1 + step) / (10 + step))
        ops.resolve("ema_update", model.backend)(self.shadow, model.flat_params, d,
                                                 model.backend, self._ws)

    @contextlib.contextmanager
    def applied(self, model):
        """The model's weights replaced by the average inside the block (a no-op before
        ``begin``), restored after it."""
        if self.shadow is None:
            yield
            return
        raw = model.flat_params.copy()
        model.flat_params[...] = self.shadow
        try:
            yield
        finally:
            model.flat_params[...] = raw
