"""Optimisers and learning-rate schedules."""

RECIPES = ("adamw", "paper_sgd")


def make_optimizer(recipe, steps_per_epoch, epochs, batch_size, learning_rate=None):
    """ "adamw": AdamW, 1 warm-up epoch then cosine decay, lr 2e-3 * batch/64 (the default,
    for few epochs on a CPU); "paper_sgd": the paper's SGD, momentum 0.9, lr 0.01 divided
    by 5 at 60 %, 80 % and 90 % of training (180/240/270 of its 300 epochs)."""
    import keras

    total = steps_per_epoch * epochs
    if recipe == "adamw":
        peak = learning_rate or 2e-3 * batch_size / 64
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, max(1, total - steps_per_epoch), warmup_target=peak, warmup_steps=steps_per_epoch
        )
        return keras.optimizers.AdamW(schedule, weight_decay=0.01)
    if recipe == "paper_sgd":
        base = learning_rate or 0.01
        bounds = [int(total * f) for f in (0.6, 0.8, 0.9)]
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay(bounds, [base, base / 5, base / 25, base / 125])
        return keras.optimizers.SGD(schedule, momentum=0.9)
    raise ValueError(f"recipe must be one of {RECIPES}, received: recipe={recipe!r}")
