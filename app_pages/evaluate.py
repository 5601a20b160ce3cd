"""Evaluate: after training, measure a run, try it on images, export it, and see its plain Keras code.

Four tabs over one chosen run, each a thin view over tlcore: `tlcore.evaluation` (metrics, confusion
matrix, mistakes; stored in the run folder), `tlcore.predict` (top-k classes for any image),
`tlcore.export` (Keras, SavedModel, TFLite, each checked against the app's predictions) and
`tlcore.codegen` (the script). The run's model is loaded once per session and model file.

Session state keys (prefix `evaluate.`): `evaluate.run` (run selector), `evaluate.test_zip` (uploader),
`evaluate.test_data` (run id -> id of the test data last evaluated, so its result stays shown),
`evaluate.gradcam` (toggle), `evaluate.try_files` (uploader), `evaluate.try_camera_on` (toggle: the
camera is only started when asked for), `evaluate.try_camera` (camera), `evaluate.try_val` (validation
images picked), `evaluate.top_k` (slider).
"""

from pathlib import Path

import streamlit as st

from tlcore import codegen, datasets, evaluation, export, runs, study
from tlcore.errors import ImageError, TLCoreError
from tlcore.images import IMAGE_SUFFIXES, convert_image, load_image
from tlcore.predict import Predictor, model_file, model_stamp
from tlcore.workspace import Workspace
from ui import cached, i18n, names, state
from ui.eval_charts import EvalChartLabels, confusion_heatmap, heatmap_overlay, top_k_bars
from ui.i18n import t

RUN = state.EVALUATE_RUN
TEST_ZIP = "evaluate.test_zip"
TEST_DATA = "evaluate.test_data"
GRADCAM = "evaluate.gradcam"
TRY_FILES = "evaluate.try_files"
TRY_CAMERA_ON = "evaluate.try_camera_on"
TRY_CAMERA = "evaluate.try_camera"
TRY_VAL = "evaluate.try_val"
TOP_K = "evaluate.top_k"

GALLERY_LIMIT = 24
GALLERY_COLUMNS = 4
GALLERY_WIDTH = 160
TRY_WIDTH = 200


@st.cache_resource(max_entries=2, show_spinner=False)
def _predictor(root: str, run_id: str, mtime_ns: int, size: int) -> Predictor:
    # Keyed on best.keras's time and size: a replaced model is loaded again.
    return Predictor.load(Workspace(root), run_id)


def predictor_for(run_id: str) -> Predictor:
    """The run's model, loaded once per model file (raises TLCoreError when it has none)."""
    stamp = model_stamp(model_file(runs.load_run(workspace, run_id), require_finished=False))
    return _predictor(str(workspace.root), run_id, stamp["mtime_ns"], stamp["size"])


def chart_labels() -> EvalChartLabels:
    return EvalChartLabels(
        true=t("evaluate.chart_true"),
        predicted=t("evaluate.chart_predicted"),
        images=t("evaluate.chart_images"),
        share=t("evaluate.chart_share"),
        class_=t("evaluate.chart_class"),
        probability=t("evaluate.chart_probability"),
    )


def percent(value: float) -> str:
    return f"{value:.1%}"


def evaluate_tab(info: runs.RunInfo) -> None:
    """Evaluate on the validation split or a test zip; show metrics, the heatmap and the mistakes."""
    st.caption(t("evaluate.intro"))
    upload = st.file_uploader(t("evaluate.test_zip"), type=["zip"], key=TEST_ZIP, help=t("evaluate.test_zip_help"))
    shown_data = st.session_state.setdefault(TEST_DATA, {})
    if st.button(t("evaluate.button"), type="primary", icon=":material/fact_check:"):
        bar = st.progress(0.0)

        def progress(done: int, total: int) -> None:
            bar.progress(done / max(total, 1), text=t("evaluate.progress", done=done, total=total))

        try:
            result = evaluation.evaluate(
                workspace,
                info.id,
                test_zip=upload,
                test_name=upload.name if upload else None,
                predictor=predictor_for(info.id),
                progress=progress,
            )
        except TLCoreError as exc:
            st.error(i18n.error_text(exc))
            return
        finally:
            bar.empty()
        shown_data[info.id] = result.data["dataset"] if result.data["kind"] == "test" else None
    else:
        result = evaluation.load_evaluation(workspace, info.id, shown_data.get(info.id))
    if result is None:
        return
    show_evaluation(result)


