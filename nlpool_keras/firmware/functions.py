"""Where a firmware's instructions go, function by function, on the emulated board.

    profile = function_profile(figures["elf"], "cortex-m4", inputs[:1])   # one image's instructions
    profile["functions"][0]   # {"function": "arm_nn_mat_mult_nt_t_s8", "instructions": 29117816, "share": 0.46}
    print(format_function_profile(profile, top=20))
    own, run = trace_functions(elf, "cortex-m4", inputs)   # {function: instructions} of a whole run

QEMU logs each block of code it translates (`-d in_asm`: the block's instructions) and each
block it executes (`-d exec`, with chaining off so that no block runs unlogged); the log goes
through a FIFO, read while the firmware runs. A block's instructions are credited to the
function its first instruction belongs to in the ELF's symbol table (a block ends at a branch,
so it lies in one function; names that share an address are listed together, demangled),
giving each function's own instructions, not those of its callees. `trace_functions` counts a
whole run: boot, every input, the runner's report; `function_profile` one image, as the
difference of a run over the image twice and a run over it once (the image costs the same each
time: the emulator is deterministic). Each instruction counts once: where
QEMU's `-icount` budget cuts a block short, the block's log entry says how many of its
instructions run; a block logged but stopped before it ran counts nothing; one stopped at an
I/O access counts the instructions before it, its I/O instruction running next as a block of
its own. (Tested on a loop of known length: `main` gets its disassembly's instructions exactly.)
"""

import bisect
import collections
import os
import subprocess
import tempfile
import threading

import numpy as np

from nlpool_keras.firmware.build import check_tools
from nlpool_keras.firmware.emulator import run_firmware
from nlpool_keras.firmware.errors import FirmwareError

# QEMU's TranslationBlock cflags: the instruction count of a block cut short (0: the whole block)
COUNT_MASK = 0x1FF
DEMANGLER = "arm-none-eabi-c++filt"
SYMBOLS = "arm-none-eabi-nm"
NO_SYMBOL = "(no symbol)"


class _TraceReader(threading.Thread):
    """Reads QEMU's block trace from the file descriptor `fd` as it is written: `executions` counts each
    (block start, cflags) run, `partial` the instructions of runs an I/O access cut short, by
    block start; `blocks` holds each block start's instruction addresses."""

    def __init__(self, fd):
        super().__init__(daemon=True)
        self.fd = fd
        self.executions = collections.Counter()
        self.partial = collections.Counter()
        self.blocks = {}
        self.error = None

    def run(self):
        addresses, last, rewound = [], None, None
        with os.fdopen(self.fd, "rb") as trace:
            for line in trace:  # every line is read, so QEMU never blocks on a full FIFO
                if self.error is not None:
                    continue
                try:
                    if line.startswith(b"Trace "):  # Trace 0: HOST [CS_BASE/PC/FLAGS/CFLAGS] SYMBOL
                        self._block(addresses)  # a block's listing ends where it first runs
                        addresses = []
                        fields = line[line.index(b"[") + 1 : line.index(b"]")].split(b"/")
                        last = int(fields[1], 16), int(fields[3], 16)
                        self.executions[last] += 1
                        if rewound is not None:  # the I/O instruction runs alone: those before it ran
                            self.partial[rewound] += self.blocks[rewound].index(last[0])
                            rewound = None
                    elif line.startswith(b"0x"):  # 0xPC:  ENCODING  MNEMONIC ...
                        addresses.append(int(line[2 : line.index(b":")], 16))
                    elif line.startswith(b"Stopped execution of TB chain"):  # the last block did not run
                        self.executions[last] -= 1
                    elif line.startswith(b"cpu_io_recompile"):  # the last block stopped at an I/O access
                        self.executions[last] -= 1
                        rewound = last[0]
                except (ValueError, LookupError) as error:
                    self.error = f"unreadable QEMU trace line {line[:120]!r}: {error}"

    def _block(self, addresses):
        if addresses and len(addresses) > len(self.blocks.get(addresses[0], ())):
            self.blocks[addresses[0]] = addresses


