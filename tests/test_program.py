"""The pool of a schedule's program: placement against the steps' arenas, checked on a small
program whose best placement is worked out by hand."""

from nlpool_keras.export.program import (
    Access,
    Buffer,
    Program,
    Step,
    _lifetimes,
    _place,
    fit_program,
    program_sram,
    step_extents,
)


def _chain():
    """Three maps carried in a chain, each filled in two pieces while the one before is read:
    A (80 B) -> B (32 B) -> C (16 B) -> output. Lifetimes: A with B, B with C, never A with C."""
    buffers = [
        Buffer("image", (1, 1, 3), None),
        Buffer("A", (1, 1, 80), 0),
        Buffer("B", (1, 2, 16), 0),
        Buffer("C", (1, 2, 8), 0),
        Buffer("output", (1, 1, 4), None),
    ]
    halves = [((0, 1), (0, 1)), ((0, 1), (1, 2))]
    steps = [Step("A", 0, [Access(0, None)], [Access(1, None)])]
    steps += [Step("B", 1, [Access(1, None)], [Access(2, half)]) for half in halves]
    steps += [Step("C", 2, [Access(2, None)], [Access(3, half)]) for half in halves]
    steps += [Step("out", 3, [Access(3, None)], [Access(4, None)])]
    return Program([b"a", b"b", b"c", b"d"], buffers, steps, [4], 0)


# the chain's lifetimes by hand, in time points (step s reads at 2s, writes at 2s + 1): A from
# its write (1) to B's second read of it (4), B from 3 to C's second read (8), C from 7 to 10
SPANS = {0: (0, 0), 1: (1, 4), 2: (3, 8), 3: (7, 10), 4: (11, 11)}


def _live_buffers_overlap(program):
    held = [b for b, buf in enumerate(program.buffers) if buf.offset is not None]
    for i in held:
        for j in held:
            a, b = program.buffers[i], program.buffers[j]
            together = SPANS[i][0] <= SPANS[j][1] and SPANS[j][0] <= SPANS[i][1]
            a_end, b_end = (
                a.offset + a.shape[0] * a.shape[1] * a.shape[2],
                b.offset + b.shape[0] * b.shape[1] * b.shape[2],
            )
            if i < j and together and a.offset < b_end and b.offset < a_end:
                return True
    return False


def test_the_pool_is_placed_against_the_arenas():
    """With the largest map nearest the top, A takes the top, B sits under it and C reuses A's
    bytes: the step with the large arena (model 2, filling C from B) sees 112 B of pool, 212 B
    in all. Placing the buffers
    alive during that step first puts B at the top and C under it: 48 B of pool there, and A's
    112 B only beside the small arenas; 148 B is the best any placement reaches."""
    arenas = {0: 10, 1: 10, 2: 100, 3: 10}
    program = _chain()
    assert _lifetimes(program.steps) == SPANS
    largest_first, pool = _place(program.buffers, [1, 2, 3], _lifetimes(program.steps))
    largest_first = program._replace(buffers=largest_first, pool_bytes=pool)
    assert program_sram(largest_first, arenas)["peak_bytes"] == 212
    fitted = fit_program(program, arenas)
    assert program_sram(fitted, arenas)["peak_bytes"] == 148
    assert step_extents(fitted) == [112, 112, 112, 48, 48, 48]
    assert not _live_buffers_overlap(fitted) and not _live_buffers_overlap(largest_first)
    assert [b.offset for b in fitted.buffers] == [None, 32, 0, 32, None]
