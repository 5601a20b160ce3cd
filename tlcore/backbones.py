"""The backbone registry: one table of pretrained Keras applications, one `create_base` entry point.

Each entry holds the facts the rest of the program needs about an architecture: how to build it, how
its ImageNet weights expect pixels to be scaled, its default and smallest input sizes, and the exact
file name Keras caches its no-top ImageNet weights under. The app's backbone picker, the CLI's
`--backbone` choices and the tests all read this table, so adding a backbone is adding one entry.

Weights come from one of three sources (`resolve_weights`):
- `"imagenet"`: the Keras cache (`$KERAS_HOME/models/`, `~/.keras/models/`) or the workspace's own
  download cache; when the file is in none of them it is downloaded into the workspace, with progress,
  and kept only if it matches its published hash (`WEIGHTS_HASHES`), as `keras.utils.get_file` checks
  it; a file with no published hash is never downloaded, and offline nothing is: either is refused at
  once with a message naming the file and where to put it;
- a path to a weights file (`.h5` or `.weights.h5`), for machines that cannot download;
- `"none"`: random initialisation (training from scratch, or the random-features baseline).
"""

from __future__ import annotations

import hashlib
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from tlcore import settings
from tlcore.errors import SpecError, WeightsUnavailableError

if TYPE_CHECKING:
    import keras

    from tlcore.workspace import Workspace


_KERAS_APPS = "https://storage.googleapis.com/tensorflow/keras-applications/"

# The published hash of every weights file the registry downloads, by file name: 64 hex digits are a
# SHA-256, 32 an MD5, as `keras.utils.get_file(file_hash=...)` tells them apart. Keras publishes only
# MD5s, and none at all for MobileNet and MobileNetV2; the SHA-256s here are of the genuine files in
# the team's shared Keras cache (`../shared/keras-home/models/`, which `tests/test_weights_download.py`
# holds them to). MD5 no longer resists a forger who makes both files, but a file made to match a
# hash published years ago is still out of reach, and truncation or corruption never matches.
# A file missing here is not downloaded at all (`_download_weights` says why).
WEIGHTS_HASHES: dict[str, str] = {
    # keras/src/applications/resnet.py, WEIGHTS_HASHES["resnet50"][1] (the no-top file_hash).
    "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5": "4d473c1dd8becc155b73f8504c6f6626",
    # keras/src/applications/efficientnet.py, WEIGHTS_HASHES["b0"][1]: an MD5 too. Some copies of that
    # table glue both MD5s of "b0" into one 64-digit string that looks like a SHA-256; it is not one.
    "efficientnetb0_notop.h5": "50bc09e76180e00e4465e1a485ddc09d",
    # keras/src/applications/densenet.py, file_hash of DENSENET121_WEIGHT_PATH_NO_TOP.
    "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5": "30ee3e1110167f948a6b9946edeeb738",
    # keras/src/applications/vgg16.py, file_hash of WEIGHTS_PATH_NO_TOP.
    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5": "6d6bbae143d832006294945121d1f1fc",
    # SHA-256 of the genuine file in ../shared/keras-home/models/ (Keras publishes no hash for it).
    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5": (
        "7d28b6f83412bd7ea5e3c83ab3a834b08cf723e1d06a4847fe673d16d48a9d35"
    ),
    # SHA-256 of the genuine file in ../shared/keras-home/models/ (Keras publishes no hash for it).
    "mobilenet_2_5_224_tf_no_top.h5": "5583bfd0b6572d11fbb377a907299dc02bd1f6b461cdc93d2283f298146c7e46",
}

