"""`nlpool export --schedule` and `nlpool validate schedule.json`: the exported phase models run
step by step in TFLM give the whole-graph int8 model's outputs, the pool never lets two live
buffers share bytes, and the generated C++ runner hands every step the inputs the Python run
recorded (compiled with g++ and replayed against that run)."""

import json
import os
import shutil
import subprocess

import keras
import numpy as np
import pytest

from nlpool_keras import build_mbv2_sa
from nlpool_keras.cli import main
from nlpool_keras.export.flatbuffer import micro_flatbuffer
from nlpool_keras.export.program import step_extents
from nlpool_keras.profile import settle_batchnorm
from nlpool_keras.tflm.child import run_tflm
from nlpool_keras.tflm.deploy import export_for_tflm, load_schedule
from nlpool_keras.tflm.schedule import run_program

SIZE = 48


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = build_mbv2_sa((SIZE, SIZE, 3), alpha=0.35, downsample="sa", classes=10, classifier_activation=None)
    settle_batchnorm(model)
    folder = tmp_path_factory.mktemp("export")
    calibration = np.random.default_rng(0).uniform(0, 255, (8, SIZE, SIZE, 3)).astype("float32")
    seen = []

    def schedule(flatbuffer, converted, images):  # chosen on the converted model, as --schedule auto does
        rescale = type(converted.get_layer("rescale")).__name__
        seen.append((bytes(flatbuffer[4:8]), rescale, images.shape, images.min() * 127.5, images.max() * 127.5))
        return {"cut": "block_1_pool", "tiles": 2, "suffix": "blocks", "query_chunks": 2, "store_inputs": True}

    summary = export_for_tflm(model, calibration, str(folder), name="net", schedule=schedule)
    # the model and images as converted: the rescaling folded into the input, (p - 128) / 127.5
    assert seen == [(b"TFL3", "Activation", calibration.shape, pytest.approx(-128), pytest.approx(127))]
    return model, folder, summary


def _quantized_images(count, seed=1):
    return np.random.default_rng(seed).integers(-128, 128, (count, SIZE, SIZE, 3)).astype(np.int8)


def test_exported_schedule_equals_the_whole_graph_in_tflm(exported):
    _, folder, summary = exported
    program, manifest = load_schedule(summary["schedule"]["manifest"])
    with open(os.path.join(folder, "schedule", manifest["whole_graph"]), "rb") as f:
        whole = run_tflm(micro_flatbuffer(f.read()), _quantized_images(4))
    run = run_program(program, _quantized_images(4))
    assert np.array_equal(run.outputs, whole.outputs)
    labels = [step.label for step in program.steps]
    assert labels.count("cut tiles") == 4 and "attention 1" in labels and labels[-1].startswith("suffix")
    assert sorted({step.model for step in program.steps}) == list(range(len(program.models)))
    assert manifest["peak_sram_bytes"] < whole.arena_bytes
    names = {os.path.basename(path) for path in manifest["firmware"]}
    assert names == {"schedule_models.h", "schedule_models.cc", "schedule_plan.h", "schedule_runner.h"} | {
        "schedule_ops.h",
        "schedule_engine.h",
        "main.cc",
    }
    with open(os.path.join(folder, "schedule", "main.cc")) as f:
        main = f.read()  # the pixel input's contract, as the whole graph's main.cc writes it
    assert "return (int8_t)(p - 128);" in main and "destination[i] = int8_of_pixel(128);" in main


