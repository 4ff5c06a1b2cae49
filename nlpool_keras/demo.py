"""The end-to-end demo: a zoo preset -> post-training int8 and QAT -> TFLM validation -> report."""

import json
import os
import time

from nlpool_keras.data import DEFAULT_ARCHIVE

DEFAULT_PRESET = "mbv2_sa_035_96_4222121_imagenette"


def run_demo(
    preset=DEFAULT_PRESET,
    source=DEFAULT_ARCHIVE,
    train_per_class=100,
    val_per_class=30,
    qat_epochs=1,
    seed=0,
    output_dir="runs/demo",
    data_dir=None,
    command=None,
    log=print,
):
    """Loads `preset`, exports it to int8 after post-training quantization and after
    quantization-aware fine-tuning on `train_per_class` training images per class,
    runs both in TFLM on `val_per_class` val images per class; writes report.json."""
    from nlpool_keras.data import evaluation_split
    from nlpool_keras.data.pipeline import cached_split, center_crops
    from nlpool_keras.models import build_mbv2_sa
    from nlpool_keras.tflm.qat import run_qat

    started = time.time()
    model = build_mbv2_sa(weights=preset, classifier_activation=None)
    size = model.inputs[0].shape[1]
    log(f"preset {preset}: {model.count_params():,} params, {size} px")
    train_images, train_labels, _ = cached_split(source, "train", train_per_class, None, data_dir)
    val_split = evaluation_split(source, None, data_dir)
    val_images, val_labels, _ = cached_split(source, val_split, val_per_class, None, data_dir)
    val = (center_crops(val_images, size), val_labels)
    report = run_qat(
        model, (train_images, train_labels), val, output_dir, qat_epochs, seed=seed, command=command, log=log
    )
    report.update(
        preset=preset, source=source, train_images=int(len(train_images)), seconds=round(time.time() - started)
    )
    with open(os.path.join(output_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    return report


def format_report(report):
    ptq, qat = report["ptq"], report["qat"]
    rows = [
        (f"float top-1 ({ptq['images']} held-out images)", f"{report['top1_float']:.3f}"),
        ("int8 top-1 in TFLM, post-training quantization", f"{ptq['top1_tflm']:.3f}"),
        (f"int8 top-1 in TFLM, after QAT ({report['qat_epochs']} epoch)", f"{qat['top1_tflm']:.3f}"),
        ("arg-max agreement TFLM vs float (PTQ)", f"{ptq['argmax_agreement_tflm_vs_float']:.3f}"),
        (
            "max |TFLM - TFLite| (PTQ, QAT)",
            f"{ptq['max_lsb_diff_tflm_vs_tflite']}, {qat['max_lsb_diff_tflm_vs_tflite']} LSB",
        ),
        ("TFLM arena (measured)", f"{ptq['tflm_arena_bytes']:,} bytes"),
        ("flash (flatbuffer)", f"{ptq['flash_bytes']:,} bytes"),
        ("time", f"{report['seconds']} s"),
    ]
    return "\n" + "\n".join(f"  {label:<52}{value}" for label, value in rows)
