"""`train --distribute`: one spec on two CPU devices, or on two local workers, trains as one device does.

Every distributed run is a `python -m tlcore` process of its own: logical devices and a multi-worker
runtime must be configured before TensorFlow starts, which it has in this test process already.
"""

import json
import os
import socket
import subprocess
import sys
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from helpers import run_tlcore, tiny_spec, wait_for

from tlcore import metrics_log, runs
from tlcore.datasets import ingest_zip
from tlcore.spec import Augmentation
from tlcore.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent

# Splits this process's CPU into logical devices before anything else touches TensorFlow, then runs the CLI.
LAUNCHER = """
import sys
import tensorflow as tf
devices = int(sys.argv[1])
if devices > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
from tlcore.cli import main
sys.exit(main(sys.argv[2:]))
"""

CASES = {
    # The whole base frozen: the cached-features path, under distribution too.
    "transfer": {"strategy": "transfer", "frozen_layers": None, "augmentation": Augmentation(), "lr": 1e-2},
    # Fine-tuning with augmentation: the full path, every layer after the 60th learning.
    "finetune": {"strategy": "finetune", "frozen_layers": 60, "augmentation": Augmentation(flip=True), "lr": 1e-3},
}


def launch(workspace: Path, *args: str, devices: int = 1, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(devices), "--workspace", str(workspace), "train", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )


def finish(process: subprocess.Popen, timeout: float = 300) -> dict:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"exit {process.returncode}\n{out}\n{err[-3000:]}"
    return json.loads(out[out.index("{") :])


@contextmanager
def killed_on_failure(*processes: subprocess.Popen):
    """Kill `processes` if the block fails (a failed test must not leave a 500-epoch trainer behind)."""
    try:
        yield
    except BaseException:
        for process in processes:
            process.kill()
        raise


def epochs(workspace: Path, run_id: str) -> list[dict]:
    frame = metrics_log.read_metrics(Workspace(workspace), run_id)
    return frame[frame["kind"] == "epoch"].to_dict("records")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def tf_config(ports: list[int], index: int) -> str:
    return json.dumps(
        {"cluster": {"worker": [f"localhost:{port}" for port in ports]}, "task": {"type": "worker", "index": index}}
    )


@pytest.fixture(scope="module")
def demo_zip_path(tmp_path_factory, demo_zip_bytes) -> Path:
    path = tmp_path_factory.mktemp("data") / "demo.zip"
    path.write_bytes(demo_zip_bytes)
    return path


@pytest.fixture(scope="module")
def spec_files(tmp_path_factory, calibrated_weights) -> dict[str, Path]:
    """One spec.json per case; `dataset` is replaced by the zip given with `--data`."""
    folder = tmp_path_factory.mktemp("specs")
    files = {}
    for name, case in CASES.items():
        spec = tiny_spec(
            "0" * 16,
            weights=str(calibrated_weights),
            strategy=case["strategy"],
            frozen_layers=case["frozen_layers"],
            epochs=3,
            batch_size=8,
            learning_rate=case["lr"],
            augmentation=case["augmentation"],
            dropout=0.0,  # each replica draws its own dropout mask, so only a dropout-free head can match
        )
        files[name] = folder / f"{name}.json"
        files[name].write_text(json.dumps(spec.to_dict()))
    return files


@pytest.fixture(scope="module")
def single_device(tmp_path_factory, spec_files, demo_zip_path) -> dict[str, tuple[Path, dict]]:
    """Each case trained on one device: the reference."""
    done = {}
    for name, spec in spec_files.items():
        workspace = tmp_path_factory.mktemp(f"single-{name}")
        done[name] = workspace, finish(launch(workspace, "--spec", str(spec), "--data", str(demo_zip_path)))
    return done


def assert_same_training(workspace: Path, info: dict, reference: tuple[Path, dict]) -> None:
    ours, theirs = epochs(workspace, info["id"]), epochs(reference[0], reference[1]["id"])
    assert len(ours) == len(theirs) == 3
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(
            [row[key] for row in ours], [row[key] for row in theirs], rtol=1e-3, atol=1e-4, err_msg=key
        )
    assert ours[-1]["loss"] < ours[0]["loss"]  # it learns
    assert info["best_val_accuracy"] == pytest.approx(reference[1]["best_val_accuracy"])
    assert (Path(info["dir"]) / runs.BEST_MODEL_FILE).is_file()


@pytest.mark.parametrize("case", CASES)
def test_mirrored_on_two_cpu_devices_trains_as_one_device_does(
    case, tmp_path, spec_files, demo_zip_path, single_device
):
    info = finish(
        launch(
            tmp_path,
            "--spec",
            str(spec_files[case]),
            "--data",
            str(demo_zip_path),
            "--distribute",
            "mirrored",
            devices=2,
        )
    )
    assert info["status"] == "completed"
    status = runs.RunStatus.read(Path(info["dir"]))
    assert (status.distribute, status.replicas, status.global_batch_size) == ("mirrored", 2, 8)
    assert status.path == ("features" if case == "transfer" else "full")
    assert_same_training(tmp_path, info, single_device[case])


