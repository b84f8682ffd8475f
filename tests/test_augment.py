"""The CIFAR-10 tutorial's crops and augmentation (minicnn/data/augment.py) against an
independent NumPy transcription of TensorFlow's definitions, in TensorFlow's 0-255 units:
tf.image.random_crop, flip_left_right, adjust_brightness, adjust_contrast (each channel
around its own mean) and per_image_standardization (stddev floored at 1/sqrt(N)).  minicnn
works on [0, 1] images, so its results must equal TensorFlow's on the same image times 255.
Also: the random numbers belong to (seed, epoch, index), whatever the batches; every crop
offset and both flips occur; the evaluation view is the standardised central crop; and
fit(..., augment=) trains on the augmented images with their own labels."""
import math

import numpy as np
import pytest

from minicnn.data import Dataset, Split
from minicnn.data import augment as aug
from minicnn.data.augment import (Augment, central_crop, check_crop, crop_view,
                                  evaluation_view, standardize)


# -- TensorFlow's definitions, 0-255 units, one image (C, H, W) at a time ---------------------
def tf_crop(image, top, left, size):
    return image[:, top:top + size, left:left + size]


def tf_flip_left_right(image):
    return image[:, :, ::-1]


def tf_adjust_brightness(image, delta):
    return image + delta


def tf_adjust_contrast(image, factor):
    mean = image.mean(axis=(1, 2), keepdims=True)        # per channel, over height and width
    return (image - mean) * factor + mean


def tf_per_image_standardization(image):
    n = image.size
    mean = image.mean()
    adjusted = max(image.std(), 1 / math.sqrt(n))
    return (image - mean) / adjusted


def tf_distorted(image255, top, left, flip, delta, factor, size):
    x = tf_crop(image255.astype(np.float64), top, left, size)
    if flip:
        x = tf_flip_left_right(x)
    return tf_per_image_standardization(tf_adjust_contrast(tf_adjust_brightness(x, delta),
                                                           factor))


def parameters(u, height, width, size):
    """The distortion the tutorial draws from five uniforms: offsets uniform over every place
    the crop fits, a flip with probability 1/2, delta in [-63, 63], factor in [0.2, 1.8]."""
    return (int(u[0] * (height - size + 1)), int(u[1] * (width - size + 1)), u[2] < 0.5,
            (2 * u[3] - 1) * 63, 0.2 + 1.6 * u[4])


def images(n=16, shape=(3, 32, 32), seed=0):
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


# -- standardisation -----------------------------------------------------------------------
def test_standardize_equals_tensorflows_on_the_255_scaled_image():
    x255 = np.random.default_rng(1).integers(0, 256, (5, 3, 24, 24)).astype(np.float64)
    ours = standardize(x255 / 255)
    for got, image in zip(ours, x255):
        np.testing.assert_allclose(got, tf_per_image_standardization(image), atol=1e-10)
        assert abs(got.mean()) < 1e-12 and abs(got.std() - 1) < 1e-12


def test_the_floor_is_tensorflows_in_255_units():
    """An image whose spread is below TensorFlow's floor 1/sqrt(N) (0-255 units): divided by
    the floor, not by its own std; on [0, 1] the floor is 1/(255 sqrt(N))."""
    rng = np.random.default_rng(2)
    x255 = 100 + 0.005 * rng.standard_normal((1, 3, 24, 24))
    assert x255.std() < 1 / math.sqrt(x255[0].size)
    ours = standardize(x255 / 255)
    expected = tf_per_image_standardization(x255[0])
    np.testing.assert_allclose(ours[0], expected, rtol=1e-6, atol=1e-9)
    assert 0.05 < np.abs(ours).max() < 1          # not scaled up to std 1


def test_a_constant_image_standardises_to_zeros_without_dividing_by_zero():
    """0.5 and 0 sum exactly in float32: exact zeros; 0.7 does not (its float32 mean is off by
    a rounding), and divided by the floor that rounding stays tiny."""
    x = np.zeros((3, 3, 8, 8), dtype=np.float32)
    x[0], x[2] = 0.5, 0.7
    with np.errstate(all="raise"):
        out = standardize(x)
    assert (out[:2] == 0).all()
    assert np.isfinite(out).all() and np.abs(out[2]).max() < 1e-3
    with np.errstate(all="raise"):
        out = evaluation_view(np.zeros((1, 3, 32, 32), np.float32), 24)
    assert (out == 0).all()


