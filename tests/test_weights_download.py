"""ImageNet weights downloads: kept only when they match their published hash, as `keras.utils.get_file` checks.

The files come from a small HTTP server on 127.0.0.1 run by the test, never from the network: a
backbone's `weights_origin` is pointed at it and its `weights_hashes` say what the test's few-byte
files must hash to.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tlcore.backbones import (
    BACKBONES,
    WEIGHTS_HASHES,
    check_weights_available,
    get_backbone,
    is_offline,
    resolve_weights,
    unverifiable_weights_message,
)
from tlcore.errors import WeightsUnavailableError

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "keras-home" / "models"
needs_shared_weights = pytest.mark.skipif(
    not SHARED_MODELS.is_dir(), reason="../shared/keras-home/models is not on this machine"
)

# The fake backbone's file at 224 px, served by the local server.
FILE = "mobilenet_2_5_224_tf_no_top.h5"
CONTENT = b"not really weights"


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep the test output quiet
        pass


@pytest.fixture
def server(tmp_path):
    """A folder served over HTTP on 127.0.0.1: `(origin URL, folder, paths requested)`."""
    folder = tmp_path / "served"
    folder.mkdir()
    requested: list[str] = []

    class Handler(_Handler):
        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", folder, requested
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def online(tmp_path, monkeypatch):
    """Downloads allowed (conftest sets TLCORE_OFFLINE for the session), an empty Keras cache, no proxy."""
    monkeypatch.setenv("TLCORE_OFFLINE", "0")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "keras-home" / "models"


def served_backbone(origin: str, hashes: dict[str, str]):
    """MobileNet ×0.25 with its weights served from `origin` and checked against `hashes`."""
    return dataclasses.replace(get_backbone("mobilenet_0.25"), weights_origin=origin, weights_hashes=hashes)


def weights_folder(workspace) -> Path:
    return workspace.cache_dir / "weights"


def test_the_local_server_counts_as_online_on_its_own_port(server, online):
    origin, _, _ = server
    port = int(origin.rsplit(":", 1)[1].strip("/"))
    assert not is_offline("127.0.0.1", port=port)


@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_a_file_matching_its_published_hash_is_downloaded_and_cached(server, online, workspace, algorithm):
    origin, folder, requested = server
    (folder / FILE).write_bytes(CONTENT)
    backbone = served_backbone(origin, {FILE: hashlib.new(algorithm, CONTENT).hexdigest()})
    progress: list[tuple[int, int]] = []

    check_weights_available(backbone, "imagenet", 224, workspace)
    path = resolve_weights(backbone, "imagenet", 224, workspace, lambda done, total: progress.append((done, total)))

    assert path == weights_folder(workspace) / FILE
    assert path.read_bytes() == CONTENT
    assert sorted(p.name for p in weights_folder(workspace).iterdir()) == [FILE]
    assert progress[-1] == (len(CONTENT), len(CONTENT))
    # Cached now: a second call finds it without asking the server again.
    assert resolve_weights(backbone, "imagenet", 224, workspace) == path
    assert requested == [f"/{FILE}"]


def test_a_file_not_matching_its_published_hash_is_refused_and_nothing_is_kept(server, online, workspace):
    origin, folder, _ = server
    (folder / FILE).write_bytes(CONTENT)
    expected = hashlib.sha256(b"the genuine weights").hexdigest()
    backbone = served_backbone(origin, {FILE: expected})

    with pytest.raises(WeightsUnavailableError) as error:
        resolve_weights(backbone, "imagenet", 224, workspace)

    message = str(error.value)
    assert message.startswith(f"The downloaded file {FILE} does not match its published SHA-256 (")
    assert f"expected {expected[:12]}…" in message
    assert f"received {hashlib.sha256(CONTENT).hexdigest()[:12]}…" in message
    assert "nothing was kept" in message
    assert str(online) in message and "instead of 'imagenet'" in message
    assert len(re.findall(r"[.!?](?:\s|$)", message)) == 1, "one sentence"
    assert list(weights_folder(workspace).iterdir()) == []  # no partial file, no target


def test_a_file_truncated_on_the_way_is_refused_by_its_md5(server, online, workspace):
    origin, folder, _ = server
    (folder / FILE).write_bytes(CONTENT[:5])
    backbone = served_backbone(origin, {FILE: hashlib.md5(CONTENT).hexdigest()})

    with pytest.raises(WeightsUnavailableError, match=f"^The downloaded file {FILE} does not match its published MD5"):
        resolve_weights(backbone, "imagenet", 224, workspace)
    assert list(weights_folder(workspace).iterdir()) == []


def test_a_file_without_a_published_hash_is_never_downloaded(server, online, workspace):
    origin, folder, requested = server
    (folder / FILE).write_bytes(CONTENT)
    backbone = served_backbone(origin, {})
    expected = unverifiable_weights_message(backbone, 224)

    with pytest.raises(WeightsUnavailableError) as checked:
        check_weights_available(backbone, "imagenet", 224, workspace)
    with pytest.raises(WeightsUnavailableError) as resolved:
        resolve_weights(backbone, "imagenet", 224, workspace)

    assert str(checked.value) == str(resolved.value) == expected
    assert FILE in expected and str(online) in expected and "a copy you trust" in expected
    assert requested == []
    assert not weights_folder(workspace).exists()


def test_a_registry_file_without_a_published_hash_is_refused_but_a_trusted_copy_is_used(server, online, workspace):
    origin, folder, requested = server
    backbone = dataclasses.replace(get_backbone("mobilenet_0.25"), weights_origin=origin)
    file_name = backbone.weights_file(128)
    assert file_name == "mobilenet_2_5_128_tf_no_top.h5" and backbone.weights_hash(128) is None
    (folder / file_name).write_bytes(CONTENT)

    with pytest.raises(WeightsUnavailableError, match=re.escape(f"({file_name}) have no published hash")):
        resolve_weights(backbone, "imagenet", 128, workspace)
    assert requested == []

    online.mkdir(parents=True)
    (online / file_name).write_bytes(CONTENT)  # the copy someone put in the Keras cache
    assert resolve_weights(backbone, "imagenet", 128, workspace) == online / file_name
    check_weights_available(backbone, "imagenet", 128, workspace)


def test_offline_the_missing_file_message_comes_first(server, online, workspace, monkeypatch):
    monkeypatch.setenv("TLCORE_OFFLINE", "1")
    origin, _, _ = server
    backbone = served_backbone(origin, {})
    with pytest.raises(WeightsUnavailableError, match="cannot be downloaded"):
        check_weights_available(backbone, "imagenet", 224, workspace)


def test_every_published_hash_is_a_sha256_or_an_md5_of_a_file_the_registry_names():
    names = {name for backbone in BACKBONES.values() for name in backbone.weights_files.values()}
    for file_name, digest in WEIGHTS_HASHES.items():
        assert file_name in names
        assert re.fullmatch(r"[0-9a-f]{64}|[0-9a-f]{32}", digest), file_name


@needs_shared_weights
def test_the_registry_holds_the_sha256_of_the_genuine_shared_weights():
    def sha256(name: str) -> str:
        return hashlib.sha256((SHARED_MODELS / name).read_bytes()).hexdigest()

    for name, size in (("mobilenet_v2_0.35", 224), ("mobilenet_0.25", 224), ("mobilenet_0.25", 64)):
        backbone = get_backbone(name)
        assert backbone.weights_hash(size) == sha256(backbone.weights_file(size))
    # The with-top file is not one the registry uses: saved under the no-top name, it would be refused.
    assert "mobilenet_2_5_224_tf.h5" not in WEIGHTS_HASHES
    assert sha256("mobilenet_2_5_224_tf.h5") not in WEIGHTS_HASHES.values()
