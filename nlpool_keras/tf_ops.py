"""The subset of `keras.ops` the layers use, implemented on TensorFlow for tf_keras.

Each function has the signature and semantics of its `keras.ops` namesake, so
one layer source runs on Keras 3 (`keras.ops`) and on tf_keras (this module).
"""

import tensorflow as tf

broadcast_to = tf.broadcast_to
cast = tf.cast
exp = tf.exp
matmul = tf.matmul
maximum = tf.maximum
relu = tf.nn.relu
rsqrt = tf.math.rsqrt
reshape = tf.reshape
shape = tf.shape
sigmoid = tf.sigmoid
square = tf.square
zeros_like = tf.zeros_like


def pad(x, pad_width, mode="constant", constant_values=None):
    return tf.pad(x, pad_width, mode=mode.upper(), constant_values=constant_values or 0)


def conv(inputs, kernel, strides=1, padding="valid"):
    return tf.nn.conv2d(inputs, kernel, strides, padding.upper())


def concatenate(xs, axis=0):
    return tf.concat(xs, axis=axis)


def max(x, axis=None, keepdims=False):  # noqa: A001 - mirrors keras.ops.max
    return tf.reduce_max(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return tf.reduce_mean(x, axis=axis, keepdims=keepdims)


def sum(x, axis=None, keepdims=False):  # noqa: A001 - mirrors keras.ops.sum
    return tf.reduce_sum(x, axis=axis, keepdims=keepdims)


def softmax(x, axis=-1):
    return tf.nn.softmax(x, axis=axis)


def stack(xs, axis=0):
    return tf.stack(xs, axis=axis)


def log_softmax(x, axis=-1):
    return tf.nn.log_softmax(x, axis=axis)


def take(x, indices, axis=None):
    return tf.gather(x, indices, axis=axis)


def transpose(x, axes=None):
    return tf.transpose(x, perm=axes)


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    return tf.nn.avg_pool2d(inputs, pool_size, strides or pool_size, padding.upper(), data_format="NHWC")
