"""minicnn's models in PyTorch (eager or torch.compile) and in TensorFlow/Keras, for
side-by-side timings (JAX: jax_model.py).

``torch_model`` and ``keras_model`` translate a list of built minicnn layers
(any preset or --arch spec) into the framework's own layers: the same
convolutions and paddings (TensorFlow's 'same' rule; asymmetric padding as an
explicit pad layer in PyTorch), pools, activations, dropout, batch norm, LRN
(PyTorch's LocalResponseNorm(2r+1, alpha*(2r+1), beta, bias); TensorFlow's own
op), dense layers and weight decay, trained by plain SGD on the mean softmax
cross-entropy.  Weights use each framework's Glorot-uniform and zero biases
(the timings do not depend on the values).  Each ``make_*`` returns None where
that framework is not installed, else an object with ``name``,
``num_params()``, ``train_epoch(x, y, batch_size) -> seconds`` and
``synchronize()``.  Neither framework is a dependency of minicnn.
"""
import importlib.util
import time

import numpy as np

from minicnn.nn.layers import (AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sigmoid,
                               Tanh)
from minicnn.nn.regularization import BatchNorm, Dropout, LocalResponseNorm


def available(name):
    return importlib.util.find_spec(name) is not None


def _unsupported(layer):
    return ValueError(f"no framework translation for {type(layer).__name__}")


# -- PyTorch ------------------------------------------------------------------------------
def torch_model(layers, input_shape):
    """(nn.Sequential, [parameters with weight decay, rate]) for built minicnn ``layers``."""
    import torch
    from torch import nn
    modules, decayed, shape = [], [], tuple(input_shape)

    def pad_then(g, module, value=0.0):
        pads = (g.pad_left, g.pad_right, g.pad_top, g.pad_bottom)
        if any(pads):
            modules.append(nn.ConstantPad2d(pads, value))
        modules.append(module)
    for layer in layers:
        if isinstance(layer, Conv2D):
            conv = nn.Conv2d(shape[0], layer.filters, layer.kernel_size, layer.stride)
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)
            pad_then(layer.g, conv)
            if layer.weight_decay:
                decayed.append((conv.weight, layer.weight_decay))
        elif isinstance(layer, MaxPool2D):
            pad_then(layer.g, nn.MaxPool2d(layer.pool_size, layer.stride), -float("inf"))
        elif isinstance(layer, AvgPool2D):
            if layer.g.pad_top or layer.g.pad_left or layer.g.pad_bottom or layer.g.pad_right:
                raise _unsupported(layer)
            modules.append(nn.AvgPool2d(layer.pool_size, layer.stride))
        elif isinstance(layer, Dense):
            linear = nn.Linear(shape[0], layer.units)
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
            modules.append(linear)
            if layer.weight_decay:
                decayed.append((linear.weight, layer.weight_decay))
        elif isinstance(layer, LocalResponseNorm):
            size = 2 * layer.depth_radius + 1
            modules.append(nn.LocalResponseNorm(size, layer.alpha * size, layer.beta, layer.bias))
        elif isinstance(layer, BatchNorm):
            cls = nn.BatchNorm1d if layer.per_unit else nn.BatchNorm2d
            modules.append(cls(shape[0], eps=layer.epsilon, momentum=1 - layer.momentum))
        elif isinstance(layer, Dropout):
            modules.append(nn.Dropout(layer.rate))
        else:
            simple = {ReLU: nn.ReLU, Sigmoid: nn.Sigmoid, Tanh: nn.Tanh, Flatten: nn.Flatten}
            if type(layer) not in simple:
                raise _unsupported(layer)
            modules.append(simple[type(layer)]())
        shape = layer.output_shape
    return torch.nn.Sequential(*modules), decayed


class TorchModel:
    """Eager PyTorch, or with ``compiled`` the model through torch.compile (Inductor)."""

    def __init__(self, layers, input_shape, lr, threads, device="cpu", seed=0, compiled=False):
        import torch
        self.torch, self.device = torch, device
        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(seed)
        model, decayed = torch_model(layers, input_shape)
        self.model = model.to(device)
        decayed_ids = {id(p) for p, _ in decayed}
        groups = [{"params": [p for p in self.model.parameters() if id(p) not in decayed_ids]}]
        groups += [{"params": [p], "weight_decay": rate} for p, rate in decayed]
        self.opt = torch.optim.SGD(groups, lr=lr)
        self.loss = torch.nn.CrossEntropyLoss()
        self.name = f"pytorch-{device}{'-compile' if compiled else ''} {torch.__version__}"
        if compiled:
            self.model = torch.compile(self.model)

    def synchronize(self):
        if self.device != "cpu":
            self.torch.cuda.synchronize()

    def num_params(self):
        return sum(p.numel() for p in self.model.parameters())

    def train_epoch(self, x, y, batch_size):
        torch = self.torch
        x = torch.from_numpy(x).to(self.device)
        y = torch.from_numpy(y).to(self.device)
        self.model.train()
        self.synchronize()
        start = time.perf_counter()
        for i in range(0, len(y), batch_size):
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss(self.model(x[i:i + batch_size]), y[i:i + batch_size])
            loss.backward()
            self.opt.step()
        self.synchronize()
        return time.perf_counter() - start


