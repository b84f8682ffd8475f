"""Layers that regularise or normalise: Dropout, BatchNorm and LocalResponseNorm.

Their maths is in ops/dropout.py and ops/normalization.py; the plan runs them
differently in training and in inference (nn/plan.py): dropout is the
identity at inference, batch norm uses its running statistics.
"""
import numpy as np

from . import validate
from .layers import Layer, _image_input


class Dropout(Layer):
    """Inverted dropout (Keras's Dropout(rate)): in training each value is zeroed with
    probability ``rate`` and the others scaled by 1 / (1 - rate); inference passes values
    through.

    The random numbers of a sample depend only on the model's seed, this layer's place in
    the model, the training step and the sample's index in the batch: each sample draws
    from its own Philox stream (NumPy's counter-based generator) keyed by (seed, layer),
    its counter starting at (step, sample) in the high words, so a batch cut into shards or
    spread over processes drops the same values.
    """

    def __init__(self, rate):
        super().__init__()
        self.rate = validate.number(rate, "rate", "Dropout", high=1, low_inclusive=True)
        self.stream = 0        # the layer's place in its model, set by the model

    def uniforms(self, seed, step, first, count):
        """float32 (count, *input_shape) uniforms in [0, 1) of samples first.. of a step."""
        key = np.random.SeedSequence([seed, self.stream]).generate_state(2, np.uint64)
        size = int(np.prod(self.input_shape))
        out = np.empty((count, size), np.float32)
        for i in range(count):
            bits = np.random.Philox(key=key, counter=[0, 0, first + i, step])
            np.random.Generator(bits).random(size, dtype=np.float32, out=out[i])
        return out.reshape(count, *self.input_shape)

    def config(self):
        return {"rate": self.rate}


class BatchNorm(Layer):
    """Batch normalisation (Keras's BatchNormalization defaults: momentum 0.99, epsilon 1e-3).

    After a convolution ((C, H, W) input) it normalises each channel over the batch and every
    pixel; after a dense layer ((D,) input) each unit over the batch.  Parameters gamma
    (scale, ones) and beta (shift, zeros); state moving_mean (zeros) and moving_variance
    (ones), updated in training as running = momentum * running + (1 - momentum) * batch,
    with the batch's biased variance, as Keras does.
    """

    def __init__(self, momentum=0.99, epsilon=1e-3):
        super().__init__()
        self.momentum = validate.number(momentum, "momentum", "BatchNorm", high=1,
                                        low_inclusive=True)
        self.epsilon = validate.number(epsilon, "epsilon", "BatchNorm")

    def _output_shape(self, input_shape):
        if len(input_shape) not in (1, 3):
            raise ValueError(f"{self.name}: needs (C, H, W) or (D,) input, got {input_shape}")
        return input_shape

    @property
    def per_unit(self):
        """True after a dense layer: its statistics are over the batch alone."""
        return len(self.input_shape) == 1

    def parameter_shapes(self):
        return {"gamma": (self.input_shape[0],), "beta": (self.input_shape[0],)}

    def initial_params(self, rng):
        c = self.input_shape[0]
        return {"gamma": np.ones(c), "beta": np.zeros(c)}

    def state_shapes(self):
        return {"moving_mean": (self.input_shape[0],), "moving_variance": (self.input_shape[0],)}

    def initial_state(self):
        c = self.input_shape[0]
        return {"moving_mean": np.zeros(c), "moving_variance": np.ones(c)}

    def config(self):
        return {"momentum": self.momentum, "epsilon": self.epsilon}


class LocalResponseNorm(Layer):
    """Local response normalisation across channels, TensorFlow's definition
    (tf.nn.local_response_normalization, whose defaults these are):
    y = x / (bias + alpha * sum of x^2 over channels c - depth_radius .. c + depth_radius)
    ** beta.  PyTorch's LocalResponseNorm(size, alpha, beta, k) is the same layer with
    size = 2 * depth_radius + 1, alpha = TensorFlow's alpha * size, k = bias.  The CIFAR-10
    tutorial uses depth_radius=4, bias=1.0, alpha=0.001 / 9, beta=0.75."""

    def __init__(self, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5):
        super().__init__()
        owner = "LocalResponseNorm"
        if isinstance(depth_radius, bool) or not isinstance(depth_radius, (int, np.integer)):
            raise TypeError(f"{owner}: depth_radius must be an int >= 0, got {depth_radius!r}")
        if depth_radius < 0:
            raise ValueError(f"{owner}: depth_radius must be an int >= 0, got {depth_radius!r}")
        self.depth_radius = int(depth_radius)
        self.bias = validate.number(bias, "bias", owner, low_inclusive=True)
        self.alpha = validate.number(alpha, "alpha", owner, low_inclusive=True)
        self.beta = validate.number(beta, "beta", owner, low_inclusive=True)
        if self.bias == 0 and self.alpha == 0:
            raise ValueError(f"{owner}: bias and alpha cannot both be 0 (every value would be "
                             "divided by 0)")

    def _output_shape(self, input_shape):
        return _image_input(self, input_shape)

    def config(self):
        return {"depth_radius": self.depth_radius, "bias": self.bias, "alpha": self.alpha,
                "beta": self.beta}