# Per-channel (scale, offset) that turn RGB pixels in [0, 255] into what the ImageNet weights were
# trained on, as `keras.applications.<family>.preprocess_input` does it.
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """How a backbone's weights expect their input pixels.

    mode: `"tf"` (scale to [-1, 1]), `"caffe"` (RGB to BGR, then subtract the ImageNet mean),
        `"torch"` (scale to [0, 1], then normalise by the ImageNet mean and std) or `"none"` (the
        architecture rescales internally, as EfficientNet does).
    """

    mode: str

    @property
    def reverses_channels(self) -> bool:
        return self.mode == "caffe"

    def scale_offset(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """Per-channel `(scale, offset)` applied after any channel reversal, or None for identity."""
        if self.mode == "tf":
            return (1 / 127.5,) * 3, (-1.0,) * 3
        if self.mode == "caffe":  # in BGR order, after the channel reversal
            return (1.0,) * 3, (-103.939, -116.779, -123.68)
        if self.mode == "torch":
            scale = tuple(1 / (255.0 * s) for s in _TORCH_STD)
            offset = tuple(-m / s for m, s in zip(_TORCH_MEAN, _TORCH_STD, strict=True))
            return scale, offset
        return None


@dataclass(frozen=True)
class Backbone:
    """One registry entry.

    name: the registry key used by the CLI, specs and the app (`"mobilenet_v2_0.35"`).
    label: how people name it (`"MobileNetV2 ×0.35"`).
    constructor: the `keras.applications` function that builds it.
    kwargs: extra constructor arguments (`{"alpha": 0.35}` for width variants).
    preprocessing: how pixels are scaled for its ImageNet weights.
    default_size: the input size its ImageNet weights were trained at.
    min_size: the smallest input side the architecture accepts.
    weights_files: no-top ImageNet weights file name by input size; `0` is the fallback for any other size.
    weights_origin: the folder URL Keras downloads those files from.
    weights_hashes: the published hash of each weights file, by file name (`WEIGHTS_HASHES` unless
        given); a download is kept only if it matches, and a file without one is not downloaded.
    params: parameters of the no-top base (for the picker's size column).
    base_layers: `len(base.layers)` of the no-top base, input layer included (the slider's range).
    speed: a hint for slow machines: "fast", "medium" or "slow" on a laptop CPU.
    reference: the paper that introduced it.
    """

    name: str
    label: str
    constructor: str
    preprocessing: Preprocessing
    default_size: int
    min_size: int
    weights_files: Mapping[int, str]
    weights_origin: str
    params: int
    base_layers: int
    speed: str
    reference: str
    kwargs: Mapping[str, float] = field(default_factory=dict)
    weights_hashes: Mapping[str, str] = field(default_factory=lambda: WEIGHTS_HASHES, repr=False)

    def weights_file(self, image_size: int) -> str:
        """The file name Keras caches this backbone's no-top ImageNet weights under at `image_size`."""
        return self.weights_files.get(image_size, self.weights_files[0])

    def weights_hash(self, image_size: int) -> str | None:
        """The published hash of `weights_file(image_size)` (SHA-256 or MD5), or None when there is none."""
        return self.weights_hashes.get(self.weights_file(image_size))

    def create_base(self, image_size: int, weights_path: str | os.PathLike[str] | None) -> keras.Model:
        """Build the no-top base for square `image_size` inputs, random or loaded from `weights_path`."""
        import keras

        check_image_size(self, image_size)
        build = getattr(keras.applications, self.constructor)
        return build(
            include_top=False,
            weights=str(weights_path) if weights_path is not None else None,
            input_shape=(image_size, image_size, 3),
            **self.kwargs,
        )


def _mobilenet_v2(alpha: float, params: int, speed: str) -> Backbone:
    files = {
        rows: f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{rows}_no_top.h5"
        for rows in (96, 128, 160, 192, 224)
    }
    files[0] = files[224]
    suffix = "" if alpha == 1.0 else f"_{alpha}"
    return Backbone(
        name=f"mobilenet_v2{suffix}",
        label="MobileNetV2" + ("" if alpha == 1.0 else f" ×{alpha}"),
        constructor="MobileNetV2",
        kwargs={"alpha": alpha},
        preprocessing=Preprocessing("tf"),
        default_size=224,
        min_size=32,
        weights_files=files,
        weights_origin=_KERAS_APPS + "mobilenet_v2/",
        params=params,
        base_layers=154,
        speed=speed,
        reference="Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks (CVPR 2018)",
    )


def _mobilenet(alpha: float, params: int, speed: str) -> Backbone:
    alpha_text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}[alpha]
    files = {rows: f"mobilenet_{alpha_text}_{rows}_tf_no_top.h5" for rows in (128, 160, 192, 224)}
    files[0] = files[224]
    suffix = "" if alpha == 1.0 else f"_{alpha}"
    return Backbone(
        name=f"mobilenet{suffix}",
        label="MobileNet" + ("" if alpha == 1.0 else f" ×{alpha}"),
        constructor="MobileNet",
        kwargs={"alpha": alpha},
        preprocessing=Preprocessing("tf"),
        default_size=224,
        min_size=32,
        weights_files=files,
        weights_origin=_KERAS_APPS + "mobilenet/",
        params=params,
        base_layers=86,
        speed=speed,
        reference="Howard et al., MobileNets: Efficient CNNs for Mobile Vision Applications (2017)",
    )


