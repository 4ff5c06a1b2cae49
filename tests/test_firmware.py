"""Firmware for an emulated Arm Cortex-M4 (QEMU's mps2-an386), built against TFLM with its CMSIS-NN
and with its reference kernels: a tiny model with every pooling kind, and a patch schedule, give
on the target exactly the host TFLM interpreter's outputs; SysTick counts instructions (a loop
of known length); the per-op locator names the kernel that CMSIS-NN gets wrong; faults, hangs,
missing tools and trees and oversize arenas end with their messages.

The TFLM libraries are built once into build/firmware (minutes each on a fresh machine)."""

import json
import os
import shutil
import subprocess

import keras
import numpy as np
import pytest

import nlpool_keras as nk
from nlpool_keras import build_mbv2_sa
from nlpool_keras.export.preflight import preflight, read_graph
from nlpool_keras.export.tflite import to_int8_tflite
from nlpool_keras.firmware import build, emulator, functions, tree
from nlpool_keras.firmware.errors import FirmwareError
from nlpool_keras.firmware.locate import locate_on_target
from nlpool_keras.firmware.targets import TARGETS, board_file
from nlpool_keras.firmware.validate import export_flatbuffer, validate_on_target, validate_schedule_on_target
from nlpool_keras.profile import settle_batchnorm
from nlpool_keras.tflm.deploy import export_for_tflm
from nlpool_keras.tflm.validate import input_details, quantize_pixels

LOOP = os.path.join(os.path.dirname(__file__), "firmware", "loop.c")
POOLS = ("sa_pool", "lip_pool", "gauss_pool", "soft_pool", "max_pool")


def _every_pooling_kind():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = nk.SelfAttentivePooling2D(2, patch_size=3, num_heads=2, name="sa_pool")(x)  # 32 -> 16
    x = nk.LocalImportancePooling2D(2, name="lip_pool")(x)  # 8
    x = nk.GaussianPooling2D(2, name="gauss_pool")(x)  # 4
    x = nk.SoftPooling2D(2, name="soft_pool")(x)  # 2
    x = keras.layers.MaxPooling2D(2, name="max_pool")(x)  # 1
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name="every_pool")


@pytest.fixture(scope="module")
def every_pool_export(images, tmp_path_factory):
    keras.utils.set_random_seed(0)
    folder = str(tmp_path_factory.mktemp("every_pool"))
    export_for_tflm(_every_pooling_kind(), images[0][:16], folder)
    return folder


@pytest.mark.parametrize("kernels", ["cmsis_nn", "reference"])
def test_every_pooling_kind_on_the_target_equals_the_host_interpreter(every_pool_export, images, kernels):
    report = validate_on_target(every_pool_export, images[0], images[1], "cortex-m4", kernels)
    assert report["images"] == 40
    assert report["max_lsb_diff_target_vs_host"] == 0 and report["argmax_agreement_target_vs_host"] == 1.0
    assert report["top1_target"] == report["top1_host_tflm"]
    assert 0 < report["arena_used_bytes_target"] <= report["arena_reserved_bytes"]
    assert 0 < report["stack_high_water_bytes"] < TARGETS["cortex-m4"].stack_bytes
    assert report["static_sram_bytes"] >= report["arena_reserved_bytes"]
    # the runner's per-op profiler holds a tag pointer and a 64-bit tick count per operator, no more
    operators = len(report["per_op_first_image"])
    assert operators == len(read_graph(export_flatbuffer(every_pool_export)[0]).ops)
    assert 12 * operators <= report["profiler_bytes"] <= 12 * operators + 24
    static_besides = report["static_sram_bytes"] - report["arena_reserved_bytes"] - report["profiler_bytes"]
    assert report["sram_bytes_target"] == report["arena_used_bytes_target"] + report["stack_high_water_bytes"] + (
        static_besides
    )
    assert report["flash_bytes"] == report["model_bytes"] + report["code_bytes"] and report["model_bytes"] > 0
    # the per-op instructions of the first image add up to at most its whole count
    per_op = sum(row["instructions"] for row in report["per_op_first_image"])
    assert 0.95 * report["instructions_per_image_min_max"][0] <= per_op <= report["instructions_per_image_min_max"][1]
    assert set(report["per_pooling_layer"]) == set(POOLS) and 0 < report["pooling_share"] < 1