def test_scale_batch_keeps_the_batch_on_each_replica_and_scales_the_learning_rate(tmp_path, spec_files, demo_zip_path):
    info = finish(
        launch(
            tmp_path,
            "--spec",
            str(spec_files["transfer"]),
            "--data",
            str(demo_zip_path),
            "--distribute",
            "mirrored",
            "--scale-batch",
            devices=2,
        )
    )
    status = runs.RunStatus.read(Path(info["dir"]))
    assert status.global_batch_size == 16
    assert status.steps_per_epoch == 2  # 18 training images in batches of 16
    assert "learning rates scaled by 2" in status.distribute_note.render("en")
    assert status.learning_rate == pytest.approx(2e-2)  # the spec's 1e-2, times 2 replicas
    rows = epochs(tmp_path, info["id"])
    assert rows[-1]["loss"] < rows[0]["loss"]


def test_from_scratch_on_two_devices_trains_when_the_last_batch_is_too_small_to_share(tmp_path, demo_zip_path):
    training_images = len(ingest_zip(demo_zip_path, workspace=Workspace(tmp_path / "count")).files("train")[1])
    spec = tmp_path / "scratch.json"
    batch_size = training_images - 1  # an epoch ends with a batch of one image, for two replicas
    spec.write_text(json.dumps(tiny_spec("0" * 16, strategy="scratch", epochs=2, batch_size=batch_size).to_dict()))
    info = finish(
        launch(tmp_path, "--spec", str(spec), "--data", str(demo_zip_path), "--distribute", "mirrored", devices=2)
    )
    assert info["status"] == "completed", info.get("error")
    status = runs.RunStatus.read(Path(info["dir"]))
    assert status.steps_per_epoch == 1  # the batch of one image is left out
    assert len(epochs(tmp_path, info["id"])) == 2


def test_two_local_workers_train_as_one_device_and_only_the_chief_writes(
    tmp_path, spec_files, demo_zip_path, single_device
):
    ports = [free_port(), free_port()]
    chief_ws, worker_ws = tmp_path / "chief", tmp_path / "worker"
    common = ("--spec", str(spec_files["transfer"]), "--data", str(demo_zip_path), "--distribute", "multiworker")
    chief = launch(chief_ws, *common, env={"TF_CONFIG": tf_config(ports, 0)})
    worker = launch(worker_ws, *common, env={"TF_CONFIG": tf_config(ports, 1)})
    info, worker_out = finish(chief), finish(worker)
    assert worker_out == {"worker": "worker:1", "status": "completed"}
    status = runs.RunStatus.read(Path(info["dir"]))
    assert (status.distribute, status.replicas, status.workers) == ("multiworker", 2, 2)
    assert_same_training(chief_ws, info, single_device["transfer"])
    assert not (worker_ws / "runs").exists() or not any((worker_ws / "runs").iterdir())


def test_a_stop_on_the_chief_ends_every_worker_at_the_end_of_the_epoch(tmp_path, spec_files, demo_zip_path):
    spec = json.loads(spec_files["transfer"].read_text())
    spec["epochs"] = 500
    long_spec = tmp_path / "long.json"
    long_spec.write_text(json.dumps(spec))
    ports = [free_port(), free_port()]
    common = ("--spec", str(long_spec), "--data", str(demo_zip_path), "--distribute", "multiworker")
    chief = launch(tmp_path / "chief", *common, env={"TF_CONFIG": tf_config(ports, 0)})
    worker = launch(tmp_path / "worker", *common, env={"TF_CONFIG": tf_config(ports, 1)})
    workspace = Workspace(tmp_path / "chief")
    with killed_on_failure(chief, worker):
        run_id = wait_for(
            lambda: (listed := runs.list_runs(workspace)) and listed[0].epoch and listed[0].epoch >= 2 and listed[0].id,
            what="the multi-worker run's second epoch",
        )
    runs.stop(workspace, run_id)
    stopped_after = runs.list_runs(workspace)[0].epoch
    info, worker_out = finish(chief, timeout=120), finish(worker, timeout=120)
    assert info["status"] == "stopped"
    assert worker_out == {"worker": "worker:1", "status": "stopped"}
    # Every worker ends at the end of the epoch the stop arrived in (or the next, when it arrived at the vote).
    assert 2 <= len(epochs(tmp_path / "chief", info["id"])) <= stopped_after + 2


