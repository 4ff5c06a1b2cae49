"""Builds an exported model into a firmware ELF for an Arm Cortex-M, against a TFLM library.

    library = tflm_library(prepare_tree(), "cortex-m4", "cmsis_nn")   # built once, cached
    figures = build_firmware("out/export", "cortex-m4", "cmsis_nn")    # out/export/firmware/cortex-m4-cmsis_nn/

The library is TFLM's `microlite` from its own Makefile (`cortex_m_generic`, BUILD_TYPE
`release_with_logs`: optimised, with error messages and the per-op profiler), with TFLM's
CMSIS-NN kernels or its reference kernels. The firmware compiles the export's `model_data.cc`
and `model_ops.h` with the project's runner program (`programs/model_runner.cc`) and the
board's start-up code and linker script, with the compiler flags the library was built with.
"""

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys

from nlpool_keras.export.firmware import arena_with_margin
from nlpool_keras.firmware.errors import FirmwareError
from nlpool_keras.firmware.ssd_header import write_ssd_header
from nlpool_keras.firmware.targets import board_file, check_kernels, get_target
from nlpool_keras.firmware.tree import MAKE_DIR

PROGRAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs")
KERNELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels")
# the project's custom TFLM ops, in every firmware (the linker drops what a model does not register)
KERNEL_SOURCES = tuple(os.path.join(KERNELS, f"{name}_op.cc") for name in ("window_softmax_pool", "table_softmax"))
BUILD_TYPE = "release_with_logs"
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-size", "arm-none-eabi-nm", "make")
INSTALL_HINT = (
    "run `bash scripts/setup_firmware.sh` (Debian/Ubuntu: apt-get install gcc-arm-none-eabi "
    "libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm)"
)
_ARCH_FLAGS = ("-mcpu=", "-mthumb", "-mfloat-abi=", "-mfpu=", "-mlittle-endian")


def check_tools(tools=TOOLS):
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise FirmwareError(f"{', '.join(missing)} not found on PATH: {INSTALL_HINT}")


def _make_command(tree, target, kernels):
    command = [
        "make",
        "-f",
        os.path.join(MAKE_DIR, "Makefile"),
        "TARGET=cortex_m_generic",
        f"TARGET_ARCH={target.arch}",
        f"BUILD_TYPE={BUILD_TYPE}",
    ]
    return command + (["OPTIMIZED_KERNEL_DIR=cmsis_nn"] if kernels == "cmsis_nn" else [])


def _make_environment():
    # TFLM's Makefile runs Python scripts (code generation); use this interpreter's
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def _make_variables(tree, command, names):
    """The values of the Makefile's variables `names` for this build."""
    result = subprocess.run(
        command + ["--eval=nlpool-print-%: ; @echo '$*=$($*)'"] + [f"nlpool-print-{n}" for n in names],
        cwd=tree,
        capture_output=True,
        text=True,
        env=_make_environment(),
        check=False,
    )
    values = dict(
        line.split("=", 1) for line in result.stdout.splitlines() if "=" in line and line.split("=")[0] in names
    )
    if result.returncode or set(values) != set(names):
        raise FirmwareError(
            f"TFLM's Makefile in {tree} did not answer (exit {result.returncode}): {result.stderr[-2000:]}"
        )
    return values


class Library(dict):
    """A built TFLM library: `path`, `cxxflags`, `ccflags`, `includes` (absolute), `tree`."""


