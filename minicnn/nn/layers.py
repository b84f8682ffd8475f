"""Layers: hyper-parameters, shapes and parameters.  No maths here.

A layer checks its arguments, works out its output shape when a model builds
it, and draws its initial parameters.  The model keeps every parameter in one
flat buffer (and every gradient in another); ``layer.params`` and
``layer.grads`` are views into them, with the same keys.  The maths is in
``minicnn.ops``; the model's plan (``nn/plan.py``) runs it, fusing
neighbouring layers where it can.  Dropout and the normalisation layers are
in nn/regularization.py.

Initialisation (nn/initializers.py): Glorot-uniform weights, as Keras does by
default (see docs/results.md for why), and zero biases, unless a layer names
others; drawn in float64 on the host, so every backend and dtype starts from
the same numbers.  ``weight_decay`` adds rate/2 * sum(w^2) of a layer's
weights (not its biases) to the loss, TensorFlow's tf.nn.l2_loss times the rate.
"""
import numpy as np

from . import initializers, validate
from ..ops.algorithms import ALGORITHMS
from ..ops.geometry import window

CONV_ALGORITHMS = ("auto", *ALGORITHMS)


class Layer:
    """Base class.  Shapes exclude the batch axis: (C, H, W) for images, (D,) for vectors."""

    def __init__(self):
        self.params, self.grads = {}, {}
        self.name = type(self).__name__.lower()
        self.input_shape = self.output_shape = None

    def build(self, input_shape):
        """Check that the layer fits ``input_shape``; returns the output shape."""
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(self._output_shape(self.input_shape))
        return self.output_shape

    def _output_shape(self, input_shape):
        return input_shape

    def parameter_shapes(self):
        """{name: shape} of the parameters of the built layer (empty for most layers)."""
        return {}

    def initial_params(self, rng):
        """{name: float64 host array} of freshly drawn parameters (empty for most layers)."""
        return {}

    def state_shapes(self):
        """{name: shape} of the layer's non-trainable state (batch norm's running statistics)."""
        return {}

    def initial_state(self):
        """{name: float64 host array}: the state of a fresh layer."""
        return {}

    def num_params(self):
        """Parameters of this layer (known once it is built, before they are allocated)."""
        return sum(int(np.prod(shape)) for shape in self.parameter_shapes().values())

    def num_state(self):
        """Non-trainable values of this layer (Keras counts them in "Total params")."""
        return sum(int(np.prod(shape)) for shape in self.state_shapes().values())

    def config(self):
        """Constructor arguments, JSON-serialisable (used by save/load)."""
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Weighted(Layer):
    """A layer with a weight "w" and a bias "b": initialisers and weight decay."""

    def __init__(self, kernel_initializer, bias_initializer, weight_decay):
        super().__init__()
        owner = type(self).__name__
        self.kernel_initializer = initializers.check(kernel_initializer, owner)
        self.bias_initializer = initializers.check(bias_initializer, owner)
        self.weight_decay = validate.number(weight_decay, "weight_decay", owner,
                                            low_inclusive=True)

    def _draw(self, rng, fan_in, fan_out):
        shapes = self.parameter_shapes()
        return {"w": initializers.draw(self.kernel_initializer, rng, shapes["w"], fan_in, fan_out),
                "b": initializers.draw(self.bias_initializer, rng, shapes["b"], fan_in, fan_out)}

    def decayed(self):
        """{parameter name: L2 rate} of the parameters weight decay applies to."""
        return {"w": self.weight_decay} if self.weight_decay else {}

    def _weight_config(self):
        """The initialiser and decay arguments that differ from the defaults."""
        config = {}
        if self.kernel_initializer != "glorot_uniform":
            config["kernel_initializer"] = self.kernel_initializer
        if self.bias_initializer != "zeros":
            config["bias_initializer"] = self.bias_initializer
        if self.weight_decay:
            config["weight_decay"] = self.weight_decay
        return config


def _image_input(layer, input_shape):
    if len(input_shape) != 3:
        raise ValueError(f"{layer.name}: needs (C, H, W) input, got {input_shape}")
    return input_shape


