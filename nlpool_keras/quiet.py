"""Output free of other tools' log noise: the `nlpool` command and the benchmark scripts print
only their own lines.

    if __name__ == "__main__":
        run_quietly(main)
"""

import contextlib
import io
import os
import sys
import tempfile
import warnings


@contextlib.contextmanager
def quiet_native_logs():
    """The command prints only its own output: what C/C++ libraries write to file descriptor 2
    (TensorFlow's and absl's start-up lines, the TFLite converter's prints) goes to a temporary
    file, while Python's `sys.stderr` (errors, warnings) still reaches the terminal. After an
    unexpected exception the captured text's tail is shown. NLPOOL_VERBOSE=1 turns this off."""
    if os.environ.get("NLPOOL_VERBOSE") == "1":
        yield
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    python_stderr = sys.stderr
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        if _writes_to_fd2(python_stderr):  # else it already writes elsewhere (a pytest capture, a file)
            sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(terminal), "wb"), line_buffering=True)
        try:
            yield
        except BaseException as error:
            if not isinstance(error, (SystemExit, KeyboardInterrupt)):
                captured.seek(0)
                tail = [line for line in captured.read().decode(errors="replace").splitlines() if line][-20:]
                if tail:
                    print("native log (last lines):\n  " + "\n  ".join(tail), file=sys.stderr)
            raise
        finally:
            sys.stderr.flush()
            sys.stderr = python_stderr
            os.dup2(terminal, 2)
            os.close(terminal)


def _writes_to_fd2(stream):
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


def silence_python_logs():
    """TensorFlow, absl and h5py log only errors; the TFLite interpreter's deprecation notice and
    deprecation warnings are not shown."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import logging

    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run_quietly(function, *args, **kwargs):
    """Calls `function` with Python's logs silenced and native logs captured; returns its result."""
    silence_python_logs()
    with quiet_native_logs():
        return function(*args, **kwargs)