# -- the training distortions -----------------------------------------------------------------
@pytest.mark.parametrize("shape,size", [((3, 32, 32), 24), ((1, 28, 28), 24), ((3, 10, 12), 7)])
def test_augment_equals_tensorflows_distortions(shape, size):
    x = images(20, shape, seed=4)
    augment = Augment(x, size, seed=7)
    indices = np.arange(len(x))
    out = augment(indices, epoch=3)
    assert out.dtype == np.float32 and out.shape == (len(x), shape[0], size, size)
    for i, u in zip(indices, augment.draws(indices, 3)):
        expected = tf_distorted(x[i] * np.float64(255), *parameters(u, *shape[1:], size), size)
        np.testing.assert_allclose(out[i], expected, atol=2e-4)
        assert abs(out[i].mean()) < 1e-5 and abs(out[i].std() - 1) < 1e-4


def test_brightness_and_contrast_before_standardisation(monkeypatch):
    """With the last step removed, the distortions are TensorFlow's / 255: a brightness delta
    within 63/255 and spread over that range, a contrast factor within [0.2, 1.8]."""
    monkeypatch.setattr(aug, "standardize", lambda x: x)
    x = images(400, (3, 12, 12), seed=5)
    augment = Augment(x, 8, seed=1)
    indices = np.arange(len(x))
    out = augment(indices, 1)
    deltas, factors = [], []
    for i, u in zip(indices, augment.draws(indices, 1)):
        top, left, flip, delta, factor = parameters(u, 12, 12, 8)
        x255 = tf_crop(x[i] * np.float64(255), top, left, 8)
        if flip:
            x255 = tf_flip_left_right(x255)
        expected = tf_adjust_contrast(tf_adjust_brightness(x255, delta), factor)
        np.testing.assert_allclose(out[i], expected / 255, atol=1e-5)
        crop = x255 / 255
        deltas.append(out[i].mean() - crop.mean())        # contrast keeps each channel's mean
        factors.append(np.std(out[i][0]) / np.std(crop[0]))
    deltas, factors = np.array(deltas), np.array(factors)
    assert np.abs(deltas).max() <= 63 / 255 + 1e-5
    assert deltas.min() < -50 / 255 and deltas.max() > 50 / 255
    assert factors.min() >= 0.2 - 1e-4 and factors.max() <= 1.8 + 1e-4
    assert factors.min() < 0.4 and factors.max() > 1.6


def recover(out, image, size):
    """(top, left, flip) of the crop that ``out`` (C, size, size) was made from: its first
    channel is an increasing affine function of that crop of image's first channel (a
    correlation of 1 with it, and with no other crop of a random image)."""
    windows = np.lib.stride_tricks.sliding_window_view(image[0].astype(np.float64),
                                                       (size, size))      # (top, left, s, s)
    candidates = np.stack([windows, windows[..., ::-1]], axis=2)      # (top, left, flip, s, s)
    c = candidates.reshape(*candidates.shape[:3], -1)
    c = c - c.mean(axis=-1, keepdims=True)
    o = out[0].astype(np.float64).ravel()
    o = o - o.mean()
    r = (c @ o) / (np.linalg.norm(c, axis=-1) * np.linalg.norm(o))
    found = [(int(t), int(l), bool(f)) for t, l, f in zip(*np.nonzero(r > 1 - 1e-5))]
    assert len(found) == 1, found
    return found[0]


def test_every_offset_and_both_flips_occur():
    x = images(300, (3, 32, 32), seed=6)
    augment = Augment(x, 24, seed=3)
    out = augment(np.arange(len(x)), 1)
    seen = [recover(out[i], x[i], 24) for i in range(len(x))]
    tops, lefts, flips = zip(*seen)
    assert set(tops) == set(range(9)) and set(lefts) == set(range(9))
    assert set(flips) == {False, True}
    assert 0.35 < np.mean(flips) < 0.65
    # the offsets are what the draws say (the TensorFlow check above relies on it)
    drawn = [parameters(u, 32, 32, 24)[:3] for u in augment.draws(np.arange(len(x)), 1)]
    assert seen == drawn


def test_the_five_draws_of_a_sample_are_independent():
    """Crop row, crop column, flip, brightness and contrast each get their own uniform: were
    they one number, a sample's offset would decide its flip and its brightness."""
    u = Augment(images(2, (3, 8, 8)), 4, seed=1).draws(np.arange(2000), 0)
    assert u.shape == (2000, 5) and ((0 <= u) & (u < 1)).all()
    correlation = np.corrcoef(u.T)[np.triu_indices(5, 1)]
    assert np.abs(correlation).max() < 0.1
    assert np.abs(u.mean(axis=0) - 0.5).max() < 0.03


