"""Quantization-aware training measured in TFLM: float, post-training int8 and QAT int8 top-1
of a classifier, or the head's metric of a detector (centroid F1, box AP@0.5).

report = run_qat(model, (train_images, train_labels), (val_images, val_labels), "runs/qat")
report = run_qat(detector, train_set, val_set, "runs/qat")   # DetectionSets
"""

import json
import os

from nlpool_keras.export.preprocessing import pin_pixel_range
from nlpool_keras.optimize.finetune import calibration_images, finetune, is_detection_set, training_images
from nlpool_keras.optimize.qat import calibrate_ranges, quantize_aware, save_qat
from nlpool_keras.tflm.deploy import export_for_tflm
from nlpool_keras.tflm.validate import validate
from nlpool_keras.tflm.validate_detection import validate_detector


def run_qat(
    model, train, val, output_dir, epochs=1, batch_size=32, learning_rate=1e-4, seed=0, command=None, log=print
):
    """Measures float, post-training-quantized and QAT int8 top-1 on `val` = (images, labels),
    or for a detector its metric on `val`, a `DetectionSet` of evaluation-size images
    (`report["metric"]`: "top1", "f1" or "ap50"; `report[<metric>_float]`, `report["ptq"]`,
    `report["qat"]` with `<metric>_tflm`).

    `train` = (uint8 images, labels), or a `DetectionSet`, for calibration and fine-tuning. Writes
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
    # pinned: the QAT model's input quantizer learns its range from these first, and both exports
    # then take pixels as int8 p - 128 (export.preprocessing). Both keep the rescaling in the graph
    # (fold_rescale=False): the QAT model trains its quantizers on the rescale layer's output.
    calibration = pin_pixel_range(calibration_images(train, size))
    detector = is_detection_set(train)

    def measure(tflite, keras_model):
        with open(tflite, "rb") as f:
            if detector:
                return validate_detector(f.read(), val.images.astype("float32"), val, keras_model)
            return validate(f.read(), val[0], val[1], keras_model)

    report = {"command": command, "seed": seed, "qat_epochs": epochs, "learning_rate": learning_rate}
    log("post-training quantization")
    report["ptq"] = measure(
        export_for_tflm(model, calibration, os.path.join(output_dir, "ptq"), fold_rescale=False)["tflite"], model
    )
    log(f"quantization-aware training: {epochs} epoch(s) on {len(training_images(train))} images")
    qat_model = quantize_aware(model)
    calibrate_ranges(qat_model, [calibration[i : i + 25] for i in range(0, len(calibration), 25)])
    finetune(qat_model, train, epochs, batch_size, learning_rate, seed, log=log)
    save_qat(qat_model, model, output_dir)
    qat = export_for_tflm(
        qat_model, calibration, os.path.join(output_dir, "qat"), name=f"{model.name}_qat", fold_rescale=False
    )
    report["qat"] = measure(qat["tflite"], qat_model)
    metric = report["ptq"]["metric"] if detector else "top1"
    report.update({"metric": metric, f"{metric}_float": report["ptq"][f"{metric}_float"]})
    with open(os.path.join(output_dir, "qat_report.json"), "w") as f:
        json.dump(report, f, indent=2)
    return report
