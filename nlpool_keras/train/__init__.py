"""Training: recipes, exact-resume checkpoints, tf.distribute strategies."""

from nlpool_keras.train.trainer import TrainConfig, train

__all__ = ["TrainConfig", "train"]
