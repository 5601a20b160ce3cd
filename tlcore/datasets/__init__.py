"""Datasets: safe ingestion of uploaded zips and server folders into the workspace, and what they become.

A dataset is what one upload becomes: a folder `datasets/<id>/` with a manifest (classes, every image
with its label and split, every skipped file and why) and the images, stored as 8-bit RGB JPEG or PNG
so that every reader decodes them the same way. The id is a hash of the images (class, split, name,
bytes) with the split settings: the same images uploaded twice, zipped or as a folder, are the same
dataset.

One job per module:

- `archive`: the zip defence (`Limits`; opening and scanning the archive; the entry checks);
- `layout`: class folders, system junk, a given or a seeded split, decided from names alone;
- `uploads`: `ingest_zip` and `ingest_files` (a folder sent by a browser), an upload from end to end;
- `folders`: `ingest_folder`, a folder on the server read in place;
- `storage`: the manifest, publishing, loading and listing, `export_zip`;
- `dataset`: `Dataset`, `Item`, `SkippedFile`, as the rest of the program sees them.

Images themselves are converted and decoded by `tlcore.images`.
"""

from tlcore.datasets.archive import FOLDER_LIMITS, UPLOAD_LIMITS, Limits, ZipSource
from tlcore.datasets.dataset import MANIFEST_FORMAT, SPLITS, Dataset, Item, SkippedFile, stratified_rows
from tlcore.datasets.folders import allowed_data_dirs, ingest_folder, server_folders
from tlcore.datasets.storage import delete_dataset, export_zip, list_datasets, load_dataset
from tlcore.datasets.uploads import folder_name, ingest_files, ingest_zip

__all__ = [
    "FOLDER_LIMITS",
    "MANIFEST_FORMAT",
    "SPLITS",
    "UPLOAD_LIMITS",
    "Dataset",
    "Item",
    "Limits",
    "SkippedFile",
    "ZipSource",
    "allowed_data_dirs",
    "delete_dataset",
    "export_zip",
    "folder_name",
    "ingest_files",
    "ingest_folder",
    "ingest_zip",
    "list_datasets",
    "load_dataset",
    "server_folders",
    "stratified_rows",
]