def test_cli_builds_then_validates_on_the_target(every_pool_export, tmp_path, capsys):
    from nlpool_keras.cli import main

    assert main(["firmware", every_pool_export, "--kernels", "reference"]) == 0
    assert "firmware/cortex-m4-reference/firmware.elf" in capsys.readouterr().out
    report_path = str(tmp_path / "target.json")
    argv = ["validate", every_pool_export, "--target", "cortex-m4", "--kernels", "reference", "--per-class", "1"]
    assert main(argv + ["--per-op", "2", "--output", report_path, "--functions", "3"]) == 0
    out = capsys.readouterr().out
    assert "arg-max agreement with host 1.0000, largest output difference 0 LSB" in out
    assert "every op's output on cortex-m4 (reference) equals the host TFLM's" in out
    assert "instructions by function, one image (" in out
    with open(report_path) as f:
        report = json.load(f)
    assert report["images"] == 10 and report["per_op"]["first_difference"] is None
    traced = report["functions_first_image"]
    counts = [row["instructions"] for row in traced["functions"]]
    assert len(counts) == 3 and counts == sorted(counts, reverse=True)
    # the traced image against SysTick's count of its Invoke: the trace adds the runner's
    # reading of the input and printing of the image's line, a few thousand instructions
    first_image = report["instructions_per_image_min_max"][0]
    assert first_image - 80 <= traced["instructions_per_image"] <= first_image + 10_000
    assert traced["instructions_outside"] > 0
    assert any("reference_integer_ops" in row["function"] for row in traced["functions"])
    assert report["command"].startswith("nlpool validate")
    assert main(["validate", str(tmp_path / "missing"), "--target", "cortex-m4"]) == 2
    assert "--target runs an export" in capsys.readouterr().err
    keep = ["validate", every_pool_export, "--keep-pool-bytes", "4096"]
    assert main(keep + ["--target", "cortex-m4"]) == 2
    assert "keep_pool_bytes=4096: for a schedule (its schedule.json)" in capsys.readouterr().err
    assert (
        main(keep) == 2 and "--keep-pool-bytes 4096 runs a schedule's firmware: add --target" in capsys.readouterr().err
    )
    assert main(["validate", every_pool_export, "--functions", "5"]) == 2
    assert "--functions 5 traces the firmware on its emulated board: add --target" in capsys.readouterr().err
    fit = ["validate", every_pool_export, "--fit-block"]
    assert main(fit) == 2 and "--fit-block sizes a schedule's firmware block on its board: add --target" in (
        capsys.readouterr().err
    )
    assert main(fit + ["--target", "cortex-m4"]) == 2
    assert "fit_block: for a schedule (its schedule.json)" in capsys.readouterr().err


def test_pooling_windows_export_without_transposes_cmsis_nn_mishandles(every_pool_export):
    with open(os.path.join(every_pool_export, "every_pool.tflite"), "rb") as f:
        graph = read_graph(f.read())
    transposes = [op for op in graph.ops if op["op_name"] == "TRANSPOSE"]
    assert transposes and all(len(graph.tensors[op["outputs"][0]]["shape"]) <= 4 for op in transposes)


def test_ticks_count_instructions_on_both_boards(tmp_path):
    for name, target in TARGETS.items():
        # 1e5 loops, and 2e8 loops: 4e8 instructions, 10^7 ticks, the 24-bit counter wraps
        for loops in (100_000, 200_000_000):
            elf = _compile_loop(tmp_path, target, f"LOOPS={loops}")
            run = emulator.run_firmware(elf, name, timeout=120)
            assert abs(run["instructions"][0] - 2 * loops) <= 2 * run["instructions_per_tick"], (name, loops)


def _compile_loop(tmp_path, target, *defines):
    elf = str(tmp_path / f"loop_{target.arch}_{'_'.join(defines)}.elf")
    command = ["arm-none-eabi-gcc", f"-mcpu={target.arch}", "-mthumb", "-mfloat-abi=soft", "-O2"]
    command += [f"-D{d}" for d in defines] + [f"-I{board_file(target, '')}", "-nostartfiles", "--specs=rdimon.specs"]
    command += ["-T", board_file(target, "mps2.ld"), LOOP, board_file(target, "startup.c"), "-o", elf]
    subprocess.run(command, check=True, capture_output=True)
    return elf


def _main_instructions(elf):
    """The instructions of `main` in the ELF's disassembly, up to its return."""
    listing = subprocess.run(["arm-none-eabi-objdump", "-d", elf], capture_output=True, text=True, check=True).stdout
    body = listing.split("<main>:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    end = next(i for i, line in enumerate(body) if "pop" in line and "pc}" in line)
    return end + 1