def _function_starts(elf):
    """(sorted start addresses, names) of the ELF's functions; names sharing an address are
    demangled and listed together."""
    listing = subprocess.run([SYMBOLS, "--defined-only", elf], capture_output=True, text=True, check=True).stdout
    aliases = collections.defaultdict(list)
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] in "tTwW":
            aliases[int(fields[0], 16) & ~1].append(fields[2])  # Thumb functions' odd addresses
    mangled = sorted({name for names in aliases.values() for name in names})
    result = subprocess.run([DEMANGLER], input="\n".join(mangled), capture_output=True, text=True, check=True)
    readable = dict(zip(mangled, result.stdout.splitlines(), strict=True))
    starts = sorted(aliases)
    return starts, [" = ".join(sorted({readable[name] for name in aliases[start]})) for start in starts]


def _trace_blocks(elf, target_name, inputs, timeout):
    """Runs `elf` over `inputs` with QEMU's block trace; returns ({block start address: its
    instructions run}, run_firmware's result)."""
    with tempfile.TemporaryDirectory(prefix="nlpool-trace-") as scratch:
        fifo = os.path.join(scratch, "trace")
        os.mkfifo(fifo)
        # the reading end, and a writing end held until QEMU is done, so that the reader sees the
        # trace's end only then, whether QEMU opened the FIFO or failed before
        reading = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        holding = os.open(fifo, os.O_WRONLY)
        os.set_blocking(reading, True)
        reader = _TraceReader(reading)
        reader.start()
        try:
            run = run_firmware(elf, target_name, inputs, timeout=timeout, trace=fifo)
        finally:
            os.close(holding)
            reader.join()
    if reader.error is not None:
        raise FirmwareError(reader.error)
    ran = collections.Counter(reader.partial)
    for (start, cflags), executions in reader.executions.items():
        ran[start] += executions * ((cflags & COUNT_MASK) or len(reader.blocks[start]))
    return ran, run


def _by_function(elf, blocks):
    """{function: instructions} of {block start address: instructions}."""
    starts, names = _function_starts(elf)
    own = collections.Counter()
    for start, instructions in blocks.items():
        index = bisect.bisect_right(starts, start) - 1
        own[names[index] if index >= 0 else NO_SYMBOL] += instructions
    return own


def trace_functions(elf, target_name, inputs=None, timeout=600):
    """Runs `elf` on the target's emulated board over `inputs` (as `run_firmware`) with QEMU's
    block trace; returns ({function: its own instructions in the whole run}, run_firmware's result)."""
    check_tools((SYMBOLS, DEMANGLER))
    blocks, run = _trace_blocks(elf, target_name, inputs, timeout)
    return _by_function(elf, blocks), run


def function_profile(elf, target_name, image, timeout=600):
    """One image's instructions by function: the firmware traced on `image` ((1, ...) int8)
    once and twice over, each block's count in the second run less the first's (boot and the
    final report cancel out, as does the first image's step report of a schedule). Returns
    {"instructions_per_image", "instructions_outside": the one-image run's boot and report,
    "functions": [{"function", "instructions", "share"}] most first, "run": the two-image run}."""
    image = np.asarray(image)
    if image.ndim < 2 or len(image) != 1:
        raise ValueError(f"image: one image, shape (1, ...), expected; received shape {image.shape}")
    check_tools((SYMBOLS, DEMANGLER))
    once, _ = _trace_blocks(elf, target_name, image, timeout)
    twice, run = _trace_blocks(elf, target_name, np.concatenate([image, image]), timeout)
    blocks = {start: twice[start] - once[start] for start in twice.keys() | once.keys()}
    if min(blocks.values(), default=0) < 0:
        raise FirmwareError(f"{os.path.basename(elf)} ran fewer instructions over two images than over one")
    per_image = {name: count for name, count in _by_function(elf, blocks).items() if count}
    total = sum(per_image.values())
    functions = [
        {"function": name, "instructions": count, "share": count / total}
        for name, count in sorted(per_image.items(), key=lambda item: -item[1])
    ]
    outside = sum(once.values()) - total
    return {"instructions_per_image": total, "instructions_outside": outside, "functions": functions, "run": run}


def format_function_profile(profile, top=20):
    """The `top` functions' own instructions, one line each, and the rest in one line."""
    lines = [
        f"instructions by function, one image ({profile['instructions_per_image']:,}; boot and report "
        f"{profile['instructions_outside']:,} more):"
    ]
    for row in profile["functions"][:top]:
        lines.append(f"  {row['instructions']:>13,}  {row['share']:6.1%}  {row['function'][:110]}")
    rest = profile["functions"][top:]
    if rest:
        count = sum(row["instructions"] for row in rest)
        lines.append(f"  {count:>13,}  {count / profile['instructions_per_image']:6.1%}  {len(rest)} other functions")
    return "\n".join(lines)
