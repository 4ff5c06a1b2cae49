"""The `nlpool` command."""

import argparse
import os
import sys

from nlpool_keras.quiet import quiet_native_logs, silence_python_logs

STORE_INPUTS_HELP = (
    "with --schedule CUT:TILES: keep one map per resolution of the stage whole in SRAM (a self-attentive "
    "layer's input, else a block's output; at the cut's own resolution one that a window separates from "
    "the cut) and start later tiles from it instead of the image (fewer MACs, one map held per resolution)"
)
MODEL_HELP = "a preset, a .keras file, an nlpool train/prune/qat output folder, or a weights file beside config.json"


def _demo(args):
    from nlpool_keras.demo import format_report, run_demo

    if args.quick:
        args.train_per_class, args.val_per_class = 20, 5
    report = run_demo(
        args.preset,
        args.data,
        args.train_per_class,
        args.val_per_class,
        args.qat_epochs,
        args.seed,
        args.output,
        args.data_dir,
        command=args.command_line,
    )
    print(format_report(report))
    print(f"\nreport: {os.path.join(args.output, 'report.json')}; firmware files in {args.output}/ptq and /qat")


def _pool_kwargs(text):
    """--pool-kwargs: a named configuration ("paper", ...) or a JSON object; None when absent."""
    import json

    from nlpool_keras.models.downsampling import PAPER_POOL_KWARGS

    if not text or text in PAPER_POOL_KWARGS:
        return text or None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(
            f"--pool-kwargs must be one of {sorted(PAPER_POOL_KWARGS)} or a JSON object, received: {text!r}"
        ) from None


def _train(args):
    import dataclasses

    from nlpool_keras.train import TrainConfig, train

    # every TrainConfig field has a same-named option
    options = {field.name: getattr(args, field.name) for field in dataclasses.fields(TrainConfig)}
    options["pool_kwargs"] = _pool_kwargs(args.pool_kwargs)
    evaluation = train(TrainConfig(**options), resume=args.resume)
    print(f"{evaluation['metric']} {evaluation[evaluation['metric']]:.4f}; results in {args.output}")