def test_a_worker_that_dies_fails_the_chief_run_which_keeps_its_best_model(tmp_path, spec_files, demo_zip_path):
    spec = json.loads(spec_files["transfer"].read_text())
    spec["epochs"] = 500
    long_spec = tmp_path / "long.json"
    long_spec.write_text(json.dumps(spec))
    ports = [free_port(), free_port()]
    common = ("--spec", str(long_spec), "--data", str(demo_zip_path), "--distribute", "multiworker")
    chief = launch(tmp_path / "chief", *common, env={"TF_CONFIG": tf_config(ports, 0)})
    worker = launch(tmp_path / "worker", *common, env={"TF_CONFIG": tf_config(ports, 1)})
    workspace = Workspace(tmp_path / "chief")
    with killed_on_failure(chief, worker):
        wait_for(
            lambda: (listed := runs.list_runs(workspace)) and listed[0].epoch >= 2,
            what="the multi-worker run to finish an epoch",
        )
    worker.kill()
    worker.wait()
    out, _ = chief.communicate(timeout=180)
    info = json.loads(out[out.index("{") :])
    assert info["status"] == "failed"
    # TensorFlow's cause varies with timing ("Connection reset by peer", or the missed heartbeats of task:1).
    assert info["error"].startswith("Training failed: UnavailableError: ")
    assert (Path(info["dir"]) / runs.BEST_MODEL_FILE).is_file()
    assert len(epochs(tmp_path / "chief", info["id"])) >= 1


@pytest.mark.parametrize("differs", ["data", "seed"])
def test_workers_given_different_jobs_both_stop_with_a_message_saying_so(differs, tmp_path, spec_files, demo_zip_path):
    worker_zip, worker_spec = demo_zip_path, spec_files["transfer"]
    if differs == "data":
        worker_zip = tmp_path / "fewer.zip"
        with zipfile.ZipFile(demo_zip_path) as source, zipfile.ZipFile(worker_zip, "w") as target:
            images = [entry for entry in source.infolist() if not entry.is_dir()]
            for entry in images[:-1]:
                target.writestr(entry, source.read(entry))
    else:
        worker_spec = tmp_path / "reseeded.json"
        worker_spec.write_text(json.dumps({**json.loads(spec_files["transfer"].read_text()), "seed": 7}))
    ports = [free_port(), free_port()]
    chief = launch(
        tmp_path / "chief",
        "--spec",
        str(spec_files["transfer"]),
        "--data",
        str(demo_zip_path),
        "--distribute",
        "multiworker",
        env={"TF_CONFIG": tf_config(ports, 0)},
    )
    worker = launch(
        tmp_path / "worker",
        "--spec",
        str(worker_spec),
        "--data",
        str(worker_zip),
        "--distribute",
        "multiworker",
        env={"TF_CONFIG": tf_config(ports, 1)},
    )
    chief_out, _ = chief.communicate(timeout=300)
    _, worker_err = worker.communicate(timeout=300)
    info = json.loads(chief_out[chief_out.index("{") :])
    assert info["status"] == "failed"
    assert "The workers of this job are not training the same thing" in info["error"]
    assert "give every worker the same --spec and the same data" in worker_err.strip().splitlines()[-1]
    assert worker.returncode == 2


@pytest.mark.parametrize(
    "config, expected",
    [
        (None, "needs the TF_CONFIG environment variable"),
        ("{not json", "TF_CONFIG must be JSON like"),
        ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 3}}', "not in its cluster"),
        (
            '{"cluster": {"worker": ["localhost:1"], "ps": ["localhost:2"]}, "task": {"type": "worker", "index": 0}}',
            "takes `chief` and `worker` tasks only; TF_CONFIG has ps.",
        ),
    ],
)
def test_multiworker_without_a_usable_tf_config_says_what_to_set(config, expected, tmp_path, demo_zip_path):
    result = run_tlcore(
        "train",
        "--data",
        str(demo_zip_path),
        "--distribute",
        "multiworker",
        workspace=tmp_path,
        env={"TF_CONFIG": config},  # None: not set at all
    )
    assert result.returncode == 2
    assert expected in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_runs_spec_and_dataset_zip_train_the_same_run_on_another_machine(
    tmp_path, spec_files, demo_zip_path, single_device
):
    """What the app's "Train it on another machine" offers: spec.json, the dataset zip and the command."""
    from tlcore.codegen import reproduce_commands
    from tlcore.datasets import export_zip, load_dataset

    here, info = single_device["transfer"]
    workspace = Workspace(here)
    dataset = load_dataset(workspace, json.loads((Path(info["dir"]) / runs.SPEC_FILE).read_text())["dataset"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "spec.json").write_bytes((Path(info["dir"]) / runs.SPEC_FILE).read_bytes())
    (elsewhere / "dataset.zip").write_bytes(export_zip(dataset, workspace).read_bytes())
    command = reproduce_commands(dataset, "dataset.zip").splitlines()[1].split()
    assert command[:4] == ["python", "-m", "tlcore", "train"]
    process = subprocess.Popen(
        [sys.executable, "-m", "tlcore", "--workspace", str(elsewhere / "ws"), *command[3:], "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    again = finish(process)
    assert_same_training(elsewhere / "ws", again, single_device["transfer"])