def tflm_library(tree, target_name, kernels, jobs=None, log=None):
    """The TFLM library for a target and kernel set, built on first use (minutes) and reused."""
    check_tools()
    target, kernels = get_target(target_name), check_kernels(kernels)
    command = _make_command(tree, target, kernels)
    values = _make_variables(tree, command, ["CXXFLAGS", "CCFLAGS", "INCLUDES", "MICROLITE_LIB_PATH"])
    library = Library(
        path=os.path.join(tree, values["MICROLITE_LIB_PATH"]),
        cxxflags=values["CXXFLAGS"].split(),
        ccflags=values["CCFLAGS"].split(),
        includes=[_absolute_include(tree, flag) for flag in values["INCLUDES"].split()],
        tree=tree,
    )
    os.makedirs(os.path.join(tree, "gen"), exist_ok=True)
    with open(os.path.join(tree, "gen", ".nlpool-build.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build of a library at a time (parallel test workers)
        if not os.path.isfile(library["path"]):
            if log:
                log(f"building TFLM for {target_name} with {kernels} kernels (once; minutes)")
            log_path = library["path"] + ".build.log"
            os.makedirs(os.path.dirname(log_path), exist_ok=True)
            with open(log_path, "w") as out:
                result = subprocess.run(
                    command + ["microlite", f"-j{jobs or os.cpu_count() or 1}"],
                    cwd=tree,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=_make_environment(),
                    check=False,
                )
            if result.returncode:
                with open(log_path) as f:
                    tail = f.read()[-3000:]
                raise FirmwareError(f"building TFLM's library failed (exit {result.returncode}; {log_path}):\n{tail}")
    return library


def _absolute_include(tree, flag):
    path = flag[2:].strip('"')
    return "-I" + (path if os.path.isabs(path) else os.path.join(tree, path)).replace('"', "")


def _compile(compiler, flags, source, obj, includes, defines=()):
    command = [compiler, *flags, *includes, *(f"-D{d}" for d in defines), "-c", source, "-o", obj]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise FirmwareError(f"compiling {source} failed:\n{result.stderr[-4000:]}")


def _quoted_defines(flags):
    # the Makefile's -DX=\""ARMCM4".h\" reaches the shell as -DX="ARMCM4.h"; here there is no shell
    return [re.sub(r'\\"|"', lambda m: '"' if m.group(0) == '\\"' else "", f) for f in flags]


def read_export(export_dir):
    """The export's summary (`export.json` of `nlpool export`)."""
    path = os.path.join(export_dir, "export.json")
    if not os.path.isfile(path):
        raise FirmwareError(f"no export.json in {export_dir}: run `nlpool export MODEL --output {export_dir}` first")
    with open(path) as f:
        return json.load(f)


def _link(library, objects, target, elf, stack_bytes):
    arch = [f for f in library["cxxflags"] if f.startswith(_ARCH_FLAGS)]
    command = [
        "arm-none-eabi-g++",
        *arch,
        "-nostartfiles",
        "--specs=rdimon.specs",
        "-T",
        board_file(target, f"{target.board}.ld"),
        f"-Wl,--defsym=STACK_SIZE={stack_bytes}",
        "-Wl,--gc-sections",
        f"-Wl,-Map={elf}.map",
        *objects,
        library["path"],
        "-lm",
        "-o",
        elf,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        overflow = re.search(r"region `RAM' overflowed by (\d+) bytes", result.stderr)
        if overflow:
            raise FirmwareError(
                f"the firmware does not fit the {target.machine} board's RAM: {target.ram_bytes:,} bytes "
                f"({target.stack_bytes:,} of them the stack), {int(overflow.group(1)):,} bytes short"
            )
        raise FirmwareError(f"linking {elf} failed:\n{result.stderr[-4000:]}")


def check_fits(target, arena_bytes, what="the arena"):
    """Refuses an arena (or a schedule's block) that cannot fit the board's RAM with the stack."""
    room = target.ram_bytes - target.stack_bytes
    if arena_bytes > room:
        raise FirmwareError(
            f"{what} needs {arena_bytes:,} bytes; the {target.machine} board has {target.ram_bytes:,} bytes of RAM, "
            f"{room:,} after {target.stack_bytes:,} for the stack"
        )


def elf_figures(elf, symbols=()):
    """Flash and static SRAM of an ELF (`arm-none-eabi-size -A`), and the sizes of `symbols`."""
    sizes = {}
    for line in subprocess.run(
        ["arm-none-eabi-size", "-A", elf], capture_output=True, text=True, check=True
    ).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    flash_sections = (".text", ".ARM.extab", ".ARM.exidx", ".init_array", ".data")
    found = {}
    nm = subprocess.run(["arm-none-eabi-nm", "-S", "-C", elf], capture_output=True, text=True, check=True).stdout
    for line in nm.splitlines():
        parts = line.split(maxsplit=3)
        if len(parts) == 4 and parts[3].split("::")[-1] in symbols:
            found[parts[3].split("::")[-1]] = int(parts[1], 16)
    return {
        "flash_bytes": sum(sizes.get(s, 0) for s in flash_sections),
        "static_sram_bytes": sizes.get(".data", 0) + sizes.get(".bss", 0),
        "sections": sizes,
        "symbols": found,
    }


def firmware_dir(export_dir, target_name, kernels, program="model"):
    return os.path.join(
        export_dir, "firmware", f"{target_name}-{kernels}" + ("" if program == "model" else f"-{program}")
    )


def _program_sources(export_dir, program):
    """(sources, include folder, symbols to size) of the program built from an export."""
    if program == "schedule":
        folder = os.path.join(export_dir, "schedule")
        if not os.path.isfile(os.path.join(folder, "schedule_plan.h")):
            raise FirmwareError(f"no schedule in {export_dir}: export with `nlpool export MODEL --schedule ...`")
        return [os.path.join(folder, "schedule_models.cc"), os.path.join(PROGRAMS, "schedule_runner.cc")], folder
    ops_header = os.path.join(export_dir, "model_ops.h")
    if not os.path.isfile(ops_header):
        raise FirmwareError(f"no model_ops.h in {export_dir}: run `nlpool export MODEL --output {export_dir}` first")
    with open(ops_header) as f:
        if "_operator_count" not in f.read():  # the runner sizes its per-op table with it
            raise FirmwareError(
                f"{export_dir}/model_ops.h has no operator count (an export of an older nlpool): "
                f"export the model again into {export_dir}"
            )
    return [os.path.join(export_dir, "model_data.cc"), os.path.join(PROGRAMS, "model_runner.cc")], export_dir


def schedule_block_bytes(export_dir, name):
    """The schedule's one SRAM block, as its `schedule_plan.h` declares it."""
    with open(os.path.join(export_dir, "schedule", "schedule_plan.h")) as f:
        return int(re.search(rf"{name}_block_bytes = (\d+);", f.read()).group(1))


def build_firmware(
    export_dir, target_name="cortex-m4", kernels="cmsis_nn", tree=None, program="model", log=None, keep_pool_bytes=None,
    block_bytes=None,
):  # fmt: skip
    """Compiles the export in `export_dir` for a target against the TFLM `tree` (default: the
    pinned sources, `prepare_tree()`); returns the figures (also written as `firmware.json`
    beside `firmware.elf` in `firmware_dir(...)`).

    `program`: "model" (the whole graph, `programs/model_runner.cc`), "schedule" (the export's
    patch schedule, `programs/schedule_runner.cc`) or "dump" (the whole graph keeping every
    tensor and writing each op's output, for `locate_on_target`).
    `keep_pool_bytes`: a schedule only; its interpreters built once at boot with their persistent
    data in a pool of that many bytes (`schedule_engine.h`'s `Keep`), not at each step.
    `block_bytes`: a schedule only; its SRAM block of that many bytes in place of the export's
    (`fitted_block_bytes`: what the target's own arenas need), built into a folder of its own.
    """
    from nlpool_keras.firmware.tree import prepare_tree

    target = get_target(target_name)
    summary = read_export(export_dir)
    # the C name of the export's symbols (exports before it was recorded: the .tflite's name)
    name = summary.get("name") or os.path.splitext(os.path.basename(summary["tflite"]))[0]
    if keep_pool_bytes is not None and (program != "schedule" or keep_pool_bytes <= 0):
        raise ValueError(f"keep_pool_bytes={keep_pool_bytes!r}: a positive pool size, for program='schedule' only")
    if block_bytes is not None and (program != "schedule" or keep_pool_bytes is not None or block_bytes <= 0):
        raise ValueError(
            f"block_bytes={block_bytes!r}: a positive block size, for program='schedule' without keep_pool_bytes"
        )
    if program == "schedule":
        block = (block_bytes or schedule_block_bytes(export_dir, name)) + (keep_pool_bytes or 0)
        check_fits(target, block, "the schedule's SRAM block" + (" and pool" if keep_pool_bytes else ""))
    else:
        check_fits(target, arena_with_margin(summary["tflm_arena_bytes"]))
    sources, include = _program_sources(export_dir, "schedule" if program == "schedule" else "model")
    if keep_pool_bytes is not None:
        with open(os.path.join(include, "schedule_engine.h")) as f:
            if "bool Keep(" not in f.read():
                raise FirmwareError(
                    f"{include}/schedule_engine.h cannot keep interpreters from boot (an export of an older "
                    f"nlpool): export the model again into {export_dir}"
                )
    library = tflm_library(tree or prepare_tree(), target_name, kernels, log=log)
    variant = "schedule-kept" if keep_pool_bytes is not None else "schedule-fitted" if block_bytes else program
    out = firmware_dir(export_dir, target_name, kernels, variant)
    os.makedirs(out, exist_ok=True)
    includes = [*library["includes"], f"-I{os.path.abspath(include)}", f"-I{board_file(target, '')}"]
    includes += [f"-I{out}", f"-I{PROGRAMS}", f"-I{KERNELS}"]  # a header written for this build (ssd_decoding.h), ours
    cxx, cc = _quoted_defines(library["cxxflags"]), _quoted_defines(library["ccflags"])
    defines = [f"NLPOOL_MODEL={name}"]
    decoding = summary.get("decoding")
    if program != "dump" and decoding and decoding["kind"] == "centroids":  # decode on the target too
        grid_h, grid_w = decoding["grid"]
        defines += [f"NLPOOL_CENTROID_THRESHOLD={decoding['threshold_code']}", f"NLPOOL_CENTROID_GRID_H={grid_h}"]
        defines += [f"NLPOOL_CENTROID_GRID_W={grid_w}", f"NLPOOL_CENTROID_CHANNELS={decoding['channels']}"]
    if program != "dump" and decoding and decoding["kind"] == "ssdlite":
        write_ssd_header(decoding, out)
        defines += ["NLPOOL_SSD"]
    if program == "dump":  # every tensor kept: the arena takes what the board's RAM leaves
        defines += ["NLPOOL_DUMP_TENSORS", f"NLPOOL_ARENA_BYTES={target.ram_bytes - target.stack_bytes - (256 << 10)}"]
    if keep_pool_bytes is not None:
        defines += [f"NLPOOL_KEEP_POOL_BYTES={int(keep_pool_bytes)}"]
    if block_bytes is not None:
        defines += [f"NLPOOL_BLOCK_BYTES={int(block_bytes)}"]
    objects = []
    for source in [*sources, *KERNEL_SOURCES, board_file(target, "startup.c")]:
        compiler, flags = ("arm-none-eabi-gcc", cc) if source.endswith(".c") else ("arm-none-eabi-g++", cxx)
        obj = os.path.join(out, os.path.splitext(os.path.basename(source))[0] + ".o")
        # TFLM's Makefile adds the optimization level per rule; a kernel gets its kernels' -O2
        flags = [f for f in flags if f != "-MD"] + (["-O2"] if source in KERNEL_SOURCES else [])
        _compile(compiler, flags, source, obj, includes, defines)
        objects.append(obj)
    elf = os.path.join(out, "firmware.elf")
    _link(library, objects, target, elf, target.stack_bytes)
    figures = elf_figures(elf, symbols=("tensor_arena", "sram_block", "persistent_pool", f"{name}_data", "op_ticks"))
    symbols = figures["symbols"]
    model_bytes = symbols.get(f"{name}_data", 0) if program != "schedule" else _schedule_model_bytes(export_dir)
    figures.update(
        elf=elf,
        program=program,
        target=target_name,
        kernels=kernels,
        machine=target.machine,
        name=name,
        arena_bytes=symbols.get("tensor_arena", symbols.get("sram_block", 0)),
        keep_pool_bytes=symbols.get("persistent_pool", 0),  # a kept schedule's pool, sized generously
        profiler_bytes=symbols.get("op_ticks", 0),  # the model runner's per-op table: a harness's, not deployed
        model_bytes=model_bytes,
        code_bytes=figures["flash_bytes"] - model_bytes,
        library=library["path"],
    )
    with open(os.path.join(out, "firmware.json"), "w") as f:
        json.dump(figures, f, indent=1)
    return figures


def _schedule_model_bytes(export_dir):
    """Bytes of the phase models (the arrays of `schedule_models.cc`)."""
    with open(os.path.join(export_dir, "schedule", "schedule_models.cc")) as f:
        return sum(int(n) for n in re.findall(r"_len = (\d+);", f.read()))
