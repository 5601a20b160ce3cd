"""Show the code: the plain Keras script that reproduces a run, written from its spec.

The app hides the mechanics; this module shows them. For any run it writes one short script, in the
style of the original article (`ResNet50(include_top=False, weights="imagenet")`, a Flatten + Dense
head, `for layer in ...layers[:168]: layer.trainable = False`), with the run's real numbers: the
backbone and its weights, the input size, the preprocessing, the head, which layers are frozen, the
optimizer and learning rate(s), epochs, batch size, augmentation and seed, and one `compile` + `fit`
per phase. It needs nothing but Keras (with TensorFlow) and a folder of images, one folder per class,
given on its command line; it saves a model that takes raw RGB pixels and returns probabilities,
like the app's.

What the script cannot reproduce exactly, it says in a comment: its validation split is Keras's (not
the app's stored, stratified one), its resizing does not antialias, and when fine-tuning Keras 3's
`fit` runs the BatchNormalization layers that learn in training mode, which the app avoids
(see `tlcore.models.trainable_view`).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tlcore import __version__, runs
from tlcore.backbones import Backbone, get_backbone
from tlcore.errors import RunError, TLCoreError
from tlcore.i18n import literal, msg
from tlcore.models import Strategy
from tlcore.predict import read_labels
from tlcore.spec import Phase, RunSpec

if TYPE_CHECKING:
    from tlcore.datasets import Dataset
    from tlcore.workspace import Workspace

FAMILIES = {
    "ResNet50": "resnet50",
    "MobileNetV2": "mobilenet_v2",
    "MobileNet": "mobilenet",
    "EfficientNetB0": "efficientnet",
    "DenseNet121": "densenet",
    "VGG16": "vgg16",
}
"""The `keras.applications` module holding each constructor's `preprocess_input`."""

OPTIMIZER_CODE = {
    "adam": "keras.optimizers.Adam(learning_rate={rate})",
    "sgd": "keras.optimizers.SGD(learning_rate={rate}, momentum=0.9)",
    "rmsprop": "keras.optimizers.RMSprop(learning_rate={rate})",
    "adamw": "keras.optimizers.AdamW(learning_rate={rate})",
}
"""Each optimizer as `tlcore.training.make_optimizer` builds it."""

DEFAULT_VAL_FRACTION = 0.2


def reproduce_commands(
    dataset: Dataset, dataset_zip: str, spec_file: str = "spec.json", lang: str | None = None
) -> str:
    """The shell commands that train a run's spec again on another machine with tlcore (see docs/scaling.md).

    dataset_zip: the file name the dataset is downloaded as (`tlcore.datasets.export_zip`); a dataset
    registered from a server folder is named by its folder instead, which must exist there too.
    lang: the language of the comments that say what each command does (default: the environment's).
    """
    if dataset.source_dir is None:
        data = f"--data {shlex.quote(dataset_zip)}"  # the zip holds the split in its train/ and val/ folders
    else:
        data = f"--data-dir {shlex.quote(str(dataset.source_dir))}"
        if dataset.split_source == "seeded":  # the same split again
            data += f" --val-fraction {dataset.val_fraction:g} --seed {dataset.seed}"
    train = f"python -m tlcore train --spec {shlex.quote(spec_file)} {data}"
    return "\n".join(
        [
            "# " + msg("codegen.reproduce_one_device").render(lang),
            train,
            "# " + msg("codegen.reproduce_mirrored").render(lang),
            f"{train} --distribute mirrored",
            "# " + msg("codegen.reproduce_multiworker").render(lang),
            f"{train} --distribute multiworker",
        ]
    )


def script_name(run_id: str) -> str:
    """The file name the script is offered under."""
    return f"train_{run_id}.py"


def run_script(workspace: Workspace, run_id: str) -> str:
    """The script that reproduces run `run_id` (any run with a readable spec, finished or not)."""
    from tlcore.datasets import load_dataset

    info = runs.load_run(workspace, run_id)
    if info.spec is None:
        raise RunError("codegen.damaged_run", id=run_id, error=info.error or literal(""))
    try:
        dataset = load_dataset(workspace, info.spec.dataset)
    except TLCoreError:
        dataset = None
    return generate_script(info.spec, read_labels(info.dir), run_id=info.id, run_name=info.name, dataset=dataset)


def generate_script(
    spec: RunSpec,
    classes: Sequence[str],
    run_id: str = "",
    run_name: str = "",
    dataset: Dataset | None = None,
) -> str:
    """The plain Keras script for `spec`, as Python source text.

    classes: the class names in output order (the run's `labels.txt`); the script passes them to
        `image_dataset_from_directory` so its outputs come in the same order.
    run_id, run_name: named in the script's docstring.
    dataset: the run's dataset, if it still exists: the script holds out the same fraction of
        images given as class folders. Images given in train/ and val/ folders keep that split.
    """
    spec = spec.validated()
    backbone = get_backbone(spec.model.backbone)
    phases = spec.phases()
    val_fraction = dataset.val_fraction if dataset is not None else DEFAULT_VAL_FRACTION
    parts = [
        _docstring(spec, backbone, run_id, run_name),
        _imports(),
        _constants(spec, classes, len(phases) > 1),
        _data(val_fraction),
        _augmentation(spec),
        _model(spec, backbone),
    ]
    if len(phases) == 1:
        parts.append(_single_phase(phases[0], spec.optimizer))
    else:
        parts.append(_two_phases(phases, spec.optimizer))
    parts.append('model.save(MODEL_FILE)\nprint(f"Saved the trained model to {MODEL_FILE}.")\n')
    return "\n\n".join(part.strip("\n") for part in parts if part) + "\n"


