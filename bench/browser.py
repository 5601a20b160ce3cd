"""What the app's benchmarks share: a Streamlit server over a workspace, headless Chromium, a clock that
reads each rerun's time off the app's websocket, and a description of the machine.

Chromium is Debian's (`apt-get install chromium`), driven by Playwright; the server is
`streamlit run app.py` from this checkout, as `tests/test_app_browser.py` starts it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Per-epoch points in the first chart of the Train page (Vega draws SVG: one path per point). A chart
# left from the run shown before is stale while the page reruns: it does not count.
COUNT_POINTS = """() => {
    const chart = [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stVegaLiteChart"]')]
        .find(element => !element.closest('[data-stale="true"]'));
    return chart ? chart.querySelectorAll('.mark-symbol.role-mark path').length : -1;
}"""


@contextlib.contextmanager
def streamlit_server(workspace: Path, env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    """`streamlit run app.py` over `workspace`, headless, on a free port: yields its URL and pid."""
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--browser.gatherUsageStats", "false"]
    environment = {**os.environ, **env, "TLCORE_WORKSPACE": str(workspace), "PYTHONPATH": str(ROOT)}
    with open(log, "wb") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start; see {log}")
            time.sleep(0.5)
        yield url, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium under Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def wait_until_idle(page: Any, timeout: float = 90_000) -> None:
    """Wait until the script has finished and nothing on the page is stale for 300 ms."""
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            const idle = app && app.dataset.testScriptState === "notRunning"
                && !document.querySelector('[data-stale="true"], [data-testid="stSkeleton"]');
            if (!idle) { window.__idleSince = null; return false; }
            window.__idleSince = window.__idleSince || performance.now();
            return performance.now() - window.__idleSince > 300;
        }""",
        polling=100,
        timeout=timeout,
    )


class RerunClock:
    """The time of each script run of one page, from the browser's rerun request to the server's
    `script_finished`, read off the app's websocket (Streamlit's protobuf messages)."""

    def __init__(self, page: Any) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self._back, self._forward = BackMsg, ForwardMsg
        self._pending: tuple[float, bool] | None = None
        self.runs: list[dict[str, Any]] = []
        self.recording = False
        page.on("websocket", self._watch)

    def _watch(self, websocket: Any) -> None:
        websocket.on("framesent", self._sent)
        websocket.on("framereceived", self._received)

    def _sent(self, payload: Any) -> None:
        if isinstance(payload, str):
            return
        message = self._back.FromString(payload)
        if message.WhichOneof("type") == "rerun_script":
            self._pending = (time.perf_counter(), bool(message.rerun_script.fragment_id))

    def _received(self, payload: Any) -> None:
        if isinstance(payload, str) or self._pending is None:
            return
        try:
            message = self._forward.FromString(payload)
        except Exception:
            return
        if message.WhichOneof("type") == "script_finished":
            started, fragment = self._pending
            self._pending = None
            if self.recording:
                self.runs.append({"seconds": round(time.perf_counter() - started, 3), "fragment": fragment})


def machine() -> dict[str, Any]:
    """The CPU, cores, memory and load average of this machine, and the library versions that matter."""
    from importlib.metadata import version

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), platform.processor())
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 2**20, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "streamlit": version("streamlit"),
        "tensorflow": version("tensorflow") if _installed("tensorflow") else version("tensorflow-cpu"),
    }


def _installed(package: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(package)
    except PackageNotFoundError:
        return False
    return True


def memory_of(pid: int) -> dict[str, float]:
    """A process's resident memory (RSS) and its proportional share of shared pages (PSS), in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss"):
            fields[name.lower() + "_mib"] = round(int(rest.split()[0]) / 1024, 1)
    return fields


def wait_for_quiet(max_load: float, timeout: float = 600) -> float:
    """Wait (up to `timeout` s) until the 1-minute load average is at most `max_load`; return it."""
    deadline = time.monotonic() + timeout
    while os.getloadavg()[0] > max_load and time.monotonic() < deadline:
        time.sleep(5)
    return os.getloadavg()[0]


def end_spare(workspace: Any, timeout: float = 30) -> None:
    """Kill the spare waiting for `workspace`'s next run (`tlcore.spare`), if any, and wait until it is gone.

    A spare outlives the server that started it: a benchmark ends its own before removing the workspace.
    """
    lock = workspace.runs_dir / ".spare.lock"
    if not lock.exists():
        return
    words = lock.read_text().split()
    if words and words[0].isdigit():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(words[0]), signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(lock, "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                time.sleep(0.1)
    raise TimeoutError(f"the spare of {workspace.root} did not end")
