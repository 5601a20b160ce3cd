"""The app's words in the session's language, and the helpers that word tlcore's values.

The words live in gettext catalogs, `ui/locales/<lang>/LC_MESSAGES/app.po` (see docs/translating.md).
`t(key, **fmt)` looks `key` up in the session's language (`st.session_state["lang"]`) and fills in
`fmt`; keys are always written out in full where `t` is called, so Babel and the tests find them.
tlcore's own sentences (errors, notes, reasons) come as `tlcore.i18n.Message`s and are rendered in the
same language by `say` and `error_text`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import streamlit as st

from tlcore import i18n as i18n_core
from tlcore import settings
from tlcore.errors import TLCoreError
from tlcore.i18n import Message, msg
from tlcore.models import Strategy, rules
from tlcore.runs import RunState
from tlcore.study import CANCELLED, MISSING, PENDING
from ui import names
from ui.charts import ChartLabels

if TYPE_CHECKING:
    from tlcore.backbones import Backbone
    from tlcore.datasets import Dataset
    from tlcore.models import ModelSpec
    from tlcore.runs import RunInfo
    from tlcore.spec import RunSpec
    from tlcore.study import Study

T = TypeVar("T")

LANGUAGES = i18n_core.LANGUAGES
DEFAULT_LANGUAGE = i18n_core.DEFAULT_LANGUAGE
CATALOG_FOLDER = Path(__file__).parent / "locales"

_STATUS_COLOURS = {
    "queued": "gray",
    "running": "blue",
    "stopping": "orange",
    "stopped": "orange",
    "completed": "green",
    "failed": "red",
    "interrupted": "red",
    "damaged": "red",
}


@functools.cache
def catalog() -> i18n_core.Catalog:
    """The app's words (`ui/locales/<lang>/LC_MESSAGES/app.po`), read once per process."""
    return i18n_core.Catalog(CATALOG_FOLDER, "app")


def language() -> str:
    lang = st.session_state.get("lang", DEFAULT_LANGUAGE)
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def t(key: str, **fmt: Any) -> str:
    """The text for `key` in the session's language, with `fmt` filled in (values may be messages)."""
    return catalog().render(key, fmt, language())


def say(message: Message | str | None) -> str:
    """A message from tlcore (a note, a reason, a status's error) in the session's language."""
    if message is None:
        return ""
    if isinstance(message, Message):
        return message.render(language())
    return message


def say_md(message: Message | str | None) -> str:
    """`say` for a place that renders Markdown: the names and other values the sentence quotes are text."""
    if isinstance(message, Message):
        return say(names.md_message(message))
    return names.md(message, limit=1000) if message else ""


def error_text(exc: Exception) -> str:
    """A tlcore error for `st.error` (Markdown): a label, then tlcore's sentence, both in the session's
    language, with the names it quotes shown as text."""
    if isinstance(exc, TLCoreError):
        sentence = type(exc).from_message(names.md_message(exc.message)).render(language())
    else:
        sentence = names.md(str(exc), limit=1000)
    return f"{t('error.prefix')} {sentence}"


def labelled(options: Iterable[T], label: Callable[[T], str]) -> dict[T, str]:
    """Option -> label, worded now: pass `.get` of it as a widget's `format_func`, so the widget's
    labels never depend on when (or in which thread) Streamlit calls that function."""
    return {option: label(option) for option in options}


def strategy_label(strategy: str) -> str:
    return {
        Strategy.SCRATCH: t("strategy.scratch"),
        Strategy.TRANSFER: t("strategy.transfer"),
        Strategy.FINETUNE: t("strategy.finetune"),
    }[strategy]


def strategy_hint(strategy: str) -> str:
    return {
        Strategy.SCRATCH: t("strategy.hint_scratch"),
        Strategy.TRANSFER: t("strategy.hint_transfer"),
        Strategy.FINETUNE: t("strategy.hint_finetune"),
    }[strategy]


def pooling_label(pooling: str) -> str:
    return {"avg": t("pooling.avg"), "flatten": t("pooling.flatten")}[pooling]


def weights_label(source: str) -> str:
    return {"imagenet": t("weights.imagenet"), "none": t("weights.none"), "file": t("weights.file")}[source]


OPTIMIZER_NAMES = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop", "adamw": "AdamW"}
"""Keras's optimizers as their papers and the Keras docs write them (a spec keeps Keras's lowercase id)."""


def optimizer_label(optimizer: str) -> str:
    return OPTIMIZER_NAMES.get(optimizer, optimizer)


def speed_label(speed: str) -> str:
    return {"fast": t("speed.fast"), "medium": t("speed.medium"), "slow": t("speed.slow")}[speed]


def status_label(status: str) -> str:
    return {
        "queued": t("status.queued"),
        "running": t("status.running"),
        "stopping": t("status.stopping"),
        "stopped": t("status.stopped"),
        "completed": t("status.completed"),
        "failed": t("status.failed"),
        "interrupted": t("status.interrupted"),
        "damaged": t("status.damaged"),
    }[status]


