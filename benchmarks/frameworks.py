"""The lab model in PyTorch and in TensorFlow/Keras, for side-by-side timings.

Same layers as ``minicnn.lab_model`` (3x3 'same' convs, 2x2 max-pools, dense
128, dense 10), the same initialisation scheme as minicnn (see
minicnn/layers.py), zero biases, plain SGD, mean softmax cross-entropy.
Each ``make_*`` returns None where that framework is not installed, else an
object with ``name``, ``train_epoch(x, y, batch_size) -> seconds`` and
``synchronize()``.  Neither framework is a dependency of minicnn.
"""
import importlib.util
import time

import numpy as np


def available(name):
    return importlib.util.find_spec(name) is not None


class TorchLab:
    def __init__(self, filters, units, lr, threads, device="cpu", seed=0):
        import torch
        from torch import nn
        self.torch, self.device = torch, device
        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.model = nn.Sequential(
            nn.Conv2d(1, filters, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(filters, filters, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(filters * 49, units), nn.ReLU(), nn.Linear(units, 10),
        ).to(device)
        for m in self.model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=lr)
        self.loss = nn.CrossEntropyLoss()
        self.name = f"pytorch-{device} {torch.__version__}"

    def synchronize(self):
        if self.device != "cpu":
            self.torch.cuda.synchronize()

    def num_params(self):
        return sum(p.numel() for p in self.model.parameters())

    def train_epoch(self, x, y, batch_size):
        torch = self.torch
        x = torch.from_numpy(x).to(self.device)
        y = torch.from_numpy(y).to(self.device)
        self.synchronize()
        start = time.perf_counter()
        for i in range(0, len(y), batch_size):
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss(self.model(x[i:i + batch_size]), y[i:i + batch_size])
            loss.backward()
            self.opt.step()
        self.synchronize()
        return time.perf_counter() - start


class KerasLab:
    """Channels-last (TensorFlow's CPU convolutions need NHWC); a compiled tf.function step."""

    def __init__(self, filters, units, lr, threads, seed=0):
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
        layers = tf.keras.layers
        init = dict(kernel_initializer="glorot_uniform", bias_initializer="zeros")
        self.model = tf.keras.Sequential([
            tf.keras.Input((28, 28, 1)),
            layers.Conv2D(filters, 3, padding="same", activation="relu", **init),
            layers.MaxPooling2D(2),
            layers.Conv2D(filters, 3, padding="same", activation="relu", **init),
            layers.MaxPooling2D(2),
            layers.Flatten(), layers.Dense(units, activation="relu", **init), layers.Dense(10, **init),
        ])
        self.opt = tf.keras.optimizers.SGD(learning_rate=lr)
        self.loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model, opt, loss_fn = self.model, self.opt, self.loss

        @tf.function
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss
        self.step = step
        self.name = f"tensorflow {tf.__version__}"

    def synchronize(self):
        pass

    def num_params(self):
        return self.model.count_params()

    def train_epoch(self, x, y, batch_size):
        tf = self.tf
        x = tf.constant(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
        y = tf.constant(y)
        start = time.perf_counter()
        for i in range(0, len(y), batch_size):
            loss = self.step(x[i:i + batch_size], y[i:i + batch_size])
        float(loss)     # wait for the last step
        return time.perf_counter() - start


def make_torch(filters, units, lr, threads, device="cpu"):
    if not available("torch"):
        return None
    import torch
    if device == "cuda" and not torch.cuda.is_available():
        return None
    return TorchLab(filters, units, lr, threads, device)


def make_keras(filters, units, lr, threads):
    return KerasLab(filters, units, lr, threads) if available("tensorflow") else None
