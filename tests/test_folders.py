"""Datasets registered from a folder on the server: read in place, never written to, streamed from disk."""

import json
import os
import shlex
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import run_tlcore, tiny_spec
from PIL import Image

from tlcore import pipeline, runs
from tlcore.datasets import allowed_data_dirs, export_zip, ingest_folder, ingest_zip, load_dataset, server_folders
from tlcore.errors import DatasetError
from tlcore.evaluation import evaluate
from tlcore.training import train_run
from tlcore.workspace import Workspace


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every entry under `folder` (links not followed) with its size and modification time."""
    found = {}
    for current, folders, names in os.walk(folder):
        for name in folders + names:
            info = (Path(current) / name).lstat()
            found[str((Path(current) / name).relative_to(folder))] = (info.st_size, info.st_mtime_ns)
    return found


@pytest.fixture
def photos(tmp_path) -> Path:
    """Two classes of small JPEGs, one PNG with transparency, a text file, and links pointing outside."""
    root = tmp_path / "server" / "photos"
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        for index in range(5):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / name / f"{index}.jpg")
    Image.new("RGBA", (40, 40), (255, 0, 0, 128)).save(root / "cats" / "clear.png")
    (root / "dogs" / "notes.txt").write_text("not an image")
    secret = tmp_path / "secret"
    secret.mkdir()
    Image.new("RGB", (40, 40)).save(secret / "private.jpg")
    os.symlink(secret / "private.jpg", root / "cats" / "linked.jpg")
    os.symlink(secret, root / "dogs" / "linked-folder")
    return root


def test_a_folder_is_read_in_place_and_nothing_is_written_into_it(photos, workspace):
    before = snapshot(photos)
    dataset = ingest_folder(photos, workspace=workspace)
    assert snapshot(photos) == before
    assert dataset.classes == ("cats", "dogs") and len(dataset.items) == 11
    in_place = [item for item in dataset.items if item.in_place]
    assert len(in_place) == 10 and all(dataset.path(item).parent.parent == photos for item in in_place)
    converted = [item for item in dataset.items if not item.in_place]
    assert [item.source for item in converted] == ["cats/clear.png"]
    assert dataset.path(converted[0]).is_relative_to(workspace.root)
    reasons = {skipped.path: skipped.reason.render("en") for skipped in dataset.skipped}
    assert reasons["cats/linked.jpg"] == reasons["dogs/linked-folder/"] == "symbolic link (not followed)"
    assert reasons["dogs/notes.txt"].startswith("not an image")
    assert not any("secret" in str(path) for split in ("train", "val") for path in dataset.files(split)[0])


def test_undecodable_names_and_hidden_folders_are_listed_as_skipped_not_a_crash(photos, workspace):
    Image.new("RGB", (40, 40)).save(os.fsdecode(bytes(photos / "cats") + b"/caf\xe9.jpg"))
    os.mkdir(os.fsdecode(bytes(photos) + b"/d\xf6gs"))
    (photos / "dogs" / ".thumbnails").mkdir()
    Image.new("RGB", (40, 40)).save(photos / "dogs" / ".thumbnails" / "0.jpg")
    dataset = ingest_folder(photos, workspace=workspace)
    reasons = {skipped.path: skipped.reason.render("en") for skipped in dataset.skipped}
    assert reasons["cats/caf\\xe9.jpg"] == "name is not valid UTF-8"
    assert reasons["d\\xf6gs/"] == "name is not valid UTF-8 (folder not read)"
    assert reasons["dogs/.thumbnails/"] == "hidden folder"
    assert dataset.classes == ("cats", "dogs") and len(dataset.items) == 11
    json.dumps([skipped.path for skipped in dataset.skipped])


def test_a_name_with_a_backslash_is_copied_into_the_workspace_and_the_dataset_loads(photos, workspace):
    Image.new("RGB", (40, 40)).save(photos / "cats" / "a\\b.jpg")
    dataset = ingest_folder(photos, workspace=workspace)
    (item,) = [item for item in dataset.items if item.source == "cats/a\\b.jpg"]
    assert not item.in_place and dataset.path(item).is_relative_to(workspace.root)
    assert load_dataset(workspace, dataset.id).items == dataset.items


def test_a_workspace_inside_the_folder_is_not_read_and_a_folder_inside_the_workspace_is_refused(photos, tmp_path):
    inside = Workspace(photos / "workspace")
    (photos / "workspace").mkdir(exist_ok=True)
    first = ingest_folder(photos, workspace=inside)
    reasons = {skipped.path: skipped.reason.render("en") for skipped in first.skipped}
    assert reasons["workspace/"] == "the app's workspace (not read)"
    assert ingest_folder(photos, workspace=inside).id == first.id  # its own new files change nothing
    with pytest.raises(DatasetError, match="is inside the app's workspace"):
        ingest_folder(photos / "workspace", workspace=inside)


def test_registering_an_unchanged_folder_again_gives_the_same_dataset_and_a_changed_one_a_new_one(photos, workspace):
    first = ingest_folder(photos, workspace=workspace)
    assert ingest_folder(photos, workspace=workspace).id == first.id
    Image.new("RGB", (40, 40), (0, 0, 255)).save(photos / "dogs" / "new.jpg")
    second = ingest_folder(photos, workspace=workspace)
    assert second.id != first.id and len(second.items) == len(first.items) + 1


def test_the_app_may_only_register_folders_the_operator_allowed(photos, workspace, tmp_path):
    allowed = [tmp_path / "server"]
    assert ingest_folder(tmp_path / "server", workspace=workspace, allowed_roots=allowed).classes == ("cats", "dogs")
    with pytest.raises(DatasetError, match="not inside a folder the operator allowed .* TLCORE_DATA_DIRS"):
        ingest_folder(tmp_path / "secret", workspace=workspace, allowed_roots=allowed)
    os.symlink(tmp_path / "secret", tmp_path / "server" / "escape")
    with pytest.raises(DatasetError, match="not inside a folder the operator allowed"):
        ingest_folder(tmp_path / "server" / "escape", workspace=workspace, allowed_roots=allowed)
    assert ingest_folder(photos, workspace=workspace, allowed_roots=allowed).classes == ("cats", "dogs")


def test_allowed_folders_come_from_the_setting_and_missing_ones_are_left_out(tmp_path):
    setting = os.pathsep.join([str(tmp_path), str(tmp_path / "missing"), ""])
    assert allowed_data_dirs(setting) == [tmp_path.resolve()]
    assert allowed_data_dirs("") == []


@pytest.mark.parametrize(
    "name, expected",
    [
        ("missing", "There is no folder"),
        ("file.txt", "is a file, not a folder"),
    ],
)
def test_a_path_that_is_not_a_folder_gets_a_message(name, expected, tmp_path, workspace):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DatasetError, match=expected):
        ingest_folder(tmp_path / name, workspace=workspace)


def test_a_tampered_manifest_cannot_point_outside_the_folder(photos, workspace):
    dataset = ingest_folder(photos, workspace=workspace)
    manifest_path = dataset.root / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    first = next(item for item in manifest["items"] if item["in_place"])
    first["file"] = "../../secret/private.jpg"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="is damaged"):
        load_dataset(workspace, dataset.id)


def test_a_dataset_too_large_for_memory_streams_the_same_batches_from_disk(workspace, demo_zip_bytes, monkeypatch):
    dataset = ingest_zip(demo_zip_bytes, workspace=workspace, name="demo.zip")
    assert not pipeline.streams_from_disk(dataset, 32)
    in_memory = pipeline.make_pipelines(dataset, 32, 8, seed=3)
    monkeypatch.setenv("TLCORE_PIPELINE_MEMORY", "1000")
    assert pipeline.streams_from_disk(dataset, 32)
    streamed = pipeline.make_pipelines(dataset, 32, 8, seed=3)
    for _ in range(2):  # two epochs: the reshuffled order is the same too
        for (a, labels_a), (b, labels_b) in zip(in_memory[0], streamed[0], strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
            np.testing.assert_array_equal(labels_a.numpy(), labels_b.numpy())
    for (a, _), (b, _) in zip(in_memory[1], streamed[1], strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_run_on_a_folder_trains_and_fails_clearly_once_an_image_has_gone(photos, workspace):
    dataset = ingest_folder(photos, workspace=workspace)
    assert pipeline.streams_from_disk(dataset, 32)
    spec = tiny_spec(dataset.id, num_classes=2, strategy="scratch", epochs=1, batch_size=4)
    trained = train_run(workspace, runs.create_run(spec, workspace).id)
    assert trained.status == "completed"
    (photos / "dogs" / "0.jpg").unlink()
    info = train_run(workspace, runs.create_run(replace(spec, seed=1), workspace).id)
    gone = (
        f"The image 'dogs/0.jpg' of dataset 'photos' is no longer in {str(photos)!r}; "
        "register the folder again to train on what it holds now."
    )
    assert info.status == "failed" and info.error.render("en") == gone
    with pytest.raises(DatasetError) as refused:
        evaluate(workspace, trained.id)
    assert str(refused.value) == gone
    os.utime(photos / "cats" / "1.jpg", ns=(1, 1))  # rewritten since registration
    with pytest.raises(DatasetError) as refused:
        load_dataset(workspace, dataset.id).check_source()
    assert str(refused.value).startswith(f"The image 'cats/1.jpg' of dataset 'photos' has changed in {str(photos)!r}")


def test_the_evaluation_of_a_folder_run_shows_the_images_from_the_folder(photos, workspace):
    dataset = ingest_folder(photos, workspace=workspace)
    spec = tiny_spec(dataset.id, num_classes=2, strategy="scratch", epochs=1, batch_size=4)
    trained = train_run(workspace, runs.create_run(spec, workspace).id)
    evaluation = evaluate(workspace, trained.id)
    shown = [evaluation.image_path(image) for image in evaluation.images]  # the gallery and Grad-CAM read these
    assert shown and all(path.is_file() for path in shown)
    assert any(path.is_relative_to(photos) for path in shown)


def test_the_command_line_trains_on_a_data_dir(photos, tmp_path):
    result = run_tlcore(
        "train",
        "--data-dir",
        str(photos),
        "--backbone",
        "mobilenet_0.25",
        "--weights",
        "none",
        "--image-size",
        "32",
        "--strategy",
        "scratch",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--json",
        workspace=tmp_path / "ws",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout[result.stdout.index("{") :])["status"] == "completed"
    missing = run_tlcore("train", "--data-dir", str(tmp_path / "nowhere"), workspace=tmp_path / "ws")
    assert missing.returncode == 2
    assert (
        missing.stderr.strip().splitlines()[-1] == f"error: There is no folder {str(tmp_path / 'nowhere')!r} "
        "on this machine; check the path."
    )


def test_a_dataset_exported_as_a_zip_is_the_same_dataset_when_ingested_elsewhere(photos, workspace, tmp_path):
    from tlcore.workspace import Workspace

    original = ingest_folder(photos, workspace=workspace)
    exported = export_zip(original, workspace)
    assert exported.is_relative_to(workspace.root)
    elsewhere = ingest_zip(exported, workspace=Workspace(tmp_path / "elsewhere"))
    assert elsewhere.classes == original.classes and elsewhere.split_source == "given"
    for split in ("train", "val"):
        before, after = original.files(split), elsewhere.files(split)
        assert before[1] == after[1]
        assert [path.read_bytes() for path in before[0]] == [path.read_bytes() for path in after[0]]


def test_inspect_of_a_folder_registers_it_and_prints_its_report(photos, tmp_path):
    result = run_tlcore("inspect", str(photos), "--json", workspace=tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["classes"] == ["cats", "dogs"] and report["totals"]["total"] == 11
    assert {"path": "cats/linked.jpg", "reason": "symbolic link (not followed)"} in report["skipped"]


def test_the_reproduce_commands_for_a_folder_split_by_seed_give_the_same_split(photos, workspace, tmp_path):
    from tlcore.codegen import reproduce_commands

    dataset = ingest_folder(photos, workspace=workspace, val_fraction=0.3, seed=5)
    command = shlex.split(reproduce_commands(dataset, "unused.zip").splitlines()[1])
    assert command[command.index("--data-dir") + 1] == str(photos)
    val_fraction, seed = float(command[command.index("--val-fraction") + 1]), int(command[command.index("--seed") + 1])
    elsewhere = ingest_folder(photos, workspace=Workspace(tmp_path / "elsewhere"), val_fraction=val_fraction, seed=seed)
    assert [(item.source, item.split) for item in elsewhere.items] == [
        (item.source, item.split) for item in dataset.items
    ]


def test_only_folders_that_look_like_datasets_are_offered_not_their_class_folders(tmp_path):
    root = tmp_path / "photos"
    for class_name in ("cats", "dogs"):
        (root / "pets" / class_name).mkdir(parents=True)
        (root / "pets" / class_name / "1.jpg").write_bytes(b"not read")
    for split in ("train", "val"):
        (root / "archive" / "flowers" / split / "daisy").mkdir(parents=True)
    (root / "empty" / "a").mkdir(parents=True)
    (root / ".hidden" / "x").mkdir(parents=True)
    assert server_folders([root]) == [root / "archive" / "flowers", root / "pets"]