def test_a_full_size_crop_only_flips():
    x = images(40, (3, 8, 8), seed=8)
    out = Augment(x, 8)(np.arange(40), 1)
    assert {recover(out[i], x[i], 8)[:2] for i in range(40)} == {(0, 0)}


# -- the random numbers ----------------------------------------------------------------------
def test_a_samples_distortion_does_not_depend_on_the_batches():
    """Same (seed, epoch, index): the same image, in any batch, order or shard."""
    x = images(50, (3, 16, 16), seed=9)
    augment = Augment(x, 12, seed=11)
    whole = augment(np.arange(50), 2)
    order = np.random.default_rng(0).permutation(50)
    parts = np.concatenate([augment(order[a:b], 2) for a, b in ((0, 7), (7, 8), (8, 31),
                                                                 (31, 50))])
    np.testing.assert_array_equal(parts, whole[order])
    np.testing.assert_array_equal(Augment(x, 12, seed=11)([17], 2)[0], whole[17])
    # a second Augment of the same images and seed (another process) agrees too
    np.testing.assert_array_equal(Augment(x.copy(), 12, seed=11)(np.arange(50), 2), whole)


def test_another_epoch_or_seed_or_index_distorts_differently():
    x = np.repeat(images(1, (3, 16, 16), seed=10), 30, axis=0)     # 30 copies of one image
    base = Augment(x, 12, seed=1)
    a = base(np.arange(30), 1)
    assert not np.array_equal(a, base(np.arange(30), 2))
    assert not np.array_equal(a, Augment(x, 12, seed=2)(np.arange(30), 1))
    # the copies get their own draws: not all alike
    assert len({a[i].tobytes() for i in range(30)}) == 30
    draws = base.draws(np.arange(30), 1)
    assert ((0 <= draws) & (draws < 1)).all()
    assert not np.array_equal(draws, base.draws(np.arange(30), 2))


# -- evaluation and crop_view ---------------------------------------------------------------------
@pytest.mark.parametrize("size,offset", [(24, 4), (25, 3), (32, 0), (1, 15)])
def test_the_evaluation_view_is_the_standardised_central_crop(size, offset):
    """TensorFlow's resize_image_with_crop_or_pad: offset (32 - size) // 2."""
    x = images(6, (3, 32, 32), seed=12)
    np.testing.assert_array_equal(central_crop(x, size),
                                  x[:, :, offset:offset + size, offset:offset + size])
    out = evaluation_view(x, size)
    assert out.dtype == np.float32 and out.shape == (6, 3, size, size)
    for got, image in zip(out, x):
        expected = tf_per_image_standardization(
            tf_crop(image * np.float64(255), offset, offset, size))
        np.testing.assert_allclose(got, expected, atol=1e-4)
        if size > 1:
            assert abs(got.mean()) < 1e-5 and abs(got.std() - 1) < 1e-4
    assert np.array_equal(x, images(6, (3, 32, 32), seed=12))      # the input untouched


def dataset(n=12, shape=(3, 32, 32)):
    rng = np.random.default_rng(13)
    split = lambda k: Split(rng.random((k, *shape)).astype(np.float32),  # noqa: E731
                            rng.integers(0, 10, k))
    return Dataset(split(n), split(5), split(4))


def test_crop_view_without_augment_gives_standardised_central_crops():
    data = dataset()
    view, augment = crop_view(data, 24)
    assert augment is None
    for got, split in zip(view, data):
        np.testing.assert_array_equal(got.x, evaluation_view(split.x, 24))
        np.testing.assert_array_equal(got.y, split.y)
    # no crop: standardised whole images
    view, augment = crop_view(data, None)
    assert augment is None and view.train.x.shape == data.train.x.shape
    np.testing.assert_allclose(view.test.x, standardize(data.test.x.copy()))


def test_crop_view_with_augment_keeps_the_training_images_for_the_augment():
    data = dataset()
    view, augment = crop_view(data, 24, augment=True, seed=5)
    assert isinstance(augment, Augment) and augment.crop == 24
    assert view.train.x is data.train.x and view.train.y is data.train.y
    np.testing.assert_array_equal(view.val.x, evaluation_view(data.val.x, 24))
    np.testing.assert_array_equal(view.test.x, evaluation_view(data.test.x, 24))
    np.testing.assert_array_equal(augment(np.arange(3), 1), Augment(data.train.x, 24, 5)(
        np.arange(3), 1))


def test_a_crop_larger_than_the_images_is_refused():
    check_crop(32, (3, 32, 32))
    check_crop(None, (3, 32, 32))
    with pytest.raises(ValueError, match=r"--crop 33 is larger than the 32x32 images; give at "
                                         r"most 32"):
        check_crop(33, (3, 32, 32))
    with pytest.raises(ValueError, match=r"larger than the 28x30 images; give at most 28"):
        check_crop(29, (1, 28, 30))
    with pytest.raises(ValueError, match="--crop 40"):
        crop_view(dataset(), 40)


