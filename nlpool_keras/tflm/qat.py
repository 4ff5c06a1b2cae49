"""Quantization-aware training measured in TFLM: float, post-training int8 and QAT int8 top-1.

report = run_qat(model, (train_images, train_labels), (val_images, val_labels), "runs/qat")
"""

import json
import os

from nlpool_keras.data.pipeline import center_crops
from nlpool_keras.optimize.finetune import finetune
from nlpool_keras.optimize.qat import calibrate_ranges, quantize_aware, save_qat
from nlpool_keras.tflm.deploy import export_for_tflm
from nlpool_keras.tflm.validate import validate


def run_qat(
    model, train, val, output_dir, epochs=1, batch_size=32, learning_rate=1e-4, seed=0, command=None, log=print
):
    """Measures float, post-training-quantized and QAT int8 top-1 on `val` = (images, labels).

    `train` = (uint8 images, labels) for calibration and fine-tuning. Writes
    ptq/ and qat/ export folders, the QAT model (`save_qat`: `nlpool_keras.loading.load_model`
    reads `output_dir` back) and qat_report.json into `output_dir`; returns the report.
    """
    import keras

    if not isinstance(model, keras.Model):
        raise ValueError(
            f"quantization-aware training starts from a Keras 3 float model, received a {type(model).__module__} "
            f"{type(model).__name__} (a QAT model is already quantization-aware: export it)"
        )
    size = model.inputs[0].shape[1]
    calibration = center_crops(train[0][:: max(1, len(train[0]) // 200)], size)
    report = {"command": command, "seed": seed, "qat_epochs": epochs, "learning_rate": learning_rate}
    log("post-training quantization")
    ptq = export_for_tflm(model, calibration, os.path.join(output_dir, "ptq"))
    with open(ptq["tflite"], "rb") as f:
        report["ptq"] = validate(f.read(), val[0], val[1], model)
    log(f"quantization-aware training: {epochs} epoch(s) on {len(train[0])} images")
    qat_model = quantize_aware(model)
    calibrate_ranges(qat_model, [calibration[i : i + 25] for i in range(0, len(calibration), 25)])
    finetune(qat_model, train[0], train[1], epochs, batch_size, learning_rate, seed, log=log)
    save_qat(qat_model, model, output_dir)
    qat = export_for_tflm(qat_model, calibration, os.path.join(output_dir, "qat"), name=f"{model.name}_qat")
    with open(qat["tflite"], "rb") as f:
        report["qat"] = validate(f.read(), val[0], val[1], qat_model)
    report["top1_float"] = report["ptq"]["top1_float"]
    with open(os.path.join(output_dir, "qat_report.json"), "w") as f:
        json.dump(report, f, indent=2)
    return report
