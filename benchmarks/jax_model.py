"""minicnn's models in JAX, for side-by-side timings: a ``jax.jit``-compiled SGD step.

``JaxModel`` translates built minicnn layers (any preset or --arch spec) into pure JAX
functions on channels-last images, as TensorFlow runs them on a CPU: convolutions with
minicnn's explicit paddings (TensorFlow's 'same' rule), max and average pools (padding not
counted), ReLU, sigmoid, tanh, dense layers, dropout (inverted, a fresh key each step),
batch norm on the batch's statistics (the running averages, which the step does not need,
are left out), TensorFlow's LRN, and L2 weight decay in the loss.  Weights are Glorot
uniform, biases zero (the timings do not depend on the values).  JAX is not a dependency
of minicnn; ``make_jax`` returns None where it is not installed.
"""
import importlib.util
import os
import time

import numpy as np

from minicnn.nn import initializers
from minicnn.nn.layers import (AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sigmoid,
                               Tanh)
from minicnn.nn.regularization import BatchNorm, Dropout, LocalResponseNorm


def _glorot(rng, shape, fan_in, fan_out):
    return initializers.draw("glorot_uniform", rng, shape, fan_in, fan_out).astype(np.float32)


def _pads(g):
    return ((g.pad_top, g.pad_bottom), (g.pad_left, g.pad_right))


