"""The end-to-end demo: train a small self-attentive CNN, export int8, validate in TFLM."""

import json
import os
import time

import numpy as np

from nlpool_keras.data import DEFAULT_ARCHIVE, load_images


def small_sa_cnn(image_size, classes):
    """A tiny CNN that down-samples with SelfAttentivePooling2D twice (raw pixels in)."""
    import keras

    from nlpool_keras.layers import SelfAttentivePooling2D

    return keras.Sequential(
        [
            keras.Input((image_size, image_size, 3)),
            keras.layers.Rescaling(1 / 127.5, offset=-1.0),
            keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            SelfAttentivePooling2D(2, patch_size=3, num_heads=2),
            keras.layers.Conv2D(32, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            SelfAttentivePooling2D(2, patch_size=3, num_heads=2),
            keras.layers.Conv2D(64, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(classes),
        ],
        name="small_sa_cnn",
    )


def run_demo(
    source=DEFAULT_ARCHIVE,
    image_size=48,
    per_class=200,
    val_per_class=30,
    epochs=12,
    seed=0,
    output_dir="runs/demo",
    data_dir=None,
    command=None,
    log=print,
):
    """Trains, exports and validates; writes report.json and model_int8.tflite; returns the report."""
    import keras

    from nlpool_keras.export import to_int8_tflite
    from nlpool_keras.tflm import TFLMModel, tflite_reference_outputs
    from nlpool_keras.tflm.interpreter import quantize

    keras.utils.set_random_seed(seed)
    started = time.time()
    log(f"reading {source} ({per_class}/class train, {val_per_class}/class val, {image_size} px)")
    x_train, y_train, classes = load_images(source, "train", per_class, image_size, data_dir)
    x_val, y_val, _ = load_images(source, "val", val_per_class, image_size, data_dir)
    x_train, x_val = x_train.astype("float32"), x_val.astype("float32")

    model = small_sa_cnn(image_size, len(classes))
    model.compile(
        keras.optimizers.Adam(2e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    log(f"training {model.name} ({model.count_params()} params) for {epochs} epochs on {len(x_train)} images")
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, shuffle=True, verbose=2)
    float_logits = model.predict(x_val, verbose=0)

    log("converting to full-int8 TFLite (calibration: 64 training images)")
    flatbuffer = to_int8_tflite(model, x_train[np.random.default_rng(seed).permutation(len(x_train))[:64]])
    os.makedirs(output_dir, exist_ok=True)
    tflite_path = os.path.join(output_dir, "model_int8.tflite")
    with open(tflite_path, "wb") as f:
        f.write(flatbuffer)

    log(f"running {len(x_val)} val images in the TFLM interpreter")
    micro = TFLMModel(flatbuffer)
    quantized = quantize(x_val, micro.input_details)
    tflm = micro.invoke_quantized(quantized)
    tflite = tflite_reference_outputs(flatbuffer, quantized)
    report = {
        "command": command,
        "source": source,
        "seed": seed,
        "image_size": image_size,
        "train_images": int(len(x_train)),
        "val_images": int(len(x_val)),
        "epochs": epochs,
        "params": int(model.count_params()),
        "top1_float": float(np.mean(float_logits.argmax(1) == y_val)),
        "top1_tflm_int8": float(np.mean(tflm.argmax(1) == y_val)),
        "argmax_agreement_tflm_vs_float": float(np.mean(tflm.argmax(1) == float_logits.argmax(1))),
        "max_lsb_diff_tflm_vs_tflite": int(np.abs(tflm.astype(int) - tflite.astype(int)).max()),
        "tflm_arena_bytes": int(micro.arena_bytes),
        "flash_bytes": len(flatbuffer),
        "seconds": round(time.time() - started, 1),
        "tflite_path": tflite_path,
    }
    with open(os.path.join(output_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    return report


def format_report(report):
    return "\n".join(
        [
            "",
            f"  float top-1 ({report['val_images']} val images)    {report['top1_float']:.3f}",
            f"  int8 top-1 in TFLM                 {report['top1_tflm_int8']:.3f}",
            f"  argmax agreement TFLM vs float     {report['argmax_agreement_tflm_vs_float']:.3f}",
            f"  max |TFLM - TFLite| (LSB)          {report['max_lsb_diff_tflm_vs_tflite']}",
            f"  TFLM arena (measured)              {report['tflm_arena_bytes']:,} bytes",
            f"  flash (flatbuffer)                 {report['flash_bytes']:,} bytes",
            f"  model                              {report['tflite_path']}",
            f"  time                               {report['seconds']} s",
        ]
    )