def member_status_label(status: str) -> str:
    """A study member's status: its run's, or why it has none (`tlcore.study.CANCELLED`, `PENDING`, `MISSING`)."""
    return {
        CANCELLED: t("study.status_cancelled"),
        PENDING: t("study.status_pending"),
        MISSING: t("study.status_missing"),
    }.get(status) or status_label(status)


def status_badge(status: str) -> str:
    """The status as a coloured Markdown badge."""
    return f":{_STATUS_COLOURS.get(status, 'gray')}-badge[{status_label(status)}]"


def backbone_label(backbone: Backbone) -> str:
    return t(
        "model.backbone_option", label=backbone.label, params=backbone.params / 1e6, speed=speed_label(backbone.speed)
    )


def model_summary(spec: ModelSpec) -> str:
    from tlcore.backbones import get_backbone

    label = get_backbone(spec.backbone).label
    if rules(spec.strategy).freezes == "first_n":
        return t(
            "model.summary_frozen", backbone=label, strategy=strategy_label(spec.strategy), frozen=spec.frozen_layers
        )
    return t("model.summary", backbone=label, strategy=strategy_label(spec.strategy))


def count(kind: str, n: int) -> str:
    """`n` things with their plural, in the session's language: `count("epochs", 1)` is "1 epoch"."""
    units = {
        "epochs": msg("count.epochs", n=n),
        "images": msg("count.images", n=n),
        "classes": msg("count.classes", n=n),
        "files": msg("count.files", n=n),
        "runs": msg("count.runs", n=n),
    }
    return units[kind].render(language())


def run_settings(spec: RunSpec) -> str:
    """A run's main settings on one line: model, epochs, batch size, learning rate(s)."""
    if spec.two_phase:
        return t(
            "train.settings_two_phase",
            model=model_summary(spec.model),
            epochs=count("epochs", spec.epochs),
            batch=spec.batch_size,
            rate=rate(spec.learning_rate),
            optimizer=optimizer_label(spec.optimizer),
            finetune_epochs=count("epochs", spec.finetune_epochs),
            finetune_rate=rate(spec.finetune_learning_rate),
            total=count("epochs", spec.total_epochs),
        )
    return t(
        "train.settings",
        model=model_summary(spec.model),
        epochs=count("epochs", spec.epochs),
        batch=spec.batch_size,
        rate=rate(spec.learning_rate),
        optimizer=optimizer_label(spec.optimizer),
    )


def weights_missing_text(backbone: Backbone, image_size: int) -> str:
    """Where to put a backbone's missing ImageNet weights file, in the app's words."""
    return t(
        "model.weights_missing",
        label=backbone.label,
        file=backbone.weights_file(image_size),
        folder=str(settings.keras_cache_dirs()[0]),
    )


def dataset_option(dataset: Dataset) -> str:
    """A dataset in a select box (plain text)."""
    return t(
        "data.option",
        name=names.plain(dataset.name),
        classes=len(dataset.classes),
        images=int(dataset.counts()["total"].sum()),
    )


WIDGET_WORDS = {
    "files": "data.widget_words",
    "folder": "data.widget_words_folder",
    "camera": "data.widget_words_camera",
}
"""For each kind of Streamlit widget with words of its own, the note that says what they mean."""


def widget_words_note(widget: str = "files") -> None:
    """Streamlit's own words on a widget stay English: say in the reader's language what they mean."""
    if language() != DEFAULT_LANGUAGE:
        st.caption(t(WIDGET_WORDS[widget]))


def rate(value: float) -> str:
    """A learning rate as people write it: 0.001, 3e-05."""
    return f"{value:g}"


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return t("duration.hours", h=hours, m=minutes)
    if minutes:
        return t("duration.minutes", m=minutes, s=secs)
    return t("duration.seconds", s=secs)


def progress_text(info: RunInfo, now: datetime) -> str:
    """Where a run stands: what it is doing, epoch and step, time so far (counted live) and time left."""
    if info.status == RunState.QUEUED:
        return t("train.waiting", time=duration(_seconds_since(info.created, now)))
    parts = []
    if info.status in (RunState.RUNNING, RunState.STOPPING) and not info.in_feature_pass:
        if info.activity is not None or not info.step:
            parts.append(activity_text(info))
    if info.status in (RunState.RUNNING, RunState.STOPPING):
        parts.append(t("train.progress_epoch", epoch=max(info.epoch, 1), total=info.total_epochs))
        if info.steps_per_epoch:
            parts.append(t("train.progress_step", step=info.step, steps=info.steps_per_epoch))
    else:
        parts.append(t("train.progress_epoch", epoch=info.epoch, total=info.total_epochs))
    elapsed = info.elapsed_seconds
    if info.status == RunState.RUNNING and info.started:
        elapsed = _seconds_since(info.started, now)  # the clock runs between the trainer's status writes
    if elapsed:
        parts.append(t("train.progress_elapsed", time=duration(elapsed)))
    if info.eta_seconds is not None:
        parts.append(t("train.progress_eta", time=duration(info.eta_seconds)))
    return " · ".join(parts)