def test_function_trace_counts_each_instruction_once(tmp_path):
    for name, target in TARGETS.items():
        for loops in (1_000, 1_000_000):
            elf = _compile_loop(tmp_path, target, f"LOOPS={loops}")
            own, run = functions.trace_functions(elf, name)
            # main runs straight through once, its 2-instruction loop LOOPS times
            assert own["main"] == _main_instructions(elf) - 2 + 2 * loops, (name, loops)
            assert own["ticks_now"] > 0 and run["instructions"][0] == pytest.approx(2 * loops, abs=80)


def test_function_trace_of_a_failed_run_ends_with_the_run_error(tmp_path, monkeypatch):
    target = TARGETS["cortex-m4"]
    with pytest.raises(FirmwareError, match="fault: the firmware took a processor exception"):
        functions.trace_functions(_compile_loop(tmp_path, target, "LOOPS=1", "FAULT"), "cortex-m4", timeout=60)
    with pytest.raises(ValueError, match=r"image: one image, shape \(1, ...\), expected; received shape \(2, 4\)"):
        functions.function_profile("firmware.elf", "cortex-m4", np.zeros((2, 4), np.int8))
    monkeypatch.setattr(emulator, "QEMU", "qemu-system-absent")  # fails before QEMU opens the trace
    with pytest.raises(FirmwareError, match="qemu-system-absent not found on PATH"):
        functions.trace_functions(_compile_loop(tmp_path, target, "LOOPS=1"), "cortex-m4", timeout=60)


def test_a_faulting_or_hanging_firmware_ends_with_a_message(tmp_path):
    target = TARGETS["cortex-m4"]
    with pytest.raises(FirmwareError, match="fault: the firmware took a processor exception"):
        emulator.run_firmware(_compile_loop(tmp_path, target, "LOOPS=1", "FAULT"), "cortex-m4", timeout=60)
    with pytest.raises(FirmwareError, match="gave no answer on mps2-an386 within 3 s"):
        emulator.run_firmware(_compile_loop(tmp_path, target, "LOOPS=1", "HANG"), "cortex-m4", timeout=3)


def test_missing_tools_trees_and_oversize_arenas_are_refused(every_pool_export, tmp_path, monkeypatch):
    with pytest.raises(FirmwareError, match="not a TensorFlow Lite Micro tree"):
        tree.prepare_tree(tflm=str(tmp_path))
    with pytest.raises(FirmwareError, match=r"no tflite-micro-\*\.tar\.gz in .*--tflm DIR"):
        tree.prepare_tree(third_party=str(tmp_path), cache=str(tmp_path / "cache"))
    with pytest.raises(FirmwareError, match=r"target must be one of \['cortex-m4', 'cortex-m7'\].*'cortex-m0'"):
        build.build_firmware(every_pool_export, "cortex-m0")
    # an export whose arena outgrows the board: refused before anything is built, with both sizes
    big = tmp_path / "big"
    shutil.copytree(every_pool_export, big)
    summary = json.loads((big / "export.json").read_text())
    summary["tflm_arena_bytes"] = 5_000_000
    (big / "export.json").write_text(json.dumps(summary))
    with pytest.raises(FirmwareError, match=r"the arena needs 5,500,000 bytes; the mps2-an386 board has 4,194,304"):
        build.build_firmware(str(big), "cortex-m4")
    # an export written before model_ops.h held the operator count the runner sizes its table with
    older = tmp_path / "older"
    shutil.copytree(every_pool_export, older, ignore=shutil.ignore_patterns("firmware"))
    ops = (older / "model_ops.h").read_text()
    (older / "model_ops.h").write_text("".join(line for line in ops.splitlines(True) if "_operator_count" not in line))
    with pytest.raises(FirmwareError, match=r"model_ops.h has no operator count .* export the model again"):
        build.build_firmware(str(older), "cortex-m4")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FirmwareError, match="arm-none-eabi-gcc.*apt-get install gcc-arm-none-eabi"):
        build.check_tools()
    with pytest.raises(FirmwareError, match="qemu-system-arm not found"):
        emulator.run_firmware("any.elf", "cortex-m4")


def test_an_op_the_resolver_lacks_is_named_by_the_target(every_pool_export, images, tmp_path):
    broken = tmp_path / "no_max_pool"
    shutil.copytree(every_pool_export, broken, ignore=shutil.ignore_patterns("firmware"))
    ops = (broken / "model_ops.h").read_text()
    assert "resolver.AddMaxPool2D()" in ops
    (broken / "model_ops.h").write_text(
        ops.replace("  if (resolver.AddMaxPool2D() != kTfLiteOk) return kTfLiteError;\n", "")
    )
    figures = build.build_firmware(str(broken), "cortex-m4", "cmsis_nn")
    with pytest.raises(FirmwareError, match=r"(?s)allocate-tensors.*MAX_POOL_2D"):
        emulator.run_firmware(figures["elf"], "cortex-m4", timeout=120)