def show_evaluation(result: evaluation.Evaluation) -> None:
    """An evaluation's numbers, confusion heatmap and gallery of mistakes."""
    data = result.data
    if data["kind"] == "val":
        st.markdown(t("evaluate.on_val", name=names.md(data["name"]), images=data["images"]))
    else:
        st.markdown(t("evaluate.on_test", name=names.md(data["name"]), images=data["images"]))
    if result.cached:
        st.caption(t("evaluate.stored", created=result.created.replace("T", " ")[:16]))
    accuracy_col, f1_col, wrong_col = st.columns(3)
    accuracy_col.metric(t("evaluate.accuracy"), percent(result.accuracy))
    f1_col.metric(t("evaluate.macro_f1"), percent(result.macro["f1"]), help=t("evaluate.macro_f1_help"))
    mistakes = result.misclassified()
    wrong_col.metric(t("evaluate.misclassified_count"), f"{len(mistakes)} / {len(result.images)}")

    table_col, heat_col = st.columns(2)
    with table_col:
        st.markdown(f"**{t('evaluate.per_class')}**")
        per_class = result.per_class_frame()
        st.dataframe(
            per_class.assign(**{"class": per_class["class"].map(names.plain)}),
            hide_index=True,
            column_config={
                "class": st.column_config.TextColumn(t("evaluate.col_class")),
                "precision": st.column_config.NumberColumn(
                    t("evaluate.col_precision"), format="percent", help=t("evaluate.col_precision_help")
                ),
                "recall": st.column_config.NumberColumn(
                    t("evaluate.col_recall"), format="percent", help=t("evaluate.col_recall_help")
                ),
                "f1": st.column_config.NumberColumn(t("evaluate.col_f1"), format="percent"),
                "support": st.column_config.NumberColumn(t("evaluate.col_support")),
            },
        )
    with heat_col:
        st.markdown(f"**{t('evaluate.confusion')}**", help=t("evaluate.confusion_help"))
        confusion = result.confusion_frame()
        confusion[["true", "predicted"]] = confusion[["true", "predicted"]].map(names.plain)
        shown_classes = [names.plain(name) for name in result.classes]
        st.altair_chart(confusion_heatmap(confusion, shown_classes, chart_labels()), width="stretch")

    st.markdown(f"**{t('evaluate.gallery', count=len(mistakes))}**")
    if not mistakes:
        st.success(t("evaluate.gallery_none"))
        return
    gradcam = st.toggle(t("evaluate.gradcam"), key=GRADCAM, help=t("evaluate.gradcam_help"))
    if len(mistakes) > GALLERY_LIMIT:
        st.caption(t("evaluate.gallery_more", shown=GALLERY_LIMIT, count=len(mistakes)))
    predictor = None
    if gradcam:
        try:
            predictor = predictor_for(result.run_id)
        except TLCoreError as exc:
            st.error(i18n.error_text(exc))
    columns = st.columns(GALLERY_COLUMNS)
    for index, image in enumerate(mistakes[:GALLERY_LIMIT]):
        caption = t(
            "evaluate.gallery_caption",
            true=names.md(result.classes[image.label]),
            predicted=names.md(result.classes[image.predicted]),
            confidence=percent(image.confidence),
        )
        path = result.image_path(image)
        with columns[index % GALLERY_COLUMNS]:
            if not path.is_file():
                st.caption(t("evaluate.image_missing", file=names.md(image.source)))
            elif predictor is not None:
                pixels = load_image(path, predictor.image_size)
                heat = predictor.grad_cam(pixels, image.predicted)
                st.image(heatmap_overlay(pixels, heat), caption=caption, width=GALLERY_WIDTH)
            else:
                st.image(str(path), caption=caption, width=GALLERY_WIDTH)


def try_tab(info: runs.RunInfo) -> None:
    """Upload images, take a picture, or pick validation images; show each one's top-k classes as bars."""
    st.caption(t("evaluate.try_intro"))
    try:
        predictor = predictor_for(info.id)
    except TLCoreError as exc:
        st.error(i18n.error_text(exc))
        return
    uploads = st.file_uploader(
        t("evaluate.try_upload"),
        accept_multiple_files=True,
        key=TRY_FILES,
        type=[suffix.lstrip(".") for suffix in IMAGE_SUFFIXES],
    )
    picture = None
    if st.toggle(t("evaluate.try_camera_on"), key=TRY_CAMERA_ON):
        picture = st.camera_input(t("evaluate.try_camera"), key=TRY_CAMERA)
        i18n.widget_words_note("camera")
    val_images = validation_images(info)
    picked = st.multiselect(
        t("evaluate.try_val"),
        list(val_images),
        format_func=lambda p: names.plain(val_images[p][0]),
        key=TRY_VAL,
        placeholder=t("widget.choose"),
    )
    classes = len(predictor.classes)
    state.default(TOP_K, min(5, classes))
    k = st.slider(t("evaluate.top_k"), 1, classes, key=TOP_K) if classes > 2 else classes
    sources = [(upload.name, upload, None) for upload in uploads or []]
    if picture is not None:
        sources.append((t("evaluate.try_camera_name"), picture, None))
    sources += [(val_images[path][0], Path(path), val_images[path][1]) for path in picked]
    if not sources:
        st.info(t("evaluate.try_none"))
        return
    labels = chart_labels()
    for name, source, truth in sources:
        image_col, bars_col = st.columns([1, 2], vertical_alignment="center")
        try:
            # Shown as the model sees it: converted once (EXIF orientation, 8-bit RGB), whatever the upload's
            # mode; a browser cannot show a 16-bit or CMYK file, and Streamlit cannot re-encode one.
            converted = convert_image(source, name)
            prediction = predictor.predict([converted], names=[name])[0]
        except ImageError as exc:
            st.error(i18n.error_text(exc))
            continue
        image_col.image(converted, caption=names.plain(name), width=TRY_WIDTH)
        with bars_col:
            st.markdown(
                t("evaluate.try_result", label=names.md(prediction.label), confidence=percent(prediction.confidence))
            )
            if truth is not None:
                st.caption(t("evaluate.try_truth", label=names.md(truth)))
            top = [(names.plain(name), probability) for name, probability in prediction.top(k)]
            st.altair_chart(top_k_bars(top, labels), width="stretch")