# -- the training loop ---------------------------------------------------------------------------
class Recorder:
    """A model that trains on nothing: it keeps each batch it is given (host copies)."""

    def __init__(self, input_shape):
        from minicnn.backend import get_backend
        from minicnn.parallel.shards import SingleProcess
        self.backend, self.dtype, self.comm = get_backend("numpy"), np.dtype("float32"), \
            SingleProcess()
        self.input_shape, self.steps_taken, self.batches = input_shape, 0, []

    def train_step(self, x, y, optimizer):
        assert tuple(x.shape[1:]) == self.input_shape
        self.batches.append((self.steps_taken, np.array(x), np.array(y)))
        self.steps_taken += 1
        return 1.0, 0

    def evaluate(self, x, y):
        return 1.0, 0.0


def test_fit_trains_on_the_augmented_batches_with_their_labels():
    from minicnn.nn.fit import fit
    from minicnn.nn.optim import SGD
    data = dataset(n=23, shape=(3, 10, 10))
    augment = Augment(data.train.x, 8, seed=4)
    model = Recorder((3, 8, 8))
    seen = []
    fit(model, SGD(0.1), data, 2, 5, seed=0, augment=augment,
        on_step=lambda step, loss, acc, lr, xb: seen.append((step, np.array(xb))))
    assert len(model.batches) == 2 * 5                     # 23 images, batches of 5
    epoch_of = [1] * 5 + [2] * 5
    for (step, xb, yb), epoch, (hook_step, hook_xb) in zip(model.batches, epoch_of, seen):
        assert hook_step == step + 1
        np.testing.assert_array_equal(hook_xb, xb)        # the hook sees the trained batch
    for epoch in (1, 2):
        every = augment(np.arange(23), epoch)
        used = []
        for (_, xb, yb), e in zip(model.batches, epoch_of):
            if e != epoch:
                continue
            for image, label in zip(xb, yb):
                match = [i for i in range(23) if np.array_equal(every[i], image)]
                assert len(match) == 1                     # this epoch's distortion of one image
                assert label == data.train.y[match[0]]     # and that image's label
                used.append(match[0])
        assert sorted(used) == list(range(23))             # every image once an epoch


def test_the_next_batch_is_made_while_this_one_trains():
    """A training step waits (up to 10 s) until the augmentation of the next batch has begun:
    without the background thread working one step ahead, it never would."""
    import threading
    from minicnn.nn.fit import fit
    from minicnn.nn.optim import SGD
    data = dataset(n=20, shape=(3, 10, 10))
    augment = Augment(data.train.x, 8, seed=4)
    calls, called = [], threading.Condition()

    def recording_augment(indices, epoch):
        with called:
            calls.append(epoch)
            called.notify_all()
        return augment(indices, epoch)

    class Waiting(Recorder):
        def train_step(self, x, y, optimizer):
            step_in_epoch = self.steps_taken % 4             # 20 images, batches of 5
            if step_in_epoch < 3:
                with called:
                    assert called.wait_for(lambda: len(calls) > self.steps_taken + 1, 10), \
                        f"step {self.steps_taken}: the next batch was not begun"
            return super().train_step(x, y, optimizer)
    model = Waiting((3, 8, 8))
    fit(model, SGD(0.1), data, 2, 5, seed=0, augment=recording_augment)
    assert calls == [1] * 4 + [2] * 4 and len(model.batches) == 8


def test_fit_with_augment_trains_a_real_model():
    """The training images stay full size on the host; the model sees the crops and learns
    (a colour per class survives cropping, flipping and standardisation)."""
    import minicnn
    from minicnn.nn.fit import fit
    from minicnn.nn.spec import parse_arch
    from minicnn.nn.optim import SGD
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    x = (0.2 + 0.6 * np.eye(3)[y][:, :, None, None] + 0.05 * rng.standard_normal(
        (600, 3, 12, 12))).astype(np.float32)
    data = Dataset(Split(x[:400], y[:400]), Split(x[400:], y[400:]), Split(x[:1], y[:1]))
    view, augment = crop_view(data, 8, augment=True, seed=1)
    model = minicnn.Sequential(parse_arch("conv:4:3:same,relu,pool,dense:3"),
                               (3, 8, 8), backend="numpy")
    history = fit(model, SGD(0.01), view, 3, 20, augment=augment)
    assert history[-1].val_accuracy > 0.9, history