# -- TensorFlow / Keras -------------------------------------------------------------------
def keras_model(layers, input_shape):
    """A channels-last Keras model for built minicnn ``layers`` (TensorFlow's CPU
    convolutions need NHWC); weight decay as Keras L2 regularisers (Keras's l2(l) adds
    l * sum(w^2), TensorFlow's tutorial rate * sum(w^2) / 2, so l = rate / 2)."""
    import tensorflow as tf
    kl = tf.keras.layers
    c, h, w = input_shape if len(input_shape) == 3 else (None, None, None)
    out = [tf.keras.Input((h, w, c) if c else tuple(input_shape))]
    init = dict(kernel_initializer="glorot_uniform", bias_initializer="zeros")

    def explicit(g):
        return not isinstance(g, str)
    for layer in layers:
        regularizer = ({"kernel_regularizer": tf.keras.regularizers.L2(layer.weight_decay / 2)}
                       if getattr(layer, "weight_decay", 0) else {})
        if isinstance(layer, Conv2D):
            padding = layer.padding if isinstance(layer.padding, str) else "valid"
            if explicit(layer.padding) and any(layer.padding):
                out.append(kl.ZeroPadding2D(layer.padding))
            out.append(kl.Conv2D(layer.filters, layer.kernel_size, layer.stride, padding,
                                 **init, **regularizer))
        elif isinstance(layer, (MaxPool2D, AvgPool2D)):
            if explicit(layer.padding) and any(layer.padding):
                raise _unsupported(layer)
            cls = kl.MaxPooling2D if isinstance(layer, MaxPool2D) else kl.AveragePooling2D
            out.append(cls(layer.pool_size, layer.stride, layer.padding))
        elif isinstance(layer, Dense):
            out.append(kl.Dense(layer.units, **init, **regularizer))
        elif isinstance(layer, LocalResponseNorm):
            r, b, a, beta = layer.depth_radius, layer.bias, layer.alpha, layer.beta
            out.append(kl.Lambda(lambda t: tf.nn.local_response_normalization(t, r, b, a, beta)))
        elif isinstance(layer, BatchNorm):
            out.append(kl.BatchNormalization(momentum=layer.momentum, epsilon=layer.epsilon))
        elif isinstance(layer, Dropout):
            out.append(kl.Dropout(layer.rate))
        else:
            simple = {ReLU: lambda: kl.Activation("relu"), Sigmoid: lambda: kl.Activation("sigmoid"),
                      Tanh: lambda: kl.Activation("tanh"), Flatten: kl.Flatten}
            if type(layer) not in simple:
                raise _unsupported(layer)
            out.append(simple[type(layer)]())
    return tf.keras.Sequential(out)


class KerasModel:
    """A compiled tf.function training step on a channels-last model."""

    def __init__(self, layers, input_shape, lr, threads, seed=0):
        import os
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
        self.tf = tf
        if threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:     # already initialised by an earlier instance
                pass
        tf.keras.utils.set_random_seed(seed)
        self.model = keras_model(layers, input_shape)
        self.opt = tf.keras.optimizers.SGD(learning_rate=lr)
        self.loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model, opt, loss_fn = self.model, self.opt, self.loss

        @tf.function
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True)) + sum(model.losses)
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss
        self.step = step
        self.name = f"tensorflow {tf.__version__}"

    def synchronize(self):
        pass

    def num_params(self):
        return int(sum(np.prod(v.shape) for v in self.model.trainable_variables))

    def train_epoch(self, x, y, batch_size):
        tf = self.tf
        x = tf.constant(np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x)
        y = tf.constant(y)
        start = time.perf_counter()
        for i in range(0, len(y), batch_size):
            loss = self.step(x[i:i + batch_size], y[i:i + batch_size])
        float(loss)     # wait for the last step
        return time.perf_counter() - start


def built_layers(arch, input_shape, filters=16, units=128):
    """The layers of an --arch spec or preset, built for ``input_shape`` (shapes known)."""
    from minicnn.nn.model import Sequential
    from minicnn.nn.spec import parse_arch
    layers = parse_arch(arch, filters, units)
    Sequential(layers, input_shape)     # builds them: names, geometries, shapes
    return layers


def make_torch(arch, input_shape, lr, threads, filters=16, device="cpu", compiled=False):
    if not available("torch"):
        return None
    import torch
    if device == "cuda" and not torch.cuda.is_available():
        return None
    return TorchModel(built_layers(arch, input_shape, filters), input_shape, lr, threads, device,
                      compiled=compiled)


def make_keras(arch, input_shape, lr, threads, filters=16):
    if not available("tensorflow"):
        return None
    return KerasModel(built_layers(arch, input_shape, filters), input_shape, lr, threads)
