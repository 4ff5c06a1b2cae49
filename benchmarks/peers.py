"""TinyEngine (MCUNet/MCUNetV2's engine) beside this project's TFLM + CMSIS-NN firmware, on the same
emulated Cortex-M4 (QEMU mps2-an386), the same compiler (arm-none-eabi-gcc, soft float) and the
same int8 network: MobileNetV2 alpha 0.35, 96 px, 10 classes, strided convolutions
(keras.applications' structure; untrained: instructions do not depend on the weights' values).

    .venv/bin/python benchmarks/peers.py              # -> benchmarks/results/firmware/peers.json
    .venv/bin/python benchmarks/peers.py --images 1   # val images per class (default 1)

Two copies of the network, with the same weights:
- `keras`: as keras builds it. Its stride-2 convolutions pad (0, 1) on even sizes.
- `symmetric`: every stride-2 convolution padded by one on each side (ZeroPadding2D(1) + "valid"),
  the global pool a 3x3 AVERAGE_POOL_2D. TinyEngine pads every convolution by k // 2 on each side
  whatever the graph says, and runs a lone MEAN only as an average pool.
Each is exported with `nlpool export` (the rescaling folded into the input: a pixel p goes in as the
int8 p - 128, nothing before Conv1; `keras` also with four patch schedules, `EXPORTS`), and both engines run the
exported flatbuffer on the same images. Every run's outputs are compared with TFLite's reference kernels.

TinyEngine is built from the pinned archives (`../shared/third_party`: tinyengine and its CMSIS_5)
under build/peers/. Its code generator runs in a virtual environment of its own (numpy < 2:
`tinyengine_codegen.py`); its kernels and the generated code are compiled with the flags of the
project's TFLM build at -O2, linked with the same start-up code and linker script, and run by
`peers/tinyengine_runner.c`, which reports as the project's runner does. `TINYENGINE_SETTINGS`
also runs the settings that give wrong outputs: keras' own padding, TinyEngine's float
requantization, and a patch stage that holds a residual ADD.

The project's first two schedules also run with their interpreters kept from boot (`schedule-kept`:
every phase model's set up once, `validate_schedule_on_target(keep_pool_bytes=...)`), and each
schedule run per step records where its set-up goes (`setup_fit`: a least-squares fit of each
phase model's set-up instructions over its ops, tensors and output channels).

SRAM is counted as a deployed firmware holds it: static data (.data + .bss) and the stack's
high-water mark. The project's runner leaves out its per-op profiler (`sram_bytes_target`); its
schedules run in the SRAM block their arenas take on the target (`fit_block`), not the export's
block sized from the host's arenas with a margin (reported beside it); a
schedule whose interpreters are kept from boot (`schedule-kept`) counts the bytes its persistent
pool holds, not the pool's ample size.
TinyEngine's patch-based `end2endinference` reads its patches from a whole image in SRAM: that
buffer is reported apart (`image_buffer_bytes`) and left out of `sram_bytes_streamed`, as the
project's schedule streams its image.
"""

import argparse
import glob
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from firmware_study import _save, _val_images  # noqa: E402