def _five_d_transpose_model():
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Reshape((4, 2, 4, 16))(x)
    x = keras.layers.Permute((2, 1, 3, 4), name="five_d")(x)  # a 5-D TRANSPOSE with the batch
    x = keras.layers.Reshape((8, 8, 8))(x)
    x = keras.layers.Conv2D(4, 1)(x)
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)), name="five_d_net")


def test_locator_on_target_names_the_transpose_cmsis_nn_leaves_unwritten(tmp_path):
    keras.utils.set_random_seed(0)
    model = _five_d_transpose_model()
    calibration = np.random.default_rng(0).uniform(0, 255, (8, 8, 8, 4)).astype("float32")
    _, problems = preflight(to_int8_tflite(model, calibration), model)
    assert len(problems) == 1 and "TRANSPOSE" in problems[0] and "unsafe under CMSIS-NN" in problems[0]
    assert "(layer 'five_d')" in problems[0]
    with pytest.raises(ValueError, match="unsafe under CMSIS-NN"):
        export_for_tflm(model, calibration, str(tmp_path / "refused"))
    folder = str(tmp_path / "export")
    export_for_tflm(model, calibration, folder, kernels="reference")
    with open(os.path.join(folder, "five_d_net.tflite"), "rb") as f:
        inputs = quantize_pixels(calibration[:3], input_details(f.read()))
    located = locate_on_target(folder, inputs, "cortex-m4", "cmsis_nn")
    first = located["first_difference"]
    assert first["op"] == "TRANSPOSE" and first["layer"] == "five_d" and first["input_max_lsb"] == 0
    assert "TRANSPOSE" in located["kernels_differing_on_equal_inputs"]
    assert all(row["max_lsb"] == 0 for row in located["ops"][: first["index"]])
    clean = locate_on_target(folder, inputs, "cortex-m4", "reference")
    assert clean["first_difference"] is None and len(clean["ops"]) == len(located["ops"])


