"""Quiet by default: the libraries' own chatter stays out of what a person reads.

MediaPipe and TensorFlow Lite log from C++ through absl, straight to file descriptor 2, on
every model they load ("inference_feedback_manager", "Created TensorFlow Lite XNNPACK
delegate"); this mediapipe release logs through absl, which reads no environment variable
(GLOG_minloglevel no longer silences it), so the lines are dropped from fd 2 itself. protobuf's
deprecation warning is a Python warning and is filtered as one. ``--verbose`` keeps all of it.
"""

from __future__ import annotations

import atexit
import faulthandler
import logging
import os
import re
import sys
import threading
import warnings

NOISE = re.compile(
    rb"inference_feedback_manager\.cc"
    rb"|Created TensorFlow Lite XNNPACK delegate"
    rb"|All log messages before absl::InitializeLog\(\) is called"
)


def quiet(verbose: bool) -> None:
    """Filter the known noise out of this process's stderr (and its children's: they
    inherit the filtered descriptor). Call once, early, before the libraries load."""
    if verbose or os.environ.get("LIKENESS_VERBOSE"):
        os.environ["LIKENESS_VERBOSE"] = "1"  # a worker started by `serve --verbose` is loud
        return
    warnings.filterwarnings("ignore", "SymbolDatabase.GetPrototype", UserWarning)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "Context impl SQLiteImpl." etc.
    stream = sys.stderr
    if stream is not sys.__stderr__ or stream is None:
        return  # run in-process by a caller that took stderr over (a test runner): leave fd 2
    real = os.dup(2)
    read_end, write_end = os.pipe()
    stream.flush()
    os.dup2(write_end, 2)
    os.close(write_end)
    # A crash's traceback goes to the real stderr directly: it must not wait on the thread.
    faulthandler.enable(open(real, "w", closefd=False))  # noqa: SIM115 (lives as long as we do)
    forwarder = threading.Thread(
        target=_forward, args=(read_end, real), daemon=True, name="stderr-filter"
    )
    forwarder.start()

    def drain() -> None:  # at exit, every line written so far still reaches the terminal
        stream.flush()
        os.dup2(real, 2)  # closes the pipe's last write end: the forwarder reads to EOF
        forwarder.join(timeout=5)

    atexit.register(drain)


def _forward(read_end: int, real: int) -> None:
    with open(read_end, "rb") as lines:
        for line in iter(lines.readline, b""):
            if not NOISE.search(line):
                os.write(real, line)