from nlpool_keras.quiet import run_quietly  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "benchmarks", "peers")
RESULT = os.path.join(ROOT, "benchmarks", "results", "firmware", "peers.json")
RUNS = os.path.join(ROOT, "runs", "peers")
BUILD = os.path.join(ROOT, "build", "peers")
THIRD_PARTY = os.path.join(os.path.dirname(ROOT), "shared", "third_party")
TARGET = "cortex-m4"
CODEGEN_PACKAGES = ("numpy<2", "flatbuffers", "tqdm", "matplotlib")
# setting -> (network, code generator options); "split": TinyEngine layers run patch by patch
# (5: Conv1 to block_1's depthwise, before the first residual ADD; 12: past it)
TINYENGINE_SETTINGS = {
    "whole": ("symmetric", {}),
    "whole, keras' padding": ("keras", {}),
    "whole, float requantization": ("symmetric", {"fp_requantize": True}),
    "patches 2x2, split 5": ("symmetric", {"patches": 2, "split": 5}),
    "patches 4x4, split 5": ("symmetric", {"patches": 4, "split": 5}),
    "patches 2x2, split 12": ("symmetric", {"patches": 2, "split": 12}),
}
# export folder -> (network, `nlpool export` options); "keras" gives the schedule of least SRAM
# within 1.3x the MACs, "keras_fast" one under 64 KB with few extra MACs (expanded_conv's 48x48
# output and block_1's 24x24 one stored whole, block_2 in tiles of the latter), "keras_recompute"
# the same tiles with the maps recomputed in every tile, and "keras_block1" the cut before block_2
# (it then runs whole)
EXPORTS = {
    "keras": ("keras", ["--schedule", "auto"]),
    "symmetric": ("symmetric", []),
    "keras_fast": ("keras", ["--schedule", "block_2_add:3", "--suffix", "blocks", "--store-inputs"]),
    "keras_recompute": ("keras", ["--schedule", "block_2_add:3", "--suffix", "blocks"]),
    "keras_block1": ("keras", ["--schedule", "block_1_project_BN:3", "--suffix", "blocks", "--store-inputs"]),
}
# setting -> (export folder, program)
PROJECT_SETTINGS = {
    "whole": ("keras", "model"),
    "whole, symmetric copy": ("symmetric", "model"),
    "schedule (auto)": ("keras", "schedule"),
    "schedule": ("keras_fast", "schedule"),
    "schedule, maps recomputed": ("keras_recompute", "schedule"),
    "schedule, fewest MACs": ("keras_block1", "schedule"),
    "schedule (auto), interpreters kept from boot": ("keras", "schedule-kept"),
    "schedule, interpreters kept from boot": ("keras_fast", "schedule-kept"),
}
KEEP_POOL_BYTES = 256 << 10  # the kept interpreters' pool: ample; SRAM counts the bytes used
COMPILE_FLAGS = ("-O2", "-ffunction-sections", "-fdata-sections", "-fno-unwind-tables", "-fomit-frame-pointer")


def _networks():
    """{"keras": path, "symmetric": path} of the two copies as .keras files (built once)."""
    paths = {name: os.path.join(RUNS, f"{name}.keras") for name in ("keras", "symmetric")}
    if all(os.path.isfile(p) for p in paths.values()):
        return paths
    import keras

    from nlpool_keras.models import build_mbv2_sa
    from nlpool_keras.profile import settle_batchnorm

    keras.utils.set_random_seed(0)
    net = build_mbv2_sa((96, 96, 3), alpha=0.35, downsample="conv", classes=10, classifier_activation=None)
    settle_batchnorm(net)
    classifier = net.layers[-1]  # the converter drops an all-zero bias, and TinyEngine needs one
    classifier.bias.assign(np.random.default_rng(0).normal(0.0, 0.1, classifier.bias.shape).astype("float32"))
    symmetric = keras.models.clone_model(net, clone_function=_symmetric_layer)
    symmetric.set_weights(net.get_weights())
    os.makedirs(RUNS, exist_ok=True)
    net.save(paths["keras"])
    symmetric.save(paths["symmetric"])
    return paths


def _symmetric_layer(layer):
    """`layer` for the symmetric copy: stride-2 convolutions padded (1, 1), the global pool an
    average pool over the whole map."""
    import keras

    config = layer.get_config()
    if isinstance(layer, keras.layers.ZeroPadding2D):
        return keras.layers.ZeroPadding2D(1, name=layer.name)
    if isinstance(layer, keras.layers.Conv2D) and layer.strides == (2, 2) and layer.padding == "same":
        config["padding"] = "valid"
        return keras.Sequential([keras.layers.ZeroPadding2D(1), type(layer).from_config(config)], name=layer.name)
    if isinstance(layer, keras.layers.GlobalAveragePooling2D):
        pool = keras.layers.AveragePooling2D(tuple(layer.input.shape[1:3]))
        return keras.Sequential([pool, keras.layers.Flatten()], name=layer.name)
    return type(layer).from_config(config)


def _export(key, path):
    """`nlpool export` of a network with the options of EXPORTS[key]."""
    folder = os.path.join(RUNS, f"export_{key}")
    if not os.path.isfile(os.path.join(folder, "export.json")):
        command = [os.path.join(os.path.dirname(sys.executable), "nlpool"), "export", path, "--name", "net"]
        command += ["--calibration-per-class", "2", "--output", folder, *EXPORTS[key][1]]
        print(" ".join(command[1:]), flush=True)
        subprocess.run(command, check=True)
    return folder