def _docstring(spec: RunSpec, backbone: Backbone, run_id: str, run_name: str) -> str:
    frozen = spec.model.frozen_layers
    how = {
        Strategy.SCRATCH: "From scratch: random weights, every layer learns.",
        Strategy.TRANSFER: "Transfer learning: the base is frozen, only the new head learns.",
        Strategy.FINETUNE: f"Fine-tuning: the first {frozen} base layers stay frozen, the rest and the new head learn.",
    }[spec.model.strategy]
    if spec.two_phase:
        how = (
            f"Two phases: the new head learns on a frozen base, then fine-tuning with the first {frozen}\n"
            "base layers frozen."
        )
    if spec.train_fraction < 1:
        how += (
            f"\nThe run trained on {spec.train_fraction:.0%} of each class's training images (a seeded subset);\n"
            "this script trains on all of them."
        )
    name = f" ({json.dumps(' '.join(run_name.split()), ensure_ascii=False)})" if run_name and run_name != run_id else ""
    source = f" as tlcore run {run_id}{name} did" if run_id else ""
    size = spec.model.image_size
    return f'''"""Train a {backbone.label} image classifier{source}, in plain Keras.

{how}
Generated by tlcore {__version__} from the run's spec.json. Usage:

    python {script_name(run_id or "run")} IMAGES_FOLDER [MODEL_FILE]

IMAGES_FOLDER holds one folder of images per class, named as in CLASS_NAMES below, or a train/ and
a val/ folder that each hold those class folders (the split is then used as given). The trained model
is saved to MODEL_FILE (default model.keras): it takes RGB images of shape (n, {size}, {size}, 3) with
pixel values 0-255 and returns the probabilities of CLASS_NAMES.
"""'''


def _imports() -> str:
    return "import os\nimport sys\n\nimport keras"


def _constants(spec: RunSpec, classes: Sequence[str], two_phase: bool) -> str:
    size = spec.model.image_size
    lines = [
        'DATA_DIR = sys.argv[1] if len(sys.argv) > 1 else "images"',
        'MODEL_FILE = sys.argv[2] if len(sys.argv) > 2 else "model.keras"',
        'SPLIT_FOLDERS = ("train", "val")',
        f"CLASS_NAMES = {json.dumps(list(classes), ensure_ascii=False)}",
        f"IMAGE_SIZE = ({size}, {size})",
        f"BATCH_SIZE = {spec.batch_size}",
        f"EPOCHS = {spec.epochs}",
        f"LEARNING_RATE = {spec.learning_rate!r}",
    ]
    if two_phase:
        lines += [
            f"FINETUNE_EPOCHS = {spec.finetune_epochs}",
            f"FINETUNE_LEARNING_RATE = {spec.finetune_learning_rate!r}",
        ]
    lines += [f"SEED = {spec.seed}", "", "keras.utils.set_random_seed(SEED)"]
    return "\n".join(lines)


def _data(val_fraction: float) -> str:
    return f"""# Keras resizes without antialiasing (the app antialiases), so pixels differ slightly.
# DATA_DIR holds one folder per class (then {val_fraction:.0%} of them is held out for validation, chosen
# by Keras, not the app's split), or train/ and val/ folders that each hold one folder per class.
split_dirs = [os.path.join(DATA_DIR, name) for name in SPLIT_FOLDERS]
if not set(CLASS_NAMES) & set(SPLIT_FOLDERS) and all(os.path.isdir(path) for path in split_dirs):
    train_ds = keras.utils.image_dataset_from_directory(
        split_dirs[0],
        class_names=CLASS_NAMES,
        image_size=IMAGE_SIZE,
        batch_size=BATCH_SIZE,
        seed=SEED,
    )
    val_ds = keras.utils.image_dataset_from_directory(
        split_dirs[1],
        class_names=CLASS_NAMES,
        image_size=IMAGE_SIZE,
        batch_size=BATCH_SIZE,
        shuffle=False,
    )
else:
    train_ds, val_ds = keras.utils.image_dataset_from_directory(
        DATA_DIR,
        class_names=CLASS_NAMES,
        validation_split={val_fraction!r},
        subset="both",
        seed=SEED,
        image_size=IMAGE_SIZE,
        batch_size=BATCH_SIZE,
    )"""


