"""A command that has loaded TensorFlow ends without tearing it down (`tlcore.cli.quick_exit`), and loses
nothing by it: its exit status, what it printed, and what the exit handlers registered after it do."""

from __future__ import annotations

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


def test_the_status_the_output_and_the_later_exit_handlers_survive_the_early_end(tmp_path):
    marker = tmp_path / "handler-ran"
    for status in (0, 1, 2):
        done = subprocess.run(
            [sys.executable, "-c", PROGRAM, str(marker), str(status)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        assert done.returncode == status, done.stderr
        assert done.stdout == "the last line, still in the buffer"
        assert marker.read_text() == "removed"
        marker.unlink()


def test_a_command_that_raised_is_torn_down_as_usual(tmp_path):
    program = PROGRAM.replace("quick_exit.finish(int(sys.argv[2]))", "raise SystemExit(int(sys.argv[2]))")
    done = subprocess.run(
        [sys.executable, "-c", program, str(tmp_path / "m"), "4"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 4
    assert (tmp_path / "m").read_text() == "removed"