def reference_outputs(tflite, inputs):
    """(M, K) int outputs of TFLite's reference kernels for the .tflite file's int8 `inputs`."""
    from nlpool_keras.tflm.interpreter import tflite_reference_outputs

    with open(tflite, "rb") as f:
        outputs = tflite_reference_outputs(f.read(), inputs)
    return outputs.reshape(len(inputs), -1).astype(np.int64)


# -- TinyEngine


def _tinyengine_sources():
    """(tinyengine folder, CMSIS folder), unpacked from the pinned archives once."""
    from nlpool_keras.firmware.tree import _archive, _extract

    sources = os.path.join(BUILD, "sources")
    os.makedirs(sources, exist_ok=True)
    for prefix in ("tinyengine", "CMSIS_5"):
        if not os.path.isdir(os.path.join(sources, prefix)):
            _extract(_archive(THIRD_PARTY, prefix), os.path.join(sources, prefix))
    return os.path.join(sources, "tinyengine"), os.path.join(sources, "CMSIS_5", "CMSIS")


def _codegen_python():
    """The code generator's interpreter: a virtual environment of its own with numpy < 2."""
    venv = os.path.join(BUILD, "venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.isfile(os.path.join(venv, ".ready")):
        subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", *CODEGEN_PACKAGES], check=True)
        open(os.path.join(venv, ".ready"), "w").close()
    return python


def _compile(sources, out, flags, includes):
    objects = []
    for source in sources:
        obj = os.path.join(out, os.path.basename(os.path.dirname(source)) + "_" + os.path.basename(source) + ".o")
        if not os.path.isfile(obj):
            command = ["arm-none-eabi-gcc", *flags, *includes, "-c", source, "-o", obj]
            subprocess.run(command, check=True, capture_output=True, text=True)
        objects.append(obj)
    return objects


def _tinyengine_firmware(out, tflite, options):
    """Generates, compiles and links TinyEngine's firmware for `tflite` with the code generator's
    `options` into the folder `out`; returns (elf, codegen.json)."""
    from nlpool_keras.firmware.build import tflm_library
    from nlpool_keras.firmware.targets import board_file, get_target
    from nlpool_keras.firmware.tree import prepare_tree
    from nlpool_keras.tflm.validate import input_details, output_details

    tinyengine, cmsis = _tinyengine_sources()
    command = [_codegen_python(), os.path.join(PEERS, "tinyengine_codegen.py"), tinyengine, tflite, out]
    for key in ("patches", "split"):
        command += [f"--{key}", str(options[key])] if key in options else []
    command += ["--fp-requantize"] if options.get("fp_requantize") else []
    subprocess.run(command, check=True, capture_output=True, text=True)
    with open(os.path.join(out, "codegen.json")) as f:
        generated = json.load(f)

    target = get_target(TARGET)
    library = tflm_library(prepare_tree(), TARGET, "cmsis_nn")  # its architecture flags
    arch = [f for f in library["ccflags"] if f.startswith(("-mcpu=", "-mthumb", "-mfloat-abi=", "-mlittle-endian"))]
    # TinyEngine's generated depthwise kernels call arm_nn_requantize without including its header
    flags = [*arch, *COMPILE_FLAGS, "-DARMCM4", "-include", "arm_nnsupportfunctions.h"]
    headers = (os.path.join(tinyengine, "TinyEngine", "include"), os.path.join(out, "codegen", "Include"))
    includes = [f"-I{path}" for path in headers]
    includes += [f"-I{os.path.join(cmsis, p, 'Include')}" for p in ("NN", "DSP", "Core")]
    includes += [f"-I{board_file(target, '')}"]
    kernels = os.path.join(tinyengine, "TinyEngine", "src", "kernels")
    library_sources = sorted(glob.glob(os.path.join(kernels, "int_forward_op", "*.c")))
    library_sources += sorted(glob.glob(os.path.join(kernels, "fp_requantize_op", "*.c")))  # its ADD's
    library_sources += sorted(glob.glob(os.path.join(cmsis, "NN", "Source", "*", "*.c")))
    shared = os.path.join(BUILD, "objects")
    os.makedirs(shared, exist_ok=True)
    objects = _compile(library_sources, shared, flags, includes)
    own = os.path.join(out, "objects")
    os.makedirs(own, exist_ok=True)
    with open(tflite, "rb") as f:
        flatbuffer = f.read()
    io_bytes = [int(np.prod(d["shape"])) for d in (input_details(flatbuffer), output_details(flatbuffer))]
    defines = [f"-DNLPOOL_INPUT_BYTES={io_bytes[0]}", f"-DNLPOOL_OUTPUT_BYTES={io_bytes[1]}"]
    defines += [f"-DNLPOOL_ACTIVATION_BYTES={generated['activation_bytes']}"]
    defines += ["-DNLPOOL_PATCHES"] if options.get("patches") else []
    program = [*sorted(glob.glob(os.path.join(out, "codegen", "Source", "*.c")))]
    program += [os.path.join(PEERS, "tinyengine_runner.c"), board_file(target, "startup.c")]
    objects += _compile(program, own, flags + defines, includes)
    elf = os.path.join(out, "firmware.elf")
    link = ["arm-none-eabi-gcc", *arch, "-nostartfiles", "--specs=rdimon.specs", "-T", board_file(target, "mps2.ld")]
    link += [f"-Wl,--defsym=STACK_SIZE={target.stack_bytes}", "-Wl,--gc-sections", *objects, "-lm", "-o", elf]
    subprocess.run(link, check=True, capture_output=True, text=True)
    return elf, generated


def measure_tinyengine(out, tflite, options, inputs, reference):
    """TinyEngine's firmware for `tflite` (built in `out`) run on `inputs` (int8) on the emulated
    board: instructions, SRAM, flash and the outputs' largest difference from `reference`."""
    from nlpool_keras.firmware.build import elf_figures
    from nlpool_keras.firmware.emulator import run_firmware

    elf, generated = _tinyengine_firmware(out, tflite, options)
    run = run_firmware(elf, TARGET, inputs)
    figures = elf_figures(elf, symbols=("image",))
    image = figures["symbols"].get("image", 0)
    sram = figures["static_sram_bytes"] + run["stack_bytes"]
    diff = np.abs(run["outputs"].astype(np.int64) - reference)
    return {
        "engine": "TinyEngine",
        "options": options,
        "images": int(len(inputs)),
        "max_lsb_diff_vs_tflite_reference": int(diff.max()),
        "argmax_agreement_vs_tflite_reference": float(np.mean(run["outputs"].argmax(1) == reference.argmax(1))),
        "activation_buffer_bytes": generated["activation_bytes"],
        "static_sram_bytes": figures["static_sram_bytes"],
        "stack_high_water_bytes": run["stack_bytes"],
        "image_buffer_bytes": image,
        "sram_bytes": sram,
        "sram_bytes_streamed": sram - image,
        "flash_bytes": figures["flash_bytes"],
        "instructions_per_image": float(np.mean(run["instructions"])),
        "patch_params": generated["patch_params"],
    }


# -- this project


def measure_project(folder, program, images, reference):
    """The export in `folder` (its whole graph or its schedule) on the emulated board with CMSIS-NN,
    and the largest difference of the target's and the host TFLM's outputs from `reference`."""
    from nlpool_keras.firmware.validate import run_on_target, validate_schedule_on_target

    def from_reference(outputs):
        return {"max_lsb_diff_vs_tflite_reference": int(np.abs(outputs - reference).max())}

    if program.startswith("schedule"):
        pool = KEEP_POOL_BYTES if program == "schedule-kept" else None
        report = validate_schedule_on_target(
            folder, images, None, TARGET, "cmsis_nn", score=from_reference, keep_pool_bytes=pool, fit_block=pool is None
        )
        with open(os.path.join(folder, "export.json")) as f:
            report["schedule"] = json.load(f)["schedule"]
    else:
        outputs, host, _, report = run_on_target(folder, images, TARGET, "cmsis_nn")
        report.update({f"{k}_target": v for k, v in from_reference(outputs).items()})
        report.update({f"{k}_host_tflm": v for k, v in from_reference(host).items()})
    report = {k: v for k, v in report.items() if k != "elf"}
    if program == "schedule":
        report["setup_fit"] = setup_fit(folder, report["steps_first_image"])
    report.update(
        engine="TFLM + CMSIS-NN",
        program=program,
        sram_bytes=report["sram_bytes_target"],
        sram_bytes_streamed=report["sram_bytes_target"],
    )
    return report


CHANNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def setup_fit(folder, steps):
    """Where a schedule's per-image set-up goes: a least-squares fit of each phase model's set-up
    instructions (its steps' on the first image) over its ops, tensors and output channels of
    CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (what CMSIS-NN's Prepare computes a
    requantization multiplier for, in soft-float double), with a constant per model."""
    from tensorflow.lite.python import schema_py_generated as schema

    from nlpool_keras.export.flatbuffer import read_model
    from nlpool_keras.tflm.deploy import load_schedule

    channel_codes = {getattr(schema.BuiltinOperator, name) for name in CHANNEL_OPS}
    program, _ = load_schedule(os.path.join(folder, "schedule", "schedule.json"))
    features, setup = [], np.zeros(len(program.models))
    for step in steps:
        setup[step["model"]] += step["setup_instructions"]
    for data in program.models:
        model = read_model(data)
        graph, codes = model.subgraphs[0], [c.builtinCode for c in model.operatorCodes]
        outputs = [graph.tensors[op.outputs[0]] for op in graph.operators if codes[op.opcodeIndex] in channel_codes]
        features.append([1.0, len(graph.operators), len(graph.tensors), sum(t.shape[-1] for t in outputs)])
    features = np.array(features)
    coefficients, *_ = np.linalg.lstsq(features, setup, rcond=None)
    per = dict(zip(("model", "op", "tensor", "output_channel"), coefficients.tolist(), strict=True))
    return {
        "instructions_per": per,
        "output_channels": int(features[:, 3].sum()),
        "output_channel_share": float(per["output_channel"] * features[:, 3].sum() / setup.sum()),
        "models": len(program.models),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1, help="val images per class")
    args = parser.parse_args(argv)
    from nlpool_keras.tflm.validate import input_details, quantize_pixels

    images, _ = _val_images(args.images)
    networks = _networks()
    folders = {key: _export(key, networks[network]) for key, (network, _) in EXPORTS.items()}
    tflites = {n: os.path.join(folders[n], "net.tflite") for n in networks}
    with open(tflites["keras"], "rb") as f:
        inputs = quantize_pixels(images, input_details(f.read()))
    references = {n: reference_outputs(path, inputs) for n, path in tflites.items()}
    command = "python benchmarks/peers.py" + (f" --images {args.images}" if args.images != 1 else "")
    result = {"network": "MobileNetV2 alpha 0.35, 96 px, 10 classes, strided convolutions", "command": command}
    result["tinyengine"], result["project"] = {}, {}
    for setting, (network, options) in TINYENGINE_SETTINGS.items():
        out = os.path.join(BUILD, setting.replace(" ", "_").replace(",", "").replace("'", ""))
        report = measure_tinyengine(out, tflites[network], options, inputs, references[network])
        result["tinyengine"][setting] = {"network": network, **report}
        print(f"TinyEngine, {setting}: {_brief(report)}", flush=True)
        _save(RESULT, result)
    for setting, (key, program) in PROJECT_SETTINGS.items():
        network = EXPORTS[key][0]
        report = measure_project(folders[key], program, images, references[network])
        result["project"][setting] = {"network": network, **report}
        print(f"TFLM + CMSIS-NN, {setting}: {_brief(report)}", flush=True)
        _save(RESULT, result)


def _brief(report):
    lsb = report.get("max_lsb_diff_vs_tflite_reference", report.get("max_lsb_diff_vs_tflite_reference_target"))
    return (
        f"{report['instructions_per_image'] / 1e6:.1f} M instructions, SRAM {report['sram_bytes']:,} B "
        f"(streamed {report['sram_bytes_streamed']:,}), flash {report['flash_bytes']:,} B, {lsb} LSB from "
        "TFLite's reference kernels"
    )


if __name__ == "__main__":
    run_quietly(main)
