"""The microcontrollers a firmware is built for, and the QEMU boards that emulate them.

Each target names TFLM's `TARGET_ARCH` for its `cortex_m_generic` build and a board: QEMU's
machine, the project's start-up code and linker script (`boards/<board>/`), the RAM the linker
script gives data, the arena and the stack, and the clock that SysTick counts.
"""

import os
from typing import NamedTuple

from nlpool_keras.firmware.errors import FirmwareError

BOARDS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "boards")
KERNEL_SETS = ("cmsis_nn", "reference")


class Target(NamedTuple):
    arch: str  # TFLM's TARGET_ARCH (and gcc's -mcpu, without an FPU)
    machine: str  # qemu-system-arm -M
    board: str  # folder under boards/
    ram_bytes: int  # the SRAM region of the board's linker script
    stack_bytes: int  # kept for the stack at the top of that RAM
    clock_hz: int  # the core clock SysTick counts (QEMU's MPS2 boards: 25 MHz)


TARGETS = {
    "cortex-m4": Target("cortex-m4", "mps2-an386", "mps2", 4 << 20, 64 << 10, 25_000_000),
    "cortex-m7": Target("cortex-m7", "mps2-an500", "mps2", 4 << 20, 64 << 10, 25_000_000),
}


def get_target(name):
    if name not in TARGETS:
        raise FirmwareError(f"target must be one of {sorted(TARGETS)}, received: target={name!r}")
    return TARGETS[name]


def check_kernels(kernels):
    if kernels not in KERNEL_SETS:
        raise FirmwareError(f"kernels must be one of {KERNEL_SETS}, received: kernels={kernels!r}")
    return kernels


def board_file(target, filename):
    return os.path.join(BOARDS_DIR, target.board, filename)