def _augmentation(spec: RunSpec) -> str:
    augmentation = spec.augmentation
    if not augmentation.active:
        return ""
    # The same layers, arguments and seeds as tlcore.pipeline.augmentation_layers.
    layers = []
    if augmentation.flip:
        layers.append('keras.layers.RandomFlip("horizontal", seed=SEED)')
    if augmentation.rotation:
        layers.append(f'keras.layers.RandomRotation({augmentation.rotation!r}, fill_mode="reflect", seed=SEED + 1)')
    if augmentation.zoom:
        layers.append(f'keras.layers.RandomZoom({augmentation.zoom!r}, fill_mode="reflect", seed=SEED + 2)')
    if augmentation.contrast:
        layers.append(f"keras.layers.RandomContrast({augmentation.contrast!r}, seed=SEED + 3)")
    body = "".join(f"    {layer},\n" for layer in layers)
    return f"""# Augmentation: random changes to the training images only.
augment = keras.Sequential([
{body}])
train_ds = train_ds.map(lambda images, labels: (augment(images, training=True), labels))"""


def _model(spec: RunSpec, backbone: Backbone) -> str:
    model = spec.model
    family = FAMILIES[backbone.constructor]
    weights = {"imagenet": '"imagenet"', "none": "None"}.get(model.weights, repr(model.weights))
    extra = "".join(f", {key}={value!r}" for key, value in backbone.kwargs.items())
    top_note = (
        "The base, with random weights" if model.weights == "none" else "The pretrained base"
    ) + ", without ImageNet's 1000-class classifier on top."
    lines = [
        f"# {top_note}",
        f"base_model = keras.applications.{backbone.constructor}(",
        f"    include_top=False, weights={weights}, input_shape=IMAGE_SIZE + (3,){extra}",
        ")",
        "",
        "# Raw RGB pixels (0-255) in, class probabilities out: the backbone's preprocessing is part of",
        "# the model, so whoever uses it never has to remember preprocess_input.",
        "inputs = keras.Input(shape=IMAGE_SIZE + (3,))",
        f"x = keras.applications.{family}.preprocess_input(inputs)",
    ]
    if model.strategy == Strategy.SCRATCH:
        lines.append("x = base_model(x)")
    else:
        lines += [
            "# training=False: BatchNormalization uses its stored statistics, not each batch's.",
            *(
                [
                    "# Keras 3's fit() still runs the BatchNormalization layers that learn in training mode",
                    "# (keras-team/keras#20285); the app keeps them in inference mode, so results can differ.",
                ]
                if model.strategy == Strategy.FINETUNE
                else []
            ),
            "x = base_model(x, training=False)",
        ]
    lines.append(
        "x = keras.layers.GlobalAveragePooling2D()(x)" if model.pooling == "avg" else "x = keras.layers.Flatten()(x)"
    )
    if model.hidden_units:
        lines.append(f'x = keras.layers.Dense({model.hidden_units}, activation="relu")(x)')
    if model.dropout:
        lines.append(f"x = keras.layers.Dropout({model.dropout!r})(x)")
    lines += [
        'outputs = keras.layers.Dense(len(CLASS_NAMES), activation="softmax")(x)',
        "model = keras.Model(inputs, outputs)",
    ]
    return "\n".join(lines)


def _freeze(phase: Phase) -> str:
    """The lines that set what learns in `phase`, with a comment saying what they do."""
    if phase.strategy == Strategy.SCRATCH:
        return "# From scratch: every layer learns."
    if phase.strategy == Strategy.TRANSFER:
        return "# Transfer learning: the whole base is frozen; only the new head learns.\nbase_model.trainable = False"
    return f"""# Fine-tuning: the first {phase.frozen_layers} layers of the base stay frozen; the rest learn.
# base_model.layers counts layers as model.layers did in the original article, where base and head
# were one flat model: this is its `for layer in model.layers[:{phase.frozen_layers}]` loop.
base_model.trainable = True
for layer in base_model.layers[:{phase.frozen_layers}]:
    layer.trainable = False"""


def _compile(rate_name: str, optimizer: str) -> str:
    return f"""model.compile(
    optimizer={OPTIMIZER_CODE[optimizer].format(rate=rate_name)},
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
)
model.summary(show_trainable=True)"""


def _single_phase(phase: Phase, optimizer: str) -> str:
    freeze = _freeze(phase)
    if phase.strategy == Strategy.FINETUNE:  # the article's form: nothing to unfreeze first
        freeze = freeze.replace("base_model.trainable = True\n", "")
    return f"""{freeze}

{_compile("LEARNING_RATE", optimizer)}
model.fit(train_ds, validation_data=val_ds, epochs=EPOCHS)"""


def _two_phases(phases: list[Phase], optimizer: str) -> str:
    first, second = phases
    return f"""# Phase 1 ({first.name}): train the new head until it is no longer random.
{_freeze(first)}
{_compile("LEARNING_RATE", optimizer)}
model.fit(train_ds, validation_data=val_ds, epochs=EPOCHS)

# Phase 2 ({second.name}): unfreeze the top of the base and learn slowly. Keras reads `trainable`
# when a model is compiled, so the model is compiled again.
{_freeze(second)}
{_compile("FINETUNE_LEARNING_RATE", optimizer)}
model.fit(train_ds, validation_data=val_ds, initial_epoch=EPOCHS, epochs=EPOCHS + FINETUNE_EPOCHS)"""
