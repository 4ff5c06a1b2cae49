"""Runs a firmware ELF on an emulated board (`qemu-system-arm`) and reads what it reports.

    report = run_firmware(figures["elf"], "cortex-m4", inputs)   # inputs: (N, ...) int8
    report["outputs"], report["ticks"], report["arena_used_bytes"], report["stack_bytes"]

The firmware (`programs/model_runner.cc`) reads its inputs from `nlpool_in.bin` and writes
its outputs to `nlpool_out.bin` through semihosting, in a scratch folder that is QEMU's
working folder, and prints "nlpool: ..." lines. QEMU runs with `-icount shift=0`: its virtual
clock advances 1 ns per instruction, so a SysTick tick of the board's 25 MHz clock is 40
instructions, and `instructions` = ticks x 1e9 / clock. That counts instructions executed, not
cycles: on silicon a Cortex-M4 takes 1 to 3 cycles for most of them (more for loads from slow
flash, and for divisions), so cycles are at or above this count.
"""

import os
import shutil
import struct
import subprocess
import tempfile

import numpy as np

from nlpool_keras.firmware.errors import FirmwareError
from nlpool_keras.firmware.targets import get_target

QEMU = "qemu-system-arm"
PREFIX = "nlpool: "


def _qemu_command(target, elf, trace=None):
    # trace: QEMU's log of every block it translates (in_asm) and executes (exec, unchained)
    logging = ["-d", "in_asm,exec,nochain", "-D", trace] if trace is not None else []
    return [
        QEMU,
        *logging,
        "-M",
        target.machine,
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-semihosting-config",
        "enable=on,target=native",
        "-icount",
        "shift=0",
        "-kernel",
        os.path.abspath(elf),
    ]


def parse_report(stdout):
    """{key: [values...]} of the firmware's "nlpool: KEY VALUES" lines, in order."""
    lines = {}
    for line in stdout.splitlines():
        if line.startswith(PREFIX):
            key, _, rest = line[len(PREFIX) :].partition(" ")
            lines.setdefault(key, []).append(rest.split())
    return lines


def ssd_box(fields):
    """(input, {"label", "box", "score", "anchor"}) of a "box" line's fields (doubles as bit hex)."""
    index, label, anchor = (int(v) for v in fields[:3])
    score, *box = (struct.unpack(">d", bytes.fromhex(v))[0] for v in fields[3:8])
    return index, {"label": label, "box": box, "score": score, "anchor": anchor}


def run_firmware(elf, target_name, inputs=None, timeout=600, dump_bytes=None, trace=None):
    """Runs `elf` on the target's emulated board over `inputs` ((N, ...) int8, or None for one
    input at the zero point); returns outputs, ticks and memory figures. `trace`: a path QEMU
    writes its block trace to (`functions.trace_functions` reads it).

    Raises FirmwareError when QEMU is missing, the firmware faults, reports an error, or gives
    no answer within `timeout` seconds.
    """
    if shutil.which(QEMU) is None:
        raise FirmwareError(f"{QEMU} not found on PATH: run `bash scripts/setup_firmware.sh` (Debian: qemu-system-arm)")
    target = get_target(target_name)
    with tempfile.TemporaryDirectory(prefix="nlpool-qemu-") as scratch:
        if inputs is not None:
            np.ascontiguousarray(inputs, dtype=np.int8).tofile(os.path.join(scratch, "nlpool_in.bin"))
        try:
            result = subprocess.run(
                _qemu_command(target, elf, trace),
                cwd=scratch,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            shown = (error.stdout or b"")[-1500:]
            raise FirmwareError(
                f"{os.path.basename(elf)} gave no answer on {target.machine} within {timeout} s (hung?); "
                f"its last output: {shown!r}"
            ) from None
        report = parse_report(result.stdout)
        if "error" in report or "done" not in report or result.returncode:
            reason = " ".join(report["error"][0]) if "error" in report else f"exit {result.returncode}"
            raise FirmwareError(
                f"{os.path.basename(elf)} failed on {target.machine} ({reason}); its output:\n"
                f"{(result.stdout + result.stderr)[-3000:]}"
            )
        count = int(report["done"][0][0])
        outputs = np.fromfile(os.path.join(scratch, "nlpool_out.bin"), dtype=np.int8)
        dump = None
        if dump_bytes is not None:
            dump = np.fromfile(os.path.join(scratch, "nlpool_ops.bin"), dtype=np.uint8).reshape(count, dump_bytes)
    # "input N ticks T [setup S invoke I]": each image's ticks (and a schedule's parts of them)
    fields = [dict(zip(v[1::2], map(int, v[2::2]), strict=True)) for v in report["input"]]
    ticks = np.array([f["ticks"] for f in fields], dtype=np.int64)
    per_instruction = 1e9 / target.clock_hz
    return {
        "outputs": outputs.reshape(count, -1),
        "count": count,
        "ticks": ticks,
        "setup_ticks": np.array([f.get("setup", 0) for f in fields], dtype=np.int64),
        "invoke_ticks": np.array([f.get("invoke", 0) for f in fields], dtype=np.int64),
        "instructions": ticks * per_instruction,
        "op_ticks": [(int(i), name, int(t)) for i, name, t in report.get("op", [])],
        # a schedule's first image, step by step: (step, model, set-up ticks, invoke ticks)
        "step_ticks": [(int(v[0]), int(v[2]), int(v[4]), int(v[6])) for v in report.get("step", [])],
        # ... and the arena each step's interpreter used
        "step_arena_bytes": [int(v[8]) for v in report.get("step", [])],
        # a detector's schedule: the block bytes its decoding takes (output and scratch)
        "decode_block_bytes": int(report["decode_bytes"][0][0]) if "decode_bytes" in report else 0,
        "instructions_per_tick": per_instruction,
        "arena_size_bytes": int(report["arena_size"][0][0]) if "arena_size" in report else None,
        "block_bytes": int(report["block"][0][0]) if "block" in report else None,
        # a schedule with its interpreters kept: the boot's set-up ticks, the persistent pool's bytes used
        "kept_ticks": int(report["kept"][0][0]) if "kept" in report else None,
        "persistent_bytes": int(report["kept"][0][2]) if "kept" in report else None,
        "persistent_bytes_per_model": [int(row[2]) for row in report.get("kept_model", [])],
        "arena_used_bytes": int(report["arena_used"][0][0]),
        "stack_bytes": int(report["stack_high_water"][0][0]),
        "dump": dump,
        # a detector's objects as the target decoded them: [input, label, sum_x, sum_y, cells, score]
        "centroids": [[int(v) for v in row] for row in report.get("centroid", [])],
        # an SSD-lite detector's boxes as the target decoded them (`ssd_boxes`)
        "boxes": [ssd_box(row) for row in report.get("box", [])],
        "decode_ticks": np.array([int(row[2]) for row in report.get("decoded", [])], dtype=np.int64),
        "log": result.stdout,
    }
