"""`nlpool validate` on the host: an export folder, an int8 .tflite or a schedule.json run in
TFLM over a split, a classifier's or a detector's figures, written as a JSON report."""

import json
import os

from nlpool_keras.data.evaluation import evaluation_images


def write_report(report, path, log=print):
    """`report` as JSON at `path` (nothing when `path` is None)."""
    if path:
        with open(path, "w") as f:
            json.dump(report, f, indent=1)
        log(f"report: {path}")


def _float_model(spec):
    if not spec:
        return None
    from nlpool_keras.loading import load_model

    return load_model(spec)


def validate_export(
    path, data, split=None, per_class=None, float_model=None, per_op=None, data_dir=None, output=None, command=None,
    log=print, interpreter=None,
):  # fmt: skip
    """Validates `path` (an `nlpool export` folder, its .tflite, or its schedule/schedule.json)
    on `split` of `data` (default: the evaluation split); `float_model` (a model spec) to
    compare with; `per_op` images for the op-by-op TFLM-vs-TFLite comparison; `interpreter`
    runs a .tflite with the project's custom ops (`tflm.validate.run_int8`). Returns the report."""
    if os.path.isdir(path):  # an export folder: its .tflite, named in export.json
        summary = os.path.join(path, "export.json")
        if not os.path.isfile(summary):
            raise FileNotFoundError(f"no export.json in {path}: give the --output folder of nlpool export")
        with open(summary) as f:
            path = os.path.join(path, os.path.basename(json.load(f)["tflite"]))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no file or folder at tflite={path!r} (an export folder, .tflite or schedule.json)")
    common = {"data": data, "split": split, "per_class": per_class, "data_dir": data_dir}
    if path.endswith(".json"):
        if float_model or per_op:
            raise ValueError("--float-model and --per-op compare a .tflite; validate its whole-graph .tflite for them")
        report = validate_schedule_file(path, log=log, **common)
    else:
        report = validate_tflite_file(
            path, float_model=float_model, per_op=per_op, log=log, interpreter=interpreter, **common
        )
    report["command"] = command
    write_report(report, output, log)
    return report


def validate_tflite_file(
    path, data, split=None, per_class=None, float_model=None, per_op=None, data_dir=None, log=print, interpreter=None
):
    """A classifier's or a detector's .tflite in TFLM on `split` of `data` (see `validate_export`)."""
    from nlpool_keras.export.preflight import read_graph
    from nlpool_keras.tflm.interpreter import project_ops
    from nlpool_keras.tflm.validate import format_validation, input_details, validate
    from nlpool_keras.tflm.validate_detection import format_detector_validation, is_detector, validate_detector

    with open(path, "rb") as f:
        flatbuffer = f.read()
    read_graph(flatbuffer)  # a clear error for a file that is not a readable flatbuffer
    size = int(input_details(flatbuffer)["shape"][1])
    names = None
    names_path = os.path.splitext(path)[0] + ".names.json"
    if os.path.isfile(names_path):  # `nlpool export` strips the names into this sidecar
        with open(names_path) as f:
            names = {int(index): name for index, name in json.load(f).items()}
    if is_detector(flatbuffer):
        if per_op:
            raise ValueError("--per-op compares classifiers' outputs; run it on a classifier's export")
        images, truth = evaluation_images(data, size, per_class, split, data_dir)
        report = validate_detector(flatbuffer, images, truth, _float_model(float_model))
        report.update(tflite=path, data=data, images_used=truth.names)
        log(format_detector_validation(report))
        return report
    from nlpool_keras.data import evaluation_split

    split = evaluation_split(data, split, data_dir)
    images, labels = evaluation_images(data, size, per_class, split, data_dir)
    if per_op and project_ops(flatbuffer):
        raise ValueError("--per-op compares TFLM with the TFLite interpreter, which cannot run custom ops")
    report = validate(
        flatbuffer, images, labels, _float_model(float_model), progress=True, names=names, interpreter=interpreter
    )
    report.update(tflite=path, data=data, split=split)
    log(format_validation(report))
    if per_op:
        from nlpool_keras.tflm.diff import format_per_op, per_op_diff
        from nlpool_keras.tflm.interpreter import quantize

        inputs = quantize(images[: min(per_op, len(images))], input_details(flatbuffer))
        report["per_op"] = per_op_diff(flatbuffer, inputs, names=names)
        log(format_per_op(report["per_op"]))
    return report


def validate_schedule_file(path, data, split=None, per_class=None, data_dir=None, log=print):
    """An export's schedule.json in TFLM against its whole graph on `split` of `data`."""
    from nlpool_keras.tflm.deploy import load_schedule
    from nlpool_keras.tflm.validate_detection import detection_score, is_detector
    from nlpool_keras.tflm.validate_schedule import format_schedule_validation, validate_schedule

    program, manifest = load_schedule(path)
    if not manifest.get("whole_graph"):
        raise ValueError(f"{path} names no whole-graph .tflite to compare with ('whole_graph')")
    with open(os.path.join(os.path.dirname(os.path.abspath(path)), manifest["whole_graph"]), "rb") as f:
        whole = f.read()
    size = manifest["input"]["shape"][1]
    if is_detector(whole):
        images, truth = evaluation_images(data, size, per_class, split, data_dir)
        report = validate_schedule(program, whole, images, score=detection_score(whole, truth))
        report.update(images_used=truth.names)
    else:
        from nlpool_keras.data import evaluation_split

        split = evaluation_split(data, split, data_dir)
        images, labels = evaluation_images(data, size, per_class, split, data_dir)
        report = validate_schedule(program, whole, images, labels)
        report.update(split=split)
    report.update(schedule=path, data=data)
    log(format_schedule_validation(report))
    return report