def at_least_one(text):
    """argparse type of a count that must be at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, received: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, received: {value}")
    return value


def load_model(spec):
    from nlpool_keras.loading import load_model

    return load_model(spec)


def evaluation_images(args, size, per_class, split):
    """`data.evaluation.evaluation_images` of --data."""
    from nlpool_keras.data.evaluation import evaluation_images as images_of

    return images_of(args.data, size, per_class, split, args.data_dir)


def _export(args):
    from nlpool_keras.export.int16_ops import WIDENED_OPS
    from nlpool_keras.firmware.host_runtime import HostInterpreter
    from nlpool_keras.tflm.deploy import export_for_tflm

    model = load_model(args.model)
    schedule = _export_schedule(args) if args.schedule else None
    images, _ = evaluation_images(args, model.inputs[0].shape[1], args.calibration_per_class, args.split)
    summary = export_for_tflm(
        model,
        images,
        args.output,
        args.name,
        compress=args.compress,
        fold_rescale=not args.rescale_in_graph,
        schedule=schedule,
        kernels=args.kernels,
        int16_ops=WIDENED_OPS if args.int16_ops else (),
        fuse_pools=args.fuse_pools,
        interpreter=HostInterpreter,
    )
    flash = summary["flash"]
    print(
        f"{summary['tflite']}: TFLM flash {flash['flash_bytes']:,} bytes "
        f"({flash['flash_per_constant_byte']:.3f}x its {flash['constant_bytes']:,} bytes of constants), "
        f"TFLM arena {summary['tflm_arena_bytes']:,}"
    )
    print("ops: " + ", ".join(summary["ops"]))
    print("firmware: " + ", ".join(summary["firmware"]))
    if schedule is not None:
        scheduled = summary["schedule"]
        print(
            f"patch schedule: up to {scheduled['layer']} in {scheduled['tiles']}x{scheduled['tiles']} tiles; peak SRAM "
            f"{scheduled['peak_sram_bytes']:,} bytes (measured in TFLM, image streamed), phase models "
            f"{scheduled['flash_bytes']:,} bytes of flash; next: nlpool validate {scheduled['manifest']}"
        )


def _export_schedule(args):
    """What `nlpool export --schedule` passes to `export_for_tflm(schedule=...)`: the setting of
    CUT:TILES, or for "auto" a function that measures the candidates on the converted int8 model."""
    from nlpool_keras.profile.schedule_setting import measured_schedule_setting, parse_schedule

    cut, tiles = parse_schedule(args.schedule)
    if cut != "auto":
        return {"cut": cut, "tiles": tiles, **_schedule_options(args)}

    def choose(flatbuffer, model, images):
        from nlpool_keras.tflm.interpreter import quantize
        from nlpool_keras.tflm.validate import input_details

        image = quantize(images[:1], input_details(flatbuffer))  # images already in the model's range
        setting, _ = measured_schedule_setting(flatbuffer, model, image, "auto", {}, args.max_mac_overhead)
        if setting is None:
            raise ValueError(f"schedule=auto: no schedule within max_mac_overhead={args.max_mac_overhead}")
        return setting

    return choose


def _tree(args):
    from nlpool_keras.firmware.tree import DEFAULT_THIRD_PARTY, prepare_tree

    return prepare_tree(args.tflm, third_party=args.third_party or DEFAULT_THIRD_PARTY)


def _firmware(args):
    from nlpool_keras.firmware.build import build_firmware, tflm_library

    if args.library_only:
        from nlpool_keras.firmware.host_runtime import host_library

        library = tflm_library(_tree(args), args.target, args.kernels, log=print)
        print(f"{library['path']}: TFLM for {args.target} with {args.kernels} kernels")
        print(f"{host_library(_tree(args), log=print)}: TFLM for this host with the project's custom ops")
        return
    if args.export_dir is None:
        raise ValueError("nlpool firmware needs EXPORT_DIR (the --output folder of nlpool export) or --library-only")
    figures = build_firmware(args.export_dir, args.target, args.kernels, _tree(args), log=print)
    print(
        f"{figures['elf']}: {args.target} ({figures['machine']}), {args.kernels} kernels; "
        f"flash {figures['flash_bytes']:,} B "
        f"(model {figures['model_bytes']:,}, code {figures['code_bytes']:,}), static SRAM "
        f"{figures['static_sram_bytes']:,} B (arena {figures['arena_bytes']:,}); "
        f"next: nlpool validate {args.export_dir} --target {args.target} --kernels {args.kernels}"
    )


def _validate(args):
    options = {"split": args.split, "per_class": args.per_class, "per_op": args.per_op, "data_dir": args.data_dir}
    options.update(output=args.output, command=args.command_line)
    if args.target:
        from nlpool_keras.firmware.validate_export import validate_export_on_target

        options.update(keep_pool_bytes=args.keep_pool_bytes, functions=args.functions, fit_block=args.fit_block)
        return validate_export_on_target(args.tflite, args.data, args.target, args.kernels, _tree(args), **options)
    if args.keep_pool_bytes is not None:
        raise ValueError(f"--keep-pool-bytes {args.keep_pool_bytes} runs a schedule's firmware: add --target")
    if args.fit_block:
        raise ValueError("--fit-block sizes a schedule's firmware block on its board: add --target")
    if args.functions is not None:
        raise ValueError(f"--functions {args.functions} traces the firmware on its emulated board: add --target")
    from nlpool_keras.firmware.host_runtime import HostInterpreter
    from nlpool_keras.tflm.validate_export import validate_export

    validate_export(args.tflite, args.data, float_model=args.float_model, interpreter=HostInterpreter, **options)


def _qat(args):
    from nlpool_keras.data.evaluation import training_set
    from nlpool_keras.tflm.qat import run_qat

    model = load_model(args.model)
    size = model.inputs[0].shape[1]
    train = training_set(args.data, size, args.per_class, args.data_dir)
    images, truth = evaluation_images(args, size, args.val_per_class, args.split)
    report = run_qat(
        model,
        train,
        (images, truth) if isinstance(train, tuple) else truth,
        args.output,
        args.epochs,
        args.batch_size,
        args.learning_rate,
        args.seed,
        command=args.command_line,
    )
    metric = report["metric"]
    print(f"{metric} on {len(images)} held-out images: float {report[f'{metric}_float']:.4f}, ", end="")
    print(
        f"int8 PTQ (TFLM) {report['ptq'][f'{metric}_tflm']:.4f}, int8 QAT (TFLM) {report['qat'][f'{metric}_tflm']:.4f}"
    )
    print(
        f"report: {os.path.join(args.output, 'qat_report.json')}; the QAT model ({args.output}) goes to nlpool export"
    )


def _prune(args):
    from nlpool_keras.optimize.compress import prune_command

    amount = {"magnitude": args.sparsity, "channels": args.fraction, "cluster": args.clusters}[args.method]
    prune_command(
        args.model, args.data, args.output, args.method, amount, args.criterion, args.epochs, args.batch_size,
        args.learning_rate, args.seed, args.per_class, args.val_per_class, args.val_split, args.data_dir,
        command=args.command_line,
    )  # fmt: skip


def _schedule_options(args):
    """The --suffix, --query-chunks and --store-inputs of an explicit CUT:TILES schedule."""
    return {"suffix": args.suffix, "query_chunks": args.query_chunks, "store_inputs": args.store_inputs}


def _profile(args):
    from nlpool_keras.profile.command import profile_command, profile_schedule

    common = {"data": args.data, "split": args.split, "val_split": args.val_split, "data_dir": args.data_dir}
    if args.schedule:
        return profile_schedule(
            args.model, args.output, args.schedule, _schedule_options(args), args.max_mac_overhead, args.sram_budget,
            args.no_arena, top1_per_class=args.top1_per_class, command=args.command_line, **common,
        )  # fmt: skip
    zoo = {k: getattr(args, k) for k in ("image_size", "alpha", "downsample", "strides", "prepool")}
    profile_command(args.model, args.output, top1_per_class=args.top1_per_class, no_arena=args.no_arena,
                    zoo_options=zoo, **common)  # fmt: skip


def _add_demo(commands):
    from nlpool_keras.data import DEFAULT_ARCHIVE

    demo = commands.add_parser("demo", help="a preset -> int8 (post-training and QAT) -> TFLM validation -> report")
    demo.add_argument("--preset", default="mbv2_sa_035_96_4222121_imagenette")
    demo.add_argument("--data", default=DEFAULT_ARCHIVE, help="image archive, folder, or tensorflow-datasets name")
    demo.add_argument("--data-dir", default=None, help="tensorflow-datasets data_dir")
    demo.add_argument("--train-per-class", type=at_least_one, default=100, help="QAT fine-tuning images per class")
    demo.add_argument("--val-per-class", type=at_least_one, default=30)
    demo.add_argument("--qat-epochs", type=int, default=1)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quick", action="store_true", help="20 training and 5 val images per class (a smoke run)")
    demo.add_argument("--output", default="runs/demo")
    demo.set_defaults(run=_demo)


def _add_train(commands):
    from nlpool_keras.data import DEFAULT_ARCHIVE

    fit = commands.add_parser("train", help="train a zoo model; --resume continues an interrupted run exactly")
    fit.add_argument(
        "--task",
        default="classification",
        choices=["classification", "detection"],
        help="detection: a detector (--head) on a Pascal VOC or YOLO set",
    )
    fit.add_argument(
        "--head",
        default="centroids",
        choices=["centroids", "ssdlite"],
        help="detection: centroids (per-cell classes at stride 8, F1) or ssdlite (anchored boxes, COCO AP)",
    )
    fit.add_argument(
        "--backbone-weights", default=None, help="detection: a classification preset or weights file to start from"
    )
    fit.add_argument(
        "--object-weight", type=float, default=10.0, help="centroids: loss weight of object cells against background"
    )
    fit.add_argument(
        "--box-core",
        type=float,
        default=0.0,
        help="centroids: mark the cells in this central share of each box (0: its centre cell only; "
        "0.5 suits large objects)",
    )
    fit.add_argument(
        "--only-classes", default=None, help="detection: comma-separated class names to keep (e.g. of a YOLO set)"
    )
    fit.add_argument("--model", default="mbv2", choices=["mbv2", "resnet18"])
    fit.add_argument("--downsample", default="sa", help="sa, lip, gaussian, softpool, max, avg or conv")
    fit.add_argument("--strides", default=None, help='stage stride digits, e.g. "1222121" or "4222121"')
    fit.add_argument("--prepool", type=int, default=None)
    fit.add_argument("--alpha", type=float, default=0.35)
    fit.add_argument(
        "--pool-kwargs", default=None, help='JSON, e.g. \'{"num_heads": "paper"}\', or "paper" / "paper-headfix2"'
    )
    fit.add_argument(
        "--placement",
        default="after",
        choices=["after", "before"],
        help="pooling after or before a strided stage's first block",
    )
    fit.add_argument("--image-size", type=int, default=96)
    fit.add_argument("--data", default=DEFAULT_ARCHIVE, help="image archive, folder, or tensorflow-datasets name")
    fit.add_argument("--data-dir", default=None)
    fit.add_argument("--val-split", default=None, help="evaluation split (default: val, validation or test)")
    fit.add_argument("--per-class", type=at_least_one, default=None, help="limit training images per class")
    fit.add_argument("--val-per-class", type=at_least_one, default=None)
    fit.add_argument("--epochs", type=int, default=15)
    fit.add_argument("--batch-size", type=int, default=64)
    fit.add_argument("--recipe", default="adamw", choices=["adamw", "paper_sgd"])
    fit.add_argument("--learning-rate", type=float, default=None)
    fit.add_argument("--label-smoothing", type=float, default=0.1)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--strategy", default="one", choices=["one", "mirrored", "multiworker", "tpu"])
    fit.add_argument("--workers", type=int, default=1, help="threads preparing batches")
    fit.add_argument("--output", default="runs/train")
    fit.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint.npz")
    fit.set_defaults(run=_train)


def _add_export(commands):
    from nlpool_keras.data import DEFAULT_ARCHIVE

    export = commands.add_parser("export", help="int8 .tflite + TFLM firmware files, after a pre-flight of every op")
    export.add_argument("model", help=MODEL_HELP)
    export.add_argument("--data", default=DEFAULT_ARCHIVE, help="calibration images: archive, folder or tfds name")
    export.add_argument("--data-dir", default=None)
    export.add_argument("--split", default="train")
    export.add_argument("--calibration-per-class", type=at_least_one, default=20)
    export.add_argument("--name", default=None, help="file and C symbol prefix (default: the model's name)")
    export.add_argument("--compress", action="store_true", help="LUT-compress the constants that gain (TFLM DECODE)")
    export.add_argument(
        "--rescale-in-graph",
        action="store_true",
        help="keep a zoo model's [0, 255] -> [-1, 1] rescaling as MUL and ADD at the graph's input (input scale 1, "
        "zero point -128); by default it is folded into the int8 input's quantization (scale 1/127.5, zero point "
        "0): no op and no second copy of the image. Pixels p go in as int8 p - 128 either way",
    )
    export.add_argument(
        "--int16-ops",
        action="store_true",
        help="run SOFTMAX and LOGISTIC in int16 (lookup tables): 8-10x fewer instructions for them on a "
        "Cortex-M4, more SRAM (twice the bytes for their tensors, 2 KB of tables per SOFTMAX)",
    )
    export.add_argument(
        "--fuse-pools",
        action="store_true",
        help="write each self-attentive or LIP layer's window softmax average as one custom op "
        "(NLPOOL_WINDOW_SOFTMAX_POOL: a lookup table per window element, one division per output) and, "
        "with --int16-ops, each attention's softmax as another (NLPOOL_TABLE_SOFTMAX); the firmware and "
        "the host interpreter built from the pinned TFLM sources run them, the TFLite interpreter does "
        "not. Whole graph only (not with --schedule)",
    )
    export.add_argument(
        "--schedule",
        default=None,
        help="also write a patch schedule (phase models, firmware, schedule.json): 'auto' or CUT:TILES",
    )
    export.add_argument("--max-mac-overhead", type=float, default=1.3, help="with --schedule auto")
    export.add_argument("--suffix", default="whole", choices=["whole", "blocks"], help="with --schedule")
    export.add_argument("--query-chunks", type=int, default=1, help="with --schedule: attention in N query slices")
    export.add_argument("--store-inputs", action="store_true", help=STORE_INPUTS_HELP)
    export.add_argument(
        "--kernels",
        default="cmsis_nn",
        choices=["cmsis_nn", "reference"],
        help="the TFLM kernels the firmware will use: cmsis_nn also refuses ops those kernels mishandle",
    )
    export.add_argument("--output", default="runs/export")
    export.set_defaults(run=_export)


def _add_qat(commands):
    from nlpool_keras.data import DEFAULT_ARCHIVE

    qat = commands.add_parser("qat", help="post-training int8 vs quantization-aware fine-tuning, measured in TFLM")
    qat.add_argument("model", help=MODEL_HELP)
    qat.add_argument("--data", default=DEFAULT_ARCHIVE)
    qat.add_argument("--data-dir", default=None)
    qat.add_argument("--split", default=None, help="the split measured (default: val, validation or test)")
    qat.add_argument("--per-class", type=at_least_one, default=None, help="limit training images per class")
    qat.add_argument("--val-per-class", type=at_least_one, default=None)
    qat.add_argument("--epochs", type=int, default=1)
    qat.add_argument("--batch-size", type=int, default=32)
    qat.add_argument("--learning-rate", type=float, default=1e-4)
    qat.add_argument("--seed", type=int, default=0)
    qat.add_argument("--output", default="runs/qat")
    qat.set_defaults(run=_qat)


def _add_prune(commands):
    from nlpool_keras.data import DEFAULT_ARCHIVE

    prune = commands.add_parser("prune", help="magnitude pruning, channel removal or clustering, fine-tuned")
    prune.add_argument("model", help=MODEL_HELP)
    prune.add_argument("--method", default="magnitude", choices=["magnitude", "channels", "cluster"])
    prune.add_argument("--sparsity", type=float, default=0.5, help="magnitude: final kernel sparsity")
    prune.add_argument("--fraction", type=float, default=0.3, help="channels: fraction of hidden channels removed")
    prune.add_argument("--criterion", default="bn_gamma", choices=["bn_gamma", "l1"], help="channels: importance")
    prune.add_argument("--clusters", type=int, default=16, help="cluster: distinct values per kernel")
    prune.add_argument("--data", default=DEFAULT_ARCHIVE)
    prune.add_argument("--data-dir", default=None)
    prune.add_argument("--val-split", default=None, help="default: val, validation or test")
    prune.add_argument("--per-class", type=at_least_one, default=None, help="limit training images per class")
    prune.add_argument("--val-per-class", type=at_least_one, default=None)
    prune.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs")
    prune.add_argument("--batch-size", type=int, default=32)
    prune.add_argument("--learning-rate", type=float, default=1e-4)
    prune.add_argument("--seed", type=int, default=0)
    prune.add_argument("--output", default="runs/prune")
    prune.set_defaults(run=_prune)


def _add_profile(commands):
    prof = commands.add_parser("profile", help="per-op memory and MACs, liveness peak, TFLM arena, model card, plot")
    prof.add_argument("model", nargs="?", default=None, help=".tflite or " + MODEL_HELP + "; none: the zoo options")
    prof.add_argument("--downsample", default="sa")
    prof.add_argument("--strides", default="1222121")
    prof.add_argument("--prepool", type=int, default=None)
    prof.add_argument("--alpha", type=float, default=0.35)
    prof.add_argument("--image-size", type=int, default=96)
    prof.add_argument("--data", default=None, help="calibration images (default: random pixels)")
    prof.add_argument("--data-dir", default=None)
    prof.add_argument("--split", default="train", help="split of the calibration images")
    prof.add_argument("--val-split", default=None, help="split of --top1-per-class (default: val, validation or test)")
    prof.add_argument(
        "--top1-per-class", type=int, default=None, help="with --data: top-1 float and int8 (TFLM) on these val images"
    )
    prof.add_argument("--no-arena", action="store_true", help="skip the TFLM measurements (arena, schedule phases)")
    prof.add_argument(
        "--schedule", default=None, help="patch-based execution: 'auto' (search) or CUT:TILES, e.g. block_2_add:3"
    )
    prof.add_argument("--sram-budget", default=None, help="with --schedule: bytes, e.g. 64k")
    prof.add_argument("--max-mac-overhead", type=float, default=1.3, help="with --schedule auto: MACs ÷ whole graph's")
    prof.add_argument(
        "--suffix",
        default="whole",
        choices=["whole", "blocks"],
        help="with --schedule: the suffix in one phase or per block",
    )
    prof.add_argument(
        "--query-chunks", type=int, default=1, help="with --schedule: attention after the tiles in N query slices"
    )
    prof.add_argument("--store-inputs", action="store_true", help=STORE_INPUTS_HELP)
    prof.add_argument("--output", default="runs/profile")
    prof.set_defaults(run=_profile)


def _add_validate(commands):
    from nlpool_keras.data import DEFAULT_ARCHIVE

    check = commands.add_parser("validate", help="run an int8 .tflite or a patch schedule in TFLM over a dataset split")
    check.add_argument(
        "tflite", help="int8 .tflite, the schedule.json of nlpool export --schedule, or with --target the export folder"
    )
    check.add_argument("--float-model", default=None, help="the model to compare with: " + MODEL_HELP)
    check.add_argument("--data", default=DEFAULT_ARCHIVE)
    check.add_argument("--data-dir", default=None)
    check.add_argument("--split", default=None, help="default: val, validation or test")
    check.add_argument("--per-class", type=at_least_one, default=None, help="limit images per class")
    check.add_argument(
        "--per-op",
        type=int,
        nargs="?",
        const=8,
        default=None,
        metavar="IMAGES",
        help="compare TFLM and TFLite on every op's output (on the first IMAGES images, default 8)",
    )
    check.add_argument("--output", default=None, help="JSON report path")
    check.add_argument(
        "--keep-pool-bytes",
        type=at_least_one,
        default=None,
        metavar="BYTES",
        help="with --target, a schedule: build its interpreters once at boot, their persistent data in a pool of "
        "BYTES (reported: the bytes used), not at every step of every image",
    )
    check.add_argument(
        "--fit-block",
        action="store_true",
        help="with --target, a schedule: build its firmware again with the SRAM block its arenas take on the target "
        "(measured on a first image), and measure that firmware",
    )
    check.add_argument(
        "--functions",
        type=at_least_one,
        nargs="?",
        const=20,
        default=None,
        metavar="N",
        help="with --target: run the first image again under QEMU's trace and report the N functions (default 20) "
        "with the most instructions of their own",
    )
    _add_target_options(check, "with --target: ")
    check.set_defaults(run=_validate)


def _add_target_options(parser, prefix=""):
    parser.add_argument(
        "--target",
        default=None if prefix else "cortex-m4",
        choices=["cortex-m4", "cortex-m7"],
        help=prefix + "the microcontroller (an emulated MPS2 board): build the export for it and run there",
    )
    parser.add_argument(
        "--kernels", default="cmsis_nn", choices=["cmsis_nn", "reference"], help=prefix + "TFLM kernels"
    )
    parser.add_argument(
        "--tflm", default=None, help=prefix + "a TensorFlow Lite Micro tree (default: the pinned sources)"
    )
    parser.add_argument(
        "--third-party", default=None, help=prefix + "the pinned source archives (default: ../shared/third_party)"
    )


def _add_firmware(commands):
    build = commands.add_parser(
        "firmware", help="compile an export into a firmware ELF for an Arm Cortex-M (TFLM, CMSIS-NN or reference)"
    )
    build.add_argument("export_dir", nargs="?", default=None, help="the --output folder of nlpool export")
    _add_target_options(build)
    build.add_argument(
        "--library-only",
        action="store_true",
        help="only build (or find) the TFLM library for the target and kernels, and the host interpreter "
        "with the project's custom ops (firmware/host_runtime.py), into the cache",
    )
    build.set_defaults(run=_firmware)


COMMANDS = (_add_demo, _add_train, _add_export, _add_qat, _add_prune, _add_profile, _add_validate, _add_firmware)


def main(argv=None):
    from nlpool_keras.firmware.errors import FirmwareError
    from nlpool_keras.tflm.interpreter import TFLMError

    parser = argparse.ArgumentParser(prog="nlpool", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for add_command in COMMANDS:
        add_command(commands)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.command_line = " ".join(["nlpool"] + argv)
    silence_python_logs()
    with quiet_native_logs():
        try:
            args.run(args)
        except (FileNotFoundError, FileExistsError, ValueError, TFLMError, FirmwareError) as error:
            print(f"nlpool {args.command}: error: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