class Conv2D(Weighted):
    """Convolution; w (filters, in_channels, kh, kw), b (filters,).

    padding: 'valid', 'same' (TensorFlow's rule: out = ceil(in / stride), the
    odd extra row/column at the bottom/right), an int or a (pad_h, pad_w) pair.
    algorithm: how it is computed, as cuDNN chooses per layer: 'im2col' (the
    reference, always available), 'direct', 'winograd', or 'auto' (the backend
    picks; ``model.summary()`` shows the choice).  See ops/algorithms.py.
    """

    def __init__(self, filters, kernel_size, stride=1, padding="valid", algorithm="auto",
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", weight_decay=0.0):
        super().__init__(kernel_initializer, bias_initializer, weight_decay)
        self.filters = validate.positive_int(filters, "filters", "Conv2D")
        self.kernel_size = validate.positive_pair(kernel_size, "kernel_size", "Conv2D")
        self.stride = validate.positive_pair(stride, "stride", "Conv2D")
        self.padding = validate.padding(padding, "Conv2D")
        self.algorithm = validate.one_of(algorithm, CONV_ALGORITHMS, "algorithm", "Conv2D")

    def _output_shape(self, input_shape):
        c, h, w = _image_input(self, input_shape)
        self.g = window(h, w, self.kernel_size, self.stride, self.padding, self.name)
        return self.filters, self.g.oh, self.g.ow

    def parameter_shapes(self):
        return {"w": (self.filters, self.input_shape[0], *self.kernel_size), "b": (self.filters,)}

    def initial_params(self, rng):
        _, c, kh, kw = self.parameter_shapes()["w"]
        return self._draw(rng, c * kh * kw, self.filters * kh * kw)

    def config(self):
        padding = self.padding if isinstance(self.padding, str) else list(self.padding)
        return {"filters": self.filters, "kernel_size": list(self.kernel_size),
                "stride": list(self.stride), "padding": padding, "algorithm": self.algorithm,
                **self._weight_config()}


class _Pool2D(Layer):
    """A pooling window; stride defaults to pool_size; 'valid' floors (7x7 pools to 3x3 with
    2x2); 'same' pads as TensorFlow does (3x3 stride 2 over 24x24 gives 12x12)."""

    def __init__(self, pool_size=2, stride=None, padding="valid"):
        super().__init__()
        owner = type(self).__name__
        self.pool_size = validate.positive_pair(pool_size, "pool_size", owner)
        self.stride = validate.positive_pair(self.pool_size if stride is None else stride,
                                             "stride", owner)
        self.padding = validate.padding(padding, owner)
        if not isinstance(self.padding, str) and any(
                p >= k for p, k in zip(self.padding, self.pool_size)):
            raise ValueError(f"{owner}: padding {padding!r} must be smaller than the pool "
                             f"window {self.pool_size}, or a window could hold only padding")

    def _output_shape(self, input_shape):
        c, h, w = _image_input(self, input_shape)
        self.g = window(h, w, self.pool_size, self.stride, self.padding, self.name)
        return c, self.g.oh, self.g.ow

    def config(self):
        padding = self.padding if isinstance(self.padding, str) else list(self.padding)
        return {"pool_size": list(self.pool_size), "stride": list(self.stride), "padding": padding}


class MaxPool2D(_Pool2D):
    """Max pooling: the largest value of each window (ties: the first; NaN wins)."""


class AvgPool2D(_Pool2D):
    """Average pooling: the mean of each window's input pixels (padding not counted, as in
    TensorFlow)."""


class ReLU(Layer):
    pass


class Sigmoid(Layer):
    pass


class Tanh(Layer):
    pass


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), in C, H, W order."""

    def _output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)


class Dense(Weighted):
    """Fully connected: w (in_features, units), b (units,)."""

    def __init__(self, units, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 weight_decay=0.0):
        super().__init__(kernel_initializer, bias_initializer, weight_decay)
        self.units = validate.positive_int(units, "units", "Dense")

    def _output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"{self.name}: needs flat (D,) input, got {input_shape}; "
                             "put a Flatten() before it")
        return (self.units,)

    def parameter_shapes(self):
        return {"w": (self.input_shape[0], self.units), "b": (self.units,)}

    def initial_params(self, rng):
        return self._draw(rng, *self.parameter_shapes()["w"])

    def config(self):
        return {"units": self.units, **self._weight_config()}
