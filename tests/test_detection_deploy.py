"""A centroid detector through the deploy path: the C decoder (firmware/programs/centroids.h)
against the Python one on the host, and the command line a user runs on a tiny VOC set:
train -> export (with a patch schedule) -> validate (host TFLM) -> firmware -> validate --target
cortex-m4, with the target's decoded objects equal to the host's, and the schedule's outputs the
whole graph's."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from nlpool_keras.detection import decode_centroids
from nlpool_keras.firmware.build import PROGRAMS
from tests.conftest import write_tiny_voc

HARNESS = r"""
#include <cstdio>
#include <vector>
#include "centroids.h"
// stdin: count, then per map: grid_h grid_w channels threshold and the int8 codes;
// stdout: per map, its object count and one line per object
int main() {
  int count;
  if (scanf("%d", &count) != 1) return 1;
  for (int m = 0; m < count; ++m) {
    int h, w, c, threshold;
    if (scanf("%d %d %d %d", &h, &w, &c, &threshold) != 4) return 1;
    std::vector<int8_t> scores(h * w * c);
    for (auto& v : scores) { int x; if (scanf("%d", &x) != 1) return 1; v = (int8_t)x; }
    std::vector<uint8_t> scratch(3 * h * w + 2);
    std::vector<NlpoolCentroid> objects(h * w);
    int found = nlpool_decode_centroids(scores.data(), h, w, c, threshold, objects.data(), h * w, scratch.data());
    printf("%d\n", found);
    for (int k = 0; k < found; ++k)
      printf("%d %d %d %d %d\n", (int)objects[k].label, (int)objects[k].sum_x, (int)objects[k].sum_y,
             (int)objects[k].cells, (int)objects[k].score);
  }
  return 0;
}
"""


def _random_maps(rng, count):
    """int8 maps with blobs: a few classes scattered in patches, codes spread over the range."""
    maps = []
    for _ in range(count):
        h, w, c = int(rng.integers(1, 13)), int(rng.integers(1, 13)), int(rng.integers(2, 6))
        codes = rng.integers(-128, 128, size=(h, w, c)).astype(np.int8)
        codes[rng.random((h, w)) < 0.3, 1:] = -128  # background cells
        maps.append((codes, int(rng.integers(-20, 60))))
    return maps


def test_c_decoder_finds_what_the_python_decoder_finds(tmp_path):
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler on this machine")
    (tmp_path / "harness.cc").write_text(HARNESS)
    binary = str(tmp_path / "harness")
    subprocess.run(
        [compiler, "-std=c++17", "-O1", f"-I{PROGRAMS}", str(tmp_path / "harness.cc"), "-o", binary], check=True
    )
    maps = _random_maps(np.random.default_rng(0), 300)
    lines = [str(len(maps))]
    for codes, threshold in maps:
        lines.append(f"{codes.shape[0]} {codes.shape[1]} {codes.shape[2]} {threshold}")
        lines.append(" ".join(map(str, codes.ravel())))
    out = subprocess.run([binary], input="\n".join(lines), capture_output=True, text=True, check=True).stdout.split(
        "\n"
    )
    position, total = 0, 0
    for codes, threshold in maps:
        found = int(out[position])
        rows = [list(map(int, out[position + 1 + k].split())) for k in range(found)]
        position += 1 + found
        h, w = codes.shape[:2]
        c_objects = [
            {"label": label, "x": sx / (2 * w * cells), "y": sy / (2 * h * cells), "cells": cells, "score": score}
            for label, sx, sy, cells, score in rows
        ]
        assert c_objects == decode_centroids(codes, threshold)
        total += found
    assert total > 300  # the maps exercise joining, not only empty maps


def nlpool(*arguments):
    from nlpool_keras.cli import main

    return main([str(a) for a in arguments])


def test_detector_chain_from_training_to_the_target(tmp_path, capsys):
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("needs the Arm toolchain and QEMU: bash scripts/setup_firmware.sh")
    data, run, export = tmp_path / "voc", tmp_path / "run", tmp_path / "export"
    write_tiny_voc(str(data), count=10, size=64)
    assert nlpool("train", "--task", "detection", "--data", data, "--image-size", 64, "--epochs", 2,
                  "--batch-size", 4, "--downsample", "sa", "--object-weight", 3, "--output", run) == 0  # fmt: skip
    assert nlpool("export", run, "--data", data, "--schedule", "block_3_pool:2", "--output", export) == 0
    decoding = json.load(open(export / "export.json"))["decoding"]
    assert decoding["kind"] == "centroids" and decoding["grid"] == [8, 8] and decoding["channels"] == 2
    assert nlpool("validate", export, "--data", data, "--float-model", run, "--output", tmp_path / "host.json") == 0
    host = json.load(open(tmp_path / "host.json"))
    assert host["images"] == 2 and host["same_detections_tflm_vs_tflite"] == 1.0
    assert nlpool("firmware", export) == 0
    target_json = tmp_path / "target.json"
    assert nlpool("validate", export, "--target", "cortex-m4", "--data", data, "--output", target_json) == 0
    target = json.load(open(target_json))
    assert target["max_lsb_diff_target_vs_host"] == 0
    assert target["same_detections_target_vs_host"] == 1.0 and target["f1_target"] == target["f1_host_tflm"]
    assert target["f1_host_tflm"] == host["f1_tflm"]  # host TFLM, decoded in Python, both times
    assert target["decode_instructions_per_image"] > 0
    assert "centroid F1" in capsys.readouterr().out
    # the patch schedule of the detector's high-resolution prefix: the whole graph's outputs, bit for bit
    schedule, schedule_json = export / "schedule" / "schedule.json", tmp_path / "schedule.json"
    assert nlpool("validate", schedule, "--data", data, "--output", schedule_json) == 0
    scheduled = json.load(open(schedule_json))
    assert scheduled["max_lsb_diff_schedule_vs_whole_graph"] == 0
    assert scheduled["f1_schedule_tflm"] == scheduled["f1_whole_graph_tflm"] == host["f1_tflm"]
    assert nlpool("validate", schedule, "--target", "cortex-m4", "--data", data, "--output", schedule_json) == 0
    on_target = json.load(open(schedule_json))
    assert on_target["max_lsb_diff_target_vs_host"] == 0 and on_target["f1_target"] == host["f1_tflm"]
    assert on_target["same_detections_target_vs_host"] == 1.0  # decoded in the schedule's block, as the host does
    assert os.path.isfile(export / "firmware" / "cortex-m4-cmsis_nn" / "firmware.elf")