def _single_file(file_name: str) -> dict[int, str]:
    return {0: file_name}


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone(
            name="resnet50",
            label="ResNet50",
            constructor="ResNet50",
            preprocessing=Preprocessing("caffe"),
            default_size=224,
            min_size=32,
            weights_files=_single_file("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
            weights_origin=_KERAS_APPS + "resnet/",
            params=23_587_712,
            base_layers=175,
            speed="slow",
            reference="He et al., Deep Residual Learning for Image Recognition (CVPR 2016)",
        ),
        _mobilenet_v2(1.0, 2_257_984, "medium"),
        _mobilenet_v2(0.75, 1_382_064, "fast"),
        _mobilenet_v2(0.5, 706_224, "fast"),
        _mobilenet_v2(0.35, 410_208, "fast"),
        _mobilenet(1.0, 3_228_864, "medium"),
        _mobilenet(0.75, 1_832_976, "fast"),
        _mobilenet(0.5, 829_536, "fast"),
        _mobilenet(0.25, 218_544, "fast"),
        Backbone(
            name="efficientnet_b0",
            label="EfficientNetB0",
            constructor="EfficientNetB0",
            preprocessing=Preprocessing("none"),
            default_size=224,
            min_size=32,
            weights_files=_single_file("efficientnetb0_notop.h5"),
            weights_origin="https://storage.googleapis.com/keras-applications/",
            params=4_049_571,
            base_layers=237,
            speed="medium",
            reference="Tan & Le, EfficientNet: Rethinking Model Scaling for CNNs (ICML 2019)",
        ),
        Backbone(
            name="densenet121",
            label="DenseNet121",
            constructor="DenseNet121",
            preprocessing=Preprocessing("torch"),
            default_size=224,
            min_size=32,
            weights_files=_single_file("densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"),
            weights_origin=_KERAS_APPS + "densenet/",
            params=7_037_504,
            base_layers=427,
            speed="slow",
            reference="Huang et al., Densely Connected Convolutional Networks (CVPR 2017)",
        ),
        Backbone(
            name="vgg16",
            label="VGG16",
            constructor="VGG16",
            preprocessing=Preprocessing("caffe"),
            default_size=224,
            min_size=32,
            weights_files=_single_file("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
            weights_origin=_KERAS_APPS + "vgg16/",
            params=14_714_688,
            base_layers=19,
            speed="slow",
            reference="Simonyan & Zisserman, Very Deep Convolutional Networks (ICLR 2015)",
        ),
    )
}


def list_backbones() -> list[str]:
    """Registry names, in the order the app shows them."""
    return list(BACKBONES)


def get_backbone(name: str) -> Backbone:
    try:
        return BACKBONES[name]
    except KeyError:
        raise SpecError("backbone.unknown", name=repr(name), choices=", ".join(BACKBONES)) from None


def check_image_size(backbone: Backbone, image_size: int) -> None:
    if not isinstance(image_size, int) or isinstance(image_size, bool):
        raise SpecError("backbone.bad_image_size", value=repr(image_size))
    if not backbone.min_size <= image_size <= 1024:
        raise SpecError(
            "backbone.image_size_out_of_range", backbone=backbone.label, min=backbone.min_size, size=image_size
        )


def weights_search_dirs(workspace: Workspace | None) -> list[Path]:
    """Where ImageNet weights are looked for: the Keras cache (`tlcore.settings.keras_cache_dirs`), then
    the workspace's own downloads."""
    dirs = settings.keras_cache_dirs()
    if workspace is not None:
        dirs.append(workspace.cache_dir / "weights")
    return dirs


def find_cached_weights(backbone: Backbone, image_size: int, workspace: Workspace | None = None) -> Path | None:
    """The cached ImageNet weights file for `backbone`, or None if no cache holds it."""
    file_name = backbone.weights_file(image_size)
    for folder in weights_search_dirs(workspace):
        candidate = folder / file_name
        if candidate.is_file():
            return candidate
    return None


def is_offline(host: str = "storage.googleapis.com", timeout: float = 3.0, port: int = 443) -> bool:
    """True when `TLCORE_OFFLINE` is set or the weights host cannot be reached on `port` within `timeout`."""
    if settings.offline():
        return True
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return False
    except OSError:
        return True


def _origin_offline(origin: str) -> bool:
    """`is_offline` for the host and port a weights folder URL is served from (a mirror need not use 443)."""
    url = urlparse(origin)
    return is_offline(url.hostname or "", port=url.port or (80 if url.scheme == "http" else 443))


def missing_weights(backbone: Backbone, image_size: int) -> WeightsUnavailableError:
    """The refusal of ImageNet weights that are not on this machine and cannot be downloaded (offline)."""
    return WeightsUnavailableError(
        "weights.missing",
        backbone=backbone.label,
        file=backbone.weights_file(image_size),
        folder=str(settings.keras_cache_dirs()[0]),
    )


def unverifiable_weights(backbone: Backbone, image_size: int) -> WeightsUnavailableError:
    """The refusal of ImageNet weights that have no published hash, so are never downloaded."""
    return WeightsUnavailableError(
        "weights.unverifiable",
        backbone=backbone.label,
        file=backbone.weights_file(image_size),
        folder=str(settings.keras_cache_dirs()[0]),
    )