@pytest.fixture(scope="module")
def schedule_export(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = build_mbv2_sa((48, 48, 3), alpha=0.35, downsample="sa", classes=10, classifier_activation=None)
    settle_batchnorm(model)
    folder = str(tmp_path_factory.mktemp("schedule_export"))
    calibration = np.random.default_rng(0).uniform(0, 255, (8, 48, 48, 3)).astype("float32")
    schedule = {"cut": "block_1_pool", "tiles": 2, "suffix": "blocks", "query_chunks": 2, "store_inputs": True}
    export_for_tflm(model, calibration, folder, name="net", schedule=schedule)
    return folder


def test_schedule_on_the_target_equals_the_host_schedule_run(schedule_export):
    images = np.random.default_rng(1).uniform(0, 255, (3, 48, 48, 3)).astype("float32")
    whole = validate_on_target(schedule_export, images, np.zeros(3), "cortex-m4", "cmsis_nn")
    report = validate_schedule_on_target(schedule_export, images, np.zeros(3), "cortex-m4", "cmsis_nn")
    assert report["max_lsb_diff_target_vs_host"] == 0 and report["argmax_agreement_target_vs_host"] == 1.0
    assert report["static_sram_bytes"] >= report["block_bytes"] > report["largest_arena_used_bytes_target"]
    assert report["static_sram_bytes"] < whole["static_sram_bytes"]
    assert (
        report["setup_instructions_per_image"] + report["invoke_instructions_per_image"]
        < report["instructions_per_image"]
    )
    assert report["invoke_instructions_per_image"] > whole["instructions_per_image"]  # tiles recompute halos


def test_schedule_with_interpreters_kept_from_boot_equals_the_host_and_counts_its_pool(schedule_export):
    images = np.random.default_rng(2).uniform(0, 255, (2, 48, 48, 3)).astype("float32")
    per_step = validate_schedule_on_target(schedule_export, images, np.zeros(2), "cortex-m4", "cmsis_nn")
    pool = 192 << 10
    kept = validate_schedule_on_target(
        schedule_export, images, np.zeros(2), "cortex-m4", "cmsis_nn", keep_pool_bytes=pool
    )
    assert kept["max_lsb_diff_target_vs_host"] == 0 and kept["argmax_agreement_target_vs_host"] == 1.0
    with open(os.path.join(schedule_export, "schedule", "schedule.json")) as f:
        manifest = json.load(f)
    models = len(manifest["models"])
    # the first image step by step, in the plan's order; kept, no step sets anything up
    for report in (per_step, kept):
        steps = report["steps_first_image"]
        assert [s["model"] for s in steps] == [s["model"] for s in manifest["steps"]]
        assert all(s["invoke_instructions"] > 0 for s in steps)
    assert sum(s["setup_instructions"] for s in per_step["steps_first_image"]) > 100 * sum(
        s["setup_instructions"] for s in kept["steps_first_image"]
    )
    assert len(kept["persistent_bytes_per_model"]) == models and min(kept["persistent_bytes_per_model"]) > 0
    # the pool: a table of the interpreters (16-byte aligned), then each model's data
    table = kept["persistent_bytes"] - sum(kept["persistent_bytes_per_model"])
    assert 0 < table <= 16 * (models + 1) and kept["persistent_bytes"] < kept["keep_pool_bytes"] == pool
    # SRAM counts the pool's bytes used; everything else as the per-step firmware holds it
    assert (
        kept["sram_bytes_target"]
        == kept["static_sram_bytes"] - pool + kept["persistent_bytes"] + kept["stack_high_water_bytes"]
    )
    assert kept["static_sram_bytes"] - pool == per_step["static_sram_bytes"]
    # the set-up moved to the boot: what is left per image is picking an interpreter
    assert kept["boot_setup_instructions"] > 0.5 * per_step["setup_instructions_per_image"]
    assert kept["setup_instructions_per_image"] < 0.01 * per_step["setup_instructions_per_image"]
    assert (
        kept["instructions_per_image"]
        < per_step["instructions_per_image"] - per_step["setup_instructions_per_image"] * 0.9
    )


def test_schedule_in_a_block_fitted_on_the_target_equals_the_host_and_needs_all_of_it(schedule_export):
    images = np.random.default_rng(3).uniform(0, 255, (2, 48, 48, 3)).astype("float32")
    fitted = validate_schedule_on_target(schedule_export, images, np.zeros(2), "cortex-m4", "cmsis_nn", fit_block=True)
    assert fitted["max_lsb_diff_target_vs_host"] == 0 and fitted["argmax_agreement_target_vs_host"] == 1.0
    block, exported = fitted["block_bytes"], fitted["export_block_bytes"]
    assert fitted["largest_arena_used_bytes_target"] < block < exported
    assert fitted["export_static_sram_bytes"] - fitted["static_sram_bytes"] == exported - block
    assert max(s["arena_bytes"] for s in fitted["steps_first_image"]) == fitted["largest_arena_used_bytes_target"]
    # the block is the least the target runs the schedule in: 16 bytes less and a step cannot allocate
    smaller = build.build_firmware(schedule_export, "cortex-m4", "cmsis_nn", program="schedule", block_bytes=block - 16)
    with pytest.raises(FirmwareError, match="failed on mps2-an386"):
        emulator.run_firmware(smaller["elf"], "cortex-m4", np.zeros((1, 48, 48, 3), "int8"), timeout=600)
    with pytest.raises(ValueError, match="fit_block with keep_pool_bytes=4096"):
        validate_schedule_on_target(schedule_export, images, None, "cortex-m4", keep_pool_bytes=4096, fit_block=True)
    with pytest.raises(ValueError, match="block_bytes=1024: .* program='schedule' without keep_pool_bytes"):
        build.build_firmware(schedule_export, "cortex-m4", "cmsis_nn", program="model", block_bytes=1024)


def test_schedule_kept_in_too_small_a_pool_names_the_pool(schedule_export, tmp_path):
    images = np.zeros((1, 48, 48, 3), "float32")
    for pool in (256, 4096):  # too small for the allocator itself; for the first model's data
        with pytest.raises(FirmwareError, match=f"model 0: .*persistent pool of {pool}"):
            validate_schedule_on_target(schedule_export, images, None, "cortex-m4", "cmsis_nn", keep_pool_bytes=pool)
    with pytest.raises(ValueError, match="keep_pool_bytes=1024: .* program='schedule' only"):
        build.build_firmware(schedule_export, "cortex-m4", "cmsis_nn", program="model", keep_pool_bytes=1024)
    older = str(tmp_path / "older_export")  # its engine without Keep, as exports before it wrote it
    shutil.copytree(schedule_export, older, ignore=shutil.ignore_patterns("firmware"))
    engine = os.path.join(older, "schedule", "schedule_engine.h")
    with open(engine) as f:
        text = f.read()
    with open(engine, "w") as f:
        f.write(text[: text.index("  // Builds every phase model's")] + text[text.index("  bool Begin(") :])
    with pytest.raises(FirmwareError, match="cannot keep interpreters from boot .* export the model again"):
        build.build_firmware(older, "cortex-m4", "cmsis_nn", program="schedule", keep_pool_bytes=1 << 16)