def validation_images(info: runs.RunInfo) -> dict[str, tuple[str, str]]:
    """Path -> (label shown, true class) for the validation images of the run's dataset."""
    try:
        dataset = cached.dataset(workspace, info.spec.dataset)
    except TLCoreError:
        return {}
    return {
        str(dataset.path(item)): (f"{item.source} ({dataset.classes[item.label]})", dataset.classes[item.label])
        for item in dataset.items
        if item.split == "val"
    }


def export_tab(info: runs.RunInfo) -> None:
    """Export every format, show each file's check against the app, and offer the downloads."""
    size = info.spec.model.image_size
    st.caption(t("evaluate.export_intro", size=size))
    if st.button(t("evaluate.export_button"), type="primary", icon=":material/ios_share:"):
        with st.spinner(t("evaluate.exporting")):
            try:
                result = export.export_run(
                    workspace, info.id, archive=True, predictor=predictor_for(info.id), lang=i18n.language()
                )
            except TLCoreError as exc:
                st.error(i18n.error_text(exc))
                return
    else:
        result = export.load_export(workspace, info.id)
    if result is None:
        return
    for reason in result.failed.values():
        st.warning(i18n.say_md(reason), icon=":material/warning:")
    format_names = {
        "keras": t("evaluate.format_keras"),
        "savedmodel": t("evaluate.format_savedmodel"),
        "tflite": t("evaluate.format_tflite"),
        "tflite-quant": t("evaluate.format_tflite_quant"),
        "onnx": t("evaluate.format_onnx"),
        "labels": t("evaluate.format_labels"),
        "readme": t("evaluate.format_readme"),
    }
    rows = []
    for fmt, check in result.checks.items():
        required = (
            t("evaluate.tolerance_top1", margin=f"{export.QUANT_DECISIVE_MARGIN:g}")
            if check.tolerance is None
            else t("evaluate.tolerance_value", tolerance=f"{check.tolerance:g}")
        )
        rows.append(
            {
                "format": format_names[fmt],
                "passed": t("evaluate.export_passed") if check.passed else t("evaluate.export_failed"),
                "difference": f"{check.max_abs_diff:.1e}",
                "agreement": check.top1_agreement,
                "required": required,
            }
        )
    if rows:
        st.dataframe(
            rows,
            hide_index=True,
            column_config={
                "format": st.column_config.TextColumn(t("evaluate.export_format")),
                # Narrow where the values are short, so the conditions fit whole in a 1400-pixel window;
                # each file is named by its download button below.
                "passed": st.column_config.TextColumn(t("evaluate.export_check"), width="small"),
                "difference": st.column_config.TextColumn(t("evaluate.export_difference")),
                "agreement": st.column_config.NumberColumn(t("evaluate.export_agreement"), format="percent"),
                "required": st.column_config.TextColumn(t("evaluate.export_tolerance")),
            },
        )
        st.caption(t("evaluate.export_check_note", images=next(iter(result.checks.values())).images))
    if "zip" in result.files:
        zip_path = result.files["zip"]
        st.download_button(
            t("evaluate.download_all"),
            data=zip_path.read_bytes,
            file_name=names.file_name(info.name, fallback=info.id) + ".zip",
            mime="application/zip",
            type="primary",
            icon=":material/folder_zip:",
        )
    columns = st.columns(3)
    for index, (key, path) in enumerate((k, p) for k, p in result.files.items() if k != "zip"):
        if path.is_dir():
            data, file_name = (lambda folder=path: export.zip_paths([folder])), f"{path.name}.zip"
        else:
            data, file_name = path.read_bytes, path.name
        columns[index % 3].download_button(
            format_names[key],
            data=data,
            file_name=file_name,
            icon=":material/download:",
            key=f"evaluate.download.{key}",
        )


