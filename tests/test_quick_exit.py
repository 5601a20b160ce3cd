"""A command that has loaded TensorFlow ends without tearing it down (`tlcore.cli.quick_exit`), and loses
nothing by it: its exit status, what it printed, and what the exit handlers registered after it do."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from conftest import ROOT

PROGRAM = textwrap.dedent(
    """
    import atexit, sys, types
    from pathlib import Path
    from tlcore.cli import quick_exit

    quick_exit.arm()
    sys.modules.setdefault("tensorflow", types.ModuleType("tensorflow"))  # as if a command had imported it
    atexit.register(Path(sys.argv[1]).write_text, "removed")  # as autograph removes its temporary files
    print("the last line, still in the buffer", end="")
    quick_exit.finish(int(sys.argv[2]))
    """
)
# Buffered, as a command's output is when it goes to a file or a pipe.
BUFFERED = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}


def run(program: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    options = {"capture_output": True, "text": True, **kwargs}
    return subprocess.run([sys.executable, "-c", program, *args], cwd=ROOT, env=BUFFERED, timeout=120, **options)


def test_the_status_the_output_and_the_later_exit_handlers_survive_the_early_end(tmp_path):
    marker = tmp_path / "handler-ran"
    for status in (0, 1, 2):
        done = run(PROGRAM, str(marker), str(status))
        assert done.returncode == status, done.stderr
        assert done.stdout == "the last line, still in the buffer"
        assert marker.read_text() == "removed"
        marker.unlink()


def test_output_that_cannot_be_written_out_fails_the_command_as_python_would(tmp_path):
    with open("/dev/full", "w") as full:  # every write to it fails: no space left
        done = run(PROGRAM, str(tmp_path / "m"), "0", stdout=full, capture_output=False, stderr=subprocess.PIPE)
    assert done.returncode == 120


def test_a_command_that_raised_is_torn_down_as_usual(tmp_path):
    program = PROGRAM.replace("quick_exit.finish(int(sys.argv[2]))", "raise SystemExit(int(sys.argv[2]))")
    done = run(program, str(tmp_path / "m"), "4")
    assert done.returncode == 4
    assert (tmp_path / "m").read_text() == "removed"


def test_the_command_line_is_armed_before_tensorflow_is_imported():
    """Its exit handlers (autograph's temporary files) must run before the early end: importing the
    command line must not import TensorFlow."""
    done = run("import sys, tlcore.__main__; print(sorted({'tensorflow', 'keras'} & set(sys.modules)))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