def translate(layers, input_shape, seed=0):
    """(params, forward): params a list (one entry per layer, () where it has none);
    forward(params, x NHWC, key, training) -> (logits, L2 penalty)."""
    import jax
    import jax.numpy as jnp
    from jax import lax
    rng = np.random.default_rng(seed)
    params, fns, shape = [], [], tuple(input_shape)
    for layer in layers:
        decay = getattr(layer, "weight_decay", 0) or 0
        if isinstance(layer, Conv2D):
            (kh, kw), (sh, sw), pads = layer.kernel_size, layer.stride, _pads(layer.g)
            c, f = shape[0], layer.filters
            params.append((_glorot(rng, (kh, kw, c, f), c * kh * kw, f * kh * kw),
                           np.zeros(f, np.float32)))

            def conv(p, x, key, training, s=(sh, sw), pads=pads, decay=decay):
                y = lax.conv_general_dilated(x, p[0], s, pads,
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
                return y + p[1], 0.5 * decay * jnp.sum(p[0] * p[0])
            fns.append(conv)
        elif isinstance(layer, Dense):
            params.append((_glorot(rng, (shape[0], layer.units), shape[0], layer.units),
                           np.zeros(layer.units, np.float32)))
            fns.append(lambda p, x, key, training, decay=decay:
                       (x @ p[0] + p[1], 0.5 * decay * jnp.sum(p[0] * p[0])))
        elif isinstance(layer, (MaxPool2D, AvgPool2D)):
            params.append(())
            window = (1, *layer.pool_size, 1)
            strides = (1, *layer.stride, 1)
            pads = ((0, 0), *_pads(layer.g), (0, 0))
            if isinstance(layer, MaxPool2D):
                fns.append(lambda p, x, key, training, w=window, s=strides, pads=pads:
                           (lax.reduce_window(x, -jnp.inf, lax.max, w, s, pads), 0.0))
            else:
                def avg(p, x, key, training, w=window, s=strides, pads=pads):
                    total = lax.reduce_window(x, 0.0, lax.add, w, s, pads)
                    count = lax.reduce_window(jnp.ones((1, *x.shape[1:3], 1), x.dtype), 0.0,
                                              lax.add, w, s, pads)
                    return total / count, 0.0
                fns.append(avg)
        elif isinstance(layer, LocalResponseNorm):
            params.append(())
            r, bias, alpha, beta = (layer.depth_radius, layer.bias, layer.alpha, layer.beta)

            def lrn(p, x, key, training, r=r, bias=bias, alpha=alpha, beta=beta):
                sums = lax.reduce_window(x * x, 0.0, lax.add, (1, 1, 1, 2 * r + 1),
                                         (1, 1, 1, 1), ((0, 0), (0, 0), (0, 0), (r, r)))
                return x * (bias + alpha * sums) ** -beta, 0.0
            fns.append(lrn)
        elif isinstance(layer, BatchNorm):
            units = shape[0]
            params.append((np.ones(units, np.float32), np.zeros(units, np.float32)))
            axes = (0,) if layer.per_unit else (0, 1, 2)

            def batchnorm(p, x, key, training, axes=axes, eps=layer.epsilon):
                mean = x.mean(axis=axes, keepdims=True)
                var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
                return (x - mean) * lax.rsqrt(var + eps) * p[0] + p[1], 0.0
            fns.append(batchnorm)
        elif isinstance(layer, Dropout):
            params.append(())

            def dropout(p, x, key, training, rate=layer.rate):
                if not training or rate == 0:
                    return x, 0.0
                keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
                return jnp.where(keep, x / (1.0 - rate), 0.0), 0.0
            fns.append(dropout)
        else:
            simple = {ReLU: jax.nn.relu, Sigmoid: jax.nn.sigmoid, Tanh: jnp.tanh,
                      Flatten: lambda x: x.reshape(x.shape[0], -1)}
            if type(layer) not in simple:
                raise ValueError(f"no JAX translation for {type(layer).__name__}")
            params.append(())
            fns.append(lambda p, x, key, training, fn=simple[type(layer)]: (fn(x), 0.0))
        shape = layer.output_shape

    def forward(params, x, key, training):
        penalty = 0.0
        for i, (fn, p) in enumerate(zip(fns, params)):
            x, extra = fn(p, x, jax.random.fold_in(key, i), training)
            penalty = penalty + extra
        return x, penalty
    return [tuple(jnp.asarray(a) for a in p) for p in params], forward


class JaxModel:
    """A jax.jit SGD step (the parameters donated, so XLA updates them in place)."""

    def __init__(self, layers, input_shape, lr, seed=0):
        import jax
        import jax.numpy as jnp
        self.jax, self.jnp = jax, jnp
        self.params, forward = translate(layers, input_shape, seed)
        self.key = jax.random.PRNGKey(seed)

        def loss_fn(params, x, y, key):
            logits, penalty = forward(params, x, key, True)
            log_p = jax.nn.log_softmax(logits)
            return -jnp.take_along_axis(log_p, y[:, None], axis=1).mean() + penalty

        def step(params, x, y, key):
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y, key)
            return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), loss
        self.step = jax.jit(step, donate_argnums=0)
        self.name = f"jax-jit {jax.__version__}"

    def synchronize(self):
        self.jax.block_until_ready(self.params)

    def num_params(self):
        return int(sum(a.size for p in self.params for a in p))

    def train_epoch(self, x, y, batch_size):
        jnp = self.jnp
        x = jnp.asarray(np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x)
        y = jnp.asarray(y.astype(np.int32))
        self.synchronize()
        start = time.perf_counter()
        for i in range(0, len(y), batch_size):
            self.key, key = self.jax.random.split(self.key)
            self.params, loss = self.step(self.params, x[i:i + batch_size],
                                          y[i:i + batch_size], key)
        loss.block_until_ready()
        return time.perf_counter() - start


def make_jax(arch, input_shape, lr, threads, filters=16):
    """A JaxModel, or None where JAX is not installed.  ``threads``: the cores this process
    may use, set before JAX starts (XLA sizes its thread pool to them; epoch.py runs each
    contender in a fresh process)."""
    if importlib.util.find_spec("jax") is None:
        return None
    cores = sorted(os.sched_getaffinity(0))
    if threads and threads < len(cores):
        os.sched_setaffinity(0, cores[:threads])
    from frameworks import built_layers
    return JaxModel(built_layers(arch, input_shape, filters), input_shape, lr)