def code_tab(info: runs.RunInfo) -> None:
    """The plain Keras script that reproduces the run, shown and downloadable."""
    st.caption(t("evaluate.code_intro"))
    try:
        script = codegen.run_script(workspace, info.id)
    except TLCoreError as exc:
        st.error(i18n.error_text(exc))
        return
    file_name = codegen.script_name(info.id)
    st.markdown(t("evaluate.code_usage", file=file_name))
    st.download_button(
        t("evaluate.code_download", file=file_name),
        data=script,
        file_name=file_name,
        mime="text/x-python",
        icon=":material/download:",
    )
    st.code(script, language="python", line_numbers=True)
    reproduce_section(info)
    tensorboard_section(info)


def tensorboard_section(info: runs.RunInfo) -> None:
    """The commands that open this run's curves in TensorBoard, beside its study's and its dataset's runs."""
    st.subheader(t("evaluate.tensorboard_title"))
    st.caption(t("evaluate.tensorboard_intro"))
    st.markdown(t("evaluate.tensorboard_run"))
    st.code(runs.tensorboard_command([info]), language="bash", wrap_lines=True)
    every_run = runs.list_runs(workspace)
    member_of = study.study_of(workspace, info.id)
    if member_of is not None:
        members = [other for other in every_run if other.id in member_of.run_ids]
        st.markdown(t("evaluate.tensorboard_study", count=len(members)))
        st.code(runs.tensorboard_command(members), language="bash", wrap_lines=True)
    siblings = [other for other in every_run if other.spec and other.spec.dataset == info.spec.dataset]
    if len(siblings) > 1:
        st.markdown(t("evaluate.tensorboard_dataset", count=len(siblings)))
        st.code(runs.tensorboard_command(siblings), language="bash", wrap_lines=True)


def reproduce_section(info: runs.RunInfo) -> None:
    """The run's spec and dataset as downloads, with the commands that train them on another machine."""
    st.subheader(t("evaluate.reproduce_title"))
    st.caption(t("evaluate.reproduce_intro"))
    try:
        dataset = datasets.load_dataset(workspace, info.spec.dataset)
    except TLCoreError as exc:
        st.error(i18n.error_text(exc))
        return
    zip_name = f"dataset-{dataset.id}.zip"
    spec_col, data_col = st.columns(2)
    spec_col.download_button(
        t("evaluate.reproduce_spec"),
        data=(info.dir / runs.SPEC_FILE).read_bytes,
        file_name="spec.json",
        mime="application/json",
        icon=":material/download:",
    )
    if dataset.source_dir is None:
        data_col.download_button(
            t("evaluate.reproduce_dataset", file=zip_name),
            data=lambda: datasets.export_zip(dataset, workspace).read_bytes(),
            file_name=zip_name,
            mime="application/zip",
            icon=":material/folder_zip:",
        )
    else:
        data_col.caption(t("evaluate.reproduce_folder", folder=str(dataset.source_dir)))
    st.code(codegen.reproduce_commands(dataset, zip_name, lang=i18n.language()), language="bash")


def default_run(infos: list[runs.RunInfo]) -> str:
    """The run to show first: the one chosen elsewhere in the app, else the newest with a model."""
    ids = [info.id for info in infos]
    chosen = st.session_state.get(state.RUN_ID)
    if chosen in ids:
        return chosen
    with_model = [info.id for info in infos if (info.dir / runs.BEST_MODEL_FILE).is_file()]
    return with_model[0] if with_model else ids[0]


workspace = state.workspace()
st.title(t("nav.evaluate"))
all_runs = [info for info in runs.list_runs(workspace) if info.spec is not None]
if not all_runs:
    st.info(t("evaluate.no_runs"))
    st.page_link("app_pages/train.py", label=t("nav.train"), icon=":material/model_training:")
else:
    by_id = {info.id: info for info in all_runs}
    if st.session_state.get(RUN) not in by_id:
        st.session_state[RUN] = default_run(all_runs)
    options = {info.id: i18n.run_option(info) for info in all_runs}
    run = by_id[
        st.selectbox(
            t("evaluate.run"),
            list(options),
            format_func=state.worded(RUN, options.get),
            key=RUN,
            on_change=lambda: st.session_state.update({state.RUN_ID: st.session_state[RUN]}),
        )
    ]
    st.caption(i18n.run_settings(run.spec))
    evaluate_section, try_section, export_section, code_section = st.tabs(
        [t("evaluate.tab_evaluate"), t("evaluate.tab_try"), t("evaluate.tab_export"), t("evaluate.tab_code")]
    )
    with evaluate_section:
        evaluate_tab(run)
    with try_section:
        try_tab(run)
    with export_section:
        export_tab(run)
    with code_section:
        code_tab(run)