def test_live_buffers_never_share_pool_bytes(exported):
    """At every copy-in (reads of step s) and copy-out (writes of step s), the buffers still to
    be read and those being filled occupy disjoint bytes of the pool, within the step's extent."""
    _, _, summary = exported
    program, _ = load_schedule(summary["schedule"]["manifest"])
    times = {}  # buffer: time points (2 s: step s reads, 2 s + 1: step s writes)
    for s, step in enumerate(program.steps):
        for access in step.reads:
            times.setdefault(access.buffer, []).append(2 * s)
        for access in step.writes:
            times.setdefault(access.buffer, []).append(2 * s + 1)
    held = [b for b, buffer in enumerate(program.buffers) if buffer.offset is not None]
    assert 0 not in held and not set(program.outputs) & set(held)  # image streamed, outputs handed over
    extents = step_extents(program)
    for time in range(2 * len(program.steps)):
        live = [b for b in held if min(times[b]) <= time <= max(times[b])]
        ranges = sorted(
            (program.buffers[b].offset, program.buffers[b].offset + int(np.prod(program.buffers[b].shape)))
            for b in live
        )
        assert all(end <= start for (_, end), (start, _) in zip(ranges, ranges[1:], strict=False))
        assert extents[time // 2] >= max((end for _, end in ranges), default=0)


def _write_trace(program, path, image, corrupt=False):
    record = []
    run_program(program, image[None], record=record)
    with open(path, "wb") as f:
        f.write(image.tobytes())
        for s, (inputs, outputs) in enumerate(record):
            for k, array in enumerate(inputs):
                data = bytearray(np.ascontiguousarray(array).tobytes())
                if corrupt and s == len(record) // 2 and k == 0:
                    data[0] ^= 0x7F
                f.write(bytes(data))
            for array in outputs:
                f.write(np.ascontiguousarray(array).tobytes())
    return len(record)


def test_generated_cpp_runner_replays_the_tflm_run(exported, tmp_path):
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler on this machine")
    _, folder, summary = exported
    program, _ = load_schedule(summary["schedule"]["manifest"])
    schedule = os.path.join(folder, "schedule")
    harness = os.path.join(os.path.dirname(__file__), "schedule_harness.cc")
    symbols = [f"-DSCHEDULE_{s}=net_{s}" for s in ("steps", "buffers", "block_bytes", "step_count")]
    binary = str(tmp_path / "harness")
    subprocess.run(
        [compiler, "-std=c++17", "-Wall", "-Werror", "-I", schedule, *symbols, harness, "-o", binary], check=True
    )
    subprocess.run(
        [compiler, "-std=c++17", "-c", "schedule_models.cc", "-o", str(tmp_path / "m.o")], cwd=schedule, check=True
    )
    image = _quantized_images(1, seed=7)[0]
    for corrupt in (False, True):
        trace = str(tmp_path / f"trace_{corrupt}.bin")
        steps = _write_trace(program, trace, image, corrupt)
        out = subprocess.run([binary, trace], capture_output=True, text=True, check=True).stdout.split()
        assert int(out[1]) == steps and int(out[5]) == 10
        assert (int(out[3]) > 0) == corrupt  # a changed input byte is seen: the check can fail


def test_cli_export_schedule_then_validate(exported, tmp_path, capsys):
    model, _, _ = exported
    path = str(tmp_path / "net.keras")
    model.save(path)
    archive = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "imagenette128_q90.tar.gz")
    if not os.path.isfile(archive):
        pytest.skip("no image archive")
    out = str(tmp_path / "export")
    common = ["--data", archive]
    assert (
        main(["export", path, *common, "--calibration-per-class", "1", "--schedule", "block_1_pool:2", "--output", out])
        == 0
    )
    printed = capsys.readouterr().out
    manifest = os.path.join(out, "schedule", "schedule.json")
    assert f"nlpool validate {manifest}" in printed
    report_path = str(tmp_path / "report.json")
    assert main(["validate", manifest, *common, "--per-class", "2", "--output", report_path]) == 0
    with open(report_path) as f:
        report = json.load(f)
    assert report["images"] == 20 and report["max_lsb_diff_schedule_vs_whole_graph"] == 0
    assert report["argmax_agreement_schedule_vs_whole_graph"] == 1.0
    assert report["peak_sram_bytes"] < report["whole_graph_arena_bytes"]
    assert main(["export", path, *common, "--schedule", "block_1_pool", "--output", out]) == 2
    assert "CUT:TILES" in capsys.readouterr().err