def activity_text(info: RunInfo) -> str:
    """What a running run does between its steps: setting up, preparing a phase, validating."""
    return {
        "loading": t("train.activity_loading"),
        "building": t("train.activity_building"),
        "tracing": t("train.activity_tracing"),
        "validating": t("train.activity_validating"),
    }.get(info.activity or "", t("train.activity_starting"))


def _seconds_since(iso: str | None, now: datetime) -> float:
    if not iso:
        return 0.0
    try:
        return max(0.0, (now - datetime.fromisoformat(iso)).total_seconds())
    except ValueError:
        return 0.0


def path_label(path: str) -> str:
    return {"features": t("path.features"), "prefix": t("path.prefix"), "full": t("path.full")}[path]


def path_text(info: RunInfo) -> str:
    """The run's training path as a badge, then the trainer's reason."""
    parts = []
    if info.path is not None:
        # The trainer's note names the path itself; the badge then only says whether it is the fast one.
        label = t("path.fast") if info.path_note and info.path != "full" else path_label(info.path)
        parts.append(f":{'gray' if info.path == 'full' else 'green'}-badge[{label}]")
    if info.path_note:
        parts.append(say_md(info.path_note))
    return " ".join(parts)


def features_progress_text(info: RunInfo) -> str:
    """Where the feature pass stands: images done of all, and its time left once measured."""
    done, total = info.features_done or 0, info.features_total or 0
    if info.path == "prefix":
        text = t("train.prefix_progress", done=done, total=total)
    else:
        text = t("train.features_progress", done=done, total=total)
    if info.features_eta_seconds is not None:
        text += " · " + t("train.progress_eta", time=duration(info.features_eta_seconds))
    return text


def study_option(found: Study, dataset_name: str | None) -> str:
    """A study in a selector: when it started, its backbone, its dataset and how many runs it has."""
    from tlcore.backbones import get_backbone

    return t(
        "study.option",
        created=found.created.replace("T", " ")[:16],
        backbone=get_backbone(found.options.backbone).label,
        dataset=names.plain(dataset_name) if dataset_name is not None else found.dataset,
        runs=count("runs", len(found.members)),
    )


def run_option(info: RunInfo) -> str:
    """A run in a selector: its name, status and start time."""
    created = (info.created or "").replace("T", " ")[:16]
    return " · ".join(part for part in (names.plain(info.name), status_label(info.status), created) if part)


def run_labels(infos: list[RunInfo]) -> dict[str, str]:
    """Run id -> a label for charts and selectors: the name, with a number added where names repeat."""
    labels: dict[str, str] = {}
    seen: dict[str, int] = {}
    for info in reversed(infos):
        name = names.plain(info.name)
        seen[name] = seen.get(name, 0) + 1
        labels[info.id] = name if seen[name] == 1 else f"{name} ({seen[name]})"
    return {info.id: labels[info.id] for info in infos}


def chart_labels() -> ChartLabels:
    """Chart words in the session's language."""
    return ChartLabels(
        epoch=t("chart.epoch"),
        loss=t("chart.loss"),
        accuracy=t("chart.accuracy"),
        train=t("chart.train"),
        val=t("chart.val"),
        batch_note=t("chart.batch_note"),
        images=t("chart.images"),
        class_=t("chart.class"),
        run=t("chart.run"),
        split=t("chart.split"),
        frozen=t("chart.frozen"),
        learns_pretrained=t("chart.learns_pretrained"),
        learns_random=t("chart.learns_random"),
        head=t("chart.head"),
        block=t("chart.block"),
        input=t("chart.input"),
        phase=t("chart.phase"),
        phases={
            Strategy.SCRATCH: strategy_label(Strategy.SCRATCH),
            Strategy.TRANSFER: strategy_label(Strategy.TRANSFER),
            Strategy.FINETUNE: strategy_label(Strategy.FINETUNE),
            "features": t("chart.phase_features"),
        },
        member=t("chart.member"),
        baseline=t("chart.baseline"),
        best_accuracy=t("chart.best_accuracy"),
        val_accuracy=t("chart.val_accuracy"),
        frozen_layers=t("chart.frozen_layers"),
        seconds=t("chart.seconds"),
        wall_clock=t("chart.wall_clock"),
        training_images=t("chart.training_images"),
        by_frozen_title=t("chart.by_frozen_title"),
        by_time_title=t("chart.by_time_title"),
        curves_title=t("chart.curves_title"),
        by_data_title=t("chart.by_data_title"),
    )