def missing_weights_message(backbone: Backbone, image_size: int, lang: str | None = None) -> str:
    """`missing_weights` as text in `lang` (None: the environment's language)."""
    return missing_weights(backbone, image_size).render(lang)


def unverifiable_weights_message(backbone: Backbone, image_size: int, lang: str | None = None) -> str:
    """`unverifiable_weights` as text in `lang` (None: the environment's language)."""
    return unverifiable_weights(backbone, image_size).render(lang)


def check_weights_available(
    backbone: Backbone, weights: str | None, image_size: int, workspace: Workspace | None = None
) -> None:
    """Raise `WeightsUnavailableError` now if `weights` could not be had when training starts.

    Cheap: it looks in the caches and, for ImageNet weights that are not cached, only checks that
    the download server is reachable and that the file has a published hash; the trainer downloads
    them itself.
    """
    if weights is None or weights == "none":
        return
    if weights == "imagenet":
        if find_cached_weights(backbone, image_size, workspace) is None:
            if _origin_offline(backbone.weights_origin):
                raise missing_weights(backbone, image_size)
            if backbone.weights_hash(image_size) is None:
                raise unverifiable_weights(backbone, image_size)
        return
    resolve_weights(backbone, weights, image_size, workspace)


def resolve_weights(
    backbone: Backbone,
    weights: str | None,
    image_size: int,
    workspace: Workspace | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path | None:
    """Return the weights file to load into `backbone`, or None for random initialisation.

    weights: `"imagenet"`, `"none"` (or None), or a path to a weights file.
    progress: called as `progress(bytes_done, bytes_total)` while ImageNet weights download.
    """
    if weights is None or weights == "none":
        return None
    if weights == "imagenet":
        cached = find_cached_weights(backbone, image_size, workspace)
        if cached is not None:
            return cached
        if workspace is None or _origin_offline(backbone.weights_origin):
            raise missing_weights(backbone, image_size)
        return _download_weights(backbone, image_size, workspace, progress)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError("weights.file_missing", path=weights)
    if not (path.name.endswith(".h5") or path.name.endswith(".weights.h5")):
        raise WeightsUnavailableError("weights.not_keras_file", name=path.name)
    return path


def load_base(backbone: Backbone, image_size: int, weights_path: Path | None) -> keras.Model:
    """`backbone.create_base`, turning a weights file that does not fit into a clear error."""
    try:
        return backbone.create_base(image_size, weights_path)
    except (ValueError, OSError, KeyError) as exc:
        if weights_path is None:
            raise
        raise WeightsUnavailableError(
            "weights.does_not_fit",
            name=weights_path.name,
            backbone=backbone.label,
            error=(str(exc).splitlines() or [""])[0][:200],
        ) from exc


def _download_weights(
    backbone: Backbone,
    image_size: int,
    workspace: Workspace,
    progress: Callable[[int, int], None] | None,
) -> Path:
    """Download the weights file into `cache/weights/`, keeping it only if it matches its published hash.

    The hash is computed while the file streams in, the way `keras.utils.get_file(file_hash=...)` checks
    it (64 hex digits: SHA-256, 32: MD5). The file is written under a `.part` name and renamed only once
    it matches, so a mismatch, a broken connection or a crash leaves nothing in the cache.
    """
    file_name = backbone.weights_file(image_size)
    expected = backbone.weights_hash(image_size)
    if expected is None:
        # Refused rather than downloaded unchecked: an unverified 10-100 MB file from the network is
        # exactly what the check is for, and whoever puts a copy in the Keras cache vouches for it.
        raise unverifiable_weights(backbone, image_size)
    target = workspace.cache_dir / "weights" / file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    url = backbone.weights_origin + file_name
    hasher = _hasher(expected)
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                hasher.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        received = hasher.hexdigest()
        if received != expected.lower():
            raise WeightsUnavailableError(
                "weights.hash_mismatch",
                file=file_name,
                hash=_hash_name(expected),
                expected=expected[:12],
                received=received[:12],
                folder=str(settings.keras_cache_dirs()[0]),
            )
        os.replace(partial, target)
    except (urllib.error.URLError, OSError) as exc:
        raise WeightsUnavailableError(
            "weights.download_failed",
            file=file_name,
            error=str(exc),
            missing=missing_weights(backbone, image_size).message,
        ) from exc
    finally:
        partial.unlink(missing_ok=True)
    return target


def _hasher(expected: str):  # -> hashlib._Hash, a name only type checkers know
    """SHA-256 for a 64-digit hash, MD5 otherwise: `keras.utils.get_file`'s `hash_algorithm="auto"`."""
    return hashlib.sha256() if len(expected) == 64 else hashlib.md5()


def _hash_name(expected: str) -> str:
    return "SHA-256" if len(expected) == 64 else "MD5"
