"""Arguments shared by the zoo builders, checked as keras.applications checks them."""

from nlpool_keras import frameworks

CLASSIFIER_POOLINGS = (None, "avg", "max")


def model_input(fw, input_shape, input_tensor, default_size):
    """(model inputs, tensor to build on, (H, W)); H and W must be static."""
    if input_shape is None:
        input_shape = (default_size, default_size, 3)
    input_shape = tuple(input_shape)
    if (
        len(input_shape) != 3
        or input_shape[-1] != 3
        or any(not isinstance(d, int) or isinstance(d, bool) or d < 8 for d in input_shape[:2])
    ):
        raise ValueError(
            f"input_shape must be (height, width, 3) with static sizes >= 8, received: input_shape={input_shape}"
        )
    if input_tensor is None:
        inputs = fw.keras.Input(input_shape, name="image")
        return inputs, inputs, input_shape[:2]
    if tuple(input_tensor.shape[1:]) != input_shape:
        raise ValueError(
            f"input_tensor has shape {tuple(input_tensor.shape)}, which does not match input_shape={input_shape}"
        )
    return fw.keras.utils.get_source_inputs(input_tensor), input_tensor, input_shape[:2]


def preprocess(fw, x, include_preprocessing):
    """Pixels in [0, 255] -> [-1, 1] inside the model, or `x` unchanged (the caller feeds
    [-1, 1]; converted with `export.to_int8_tflite` on [-1, 1] images, the rescaling lives in
    the input quantization and the graph holds no second full-resolution tensor. `nlpool
    export` does that by default for a model built with the rescaling)."""
    if not isinstance(include_preprocessing, bool):
        raise ValueError(
            f"include_preprocessing must be a bool, received: include_preprocessing={include_preprocessing!r}"
        )
    if not include_preprocessing:
        return x
    return fw.keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(x)


def check_head(include_top, pooling, classes, classifier_activation):
    if not isinstance(include_top, bool):
        raise ValueError(f"include_top must be a bool, received: include_top={include_top!r}")
    if pooling not in CLASSIFIER_POOLINGS:
        raise ValueError(f"pooling must be one of {CLASSIFIER_POOLINGS}, received: pooling={pooling!r}")
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise ValueError(f"classes must be a positive int, received: classes={classes!r}")
    if (
        classifier_activation is not None
        and not isinstance(classifier_activation, str)
        and not callable(classifier_activation)
    ):
        raise ValueError(
            f"classifier_activation must be a name, a callable or None, received: {classifier_activation!r}"
        )


def head(fw, x, include_top, pooling, classes, classifier_activation):
    layers = fw.keras.layers
    if include_top:
        x = layers.GlobalAveragePooling2D(name="global_pool")(x)
        return layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="global_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="global_pool")(x)
    return x


def framework_module(framework):
    return frameworks.get(frameworks.check_framework(framework))


def check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"alpha must be a positive number, received: alpha={alpha!r}")
    return float(alpha)
