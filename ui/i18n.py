"""Every string the app shows, in English and Japanese, and the helpers that word tlcore's values.

`t(key, **fmt)` looks `key` up in the session's language (`st.session_state["lang"]`) and fills in
`fmt` with `str.format`. Both dictionaries have exactly the same keys (a test checks it, and that
every key the app passes to `t` exists). Keys are always written out in full where `t` is called,
so the test can find them. Messages from tlcore (`TLCoreError`) are English sentences; `error_text` puts a
translated label in front of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import streamlit as st

from tlcore.models import Strategy, rules
from tlcore.runs import RunState
from ui.charts import ChartLabels

if TYPE_CHECKING:
    from tlcore.backbones import Backbone
    from tlcore.datasets import Dataset
    from tlcore.models import ModelSpec
    from tlcore.runs import RunInfo
    from tlcore.spec import RunSpec

T = TypeVar("T")

LANGUAGES = {"en": "English", "ja": "日本語"}
DEFAULT_LANGUAGE = "en"

EN: dict[str, str] = {
    # navigation and sidebar
    "nav.home": "Home",
    "nav.data": "Data",
    "nav.model": "Model",
    "nav.train": "Train",
    "nav.compare": "Compare",
    "sidebar.language": "Language / 言語",
    "sidebar.workspace": "Workspace",
    "sidebar.current": "Current choices",
    "sidebar.dataset": "Dataset",
    "sidebar.model": "Model",
    "sidebar.run": "Run",
    "sidebar.none": "none",
    "sidebar.dataset_value": "{name} ({classes} classes)",
    "error.prefix": "Error:",
    # home
    "home.title": "Transfer learning studio",
    "home.intro": (
        "Teach a network to recognise your own image classes without training it from nothing. "
        "Start from a network that already learned to see on ImageNet's 1.2 million photos, keep what it "
        "knows, and train only what your task needs. Three ways to do it:"
    ),
    "home.transfer": (
        "**The pretrained base is frozen; only the new head learns.** The base turns every image into the "
        "features it learned on ImageNet, and a small new classifier (the head) learns to map those features "
        "to your classes. Fast, needs little data, hard to overfit: the best first try."
    ),
    "home.finetune": (
        "**The head and the top of the base learn; the first N base layers stay frozen.** Early layers "
        "detect edges and textures that suit almost any photo, so they stay as they are; later layers detect "
        "shapes closer to ImageNet's classes, so they may adapt to yours. Use a small learning rate (or the "
        "two-phase recipe: train the head on a frozen base first, then unfreeze the top) so that large "
        "gradients from a random head do not wreck the pretrained features."
    ),
    "home.scratch": (
        "**The same network with random weights; every layer learns.** Nothing is borrowed from ImageNet. "
        "On a small dataset this is the baseline that shows what pretraining buys: expect lower accuracy, "
        "slower learning, or both."
    ),
    "home.steps_title": "Four steps",
    "home.step_data": "1. Upload a zip with one folder per class, or try the demo dataset.",
    "home.step_model": "2. Pick a backbone, a head and a strategy; see which layers will learn.",
    "home.step_train": "3. Start a run and watch its loss and accuracy live; stop it at any time.",
    "home.step_compare": "4. Overlay runs to see what pretraining and fine-tuning bought.",
    # data
    "data.title": "Data",
    "data.intro": (
        "A dataset is a zip with one folder of images per class (optionally inside train/ and val/ folders). "
        "Images are checked, converted and stored in the workspace; files that cannot be used are listed "
        "with the reason."
    ),
    "data.train_zip": "Dataset zip (or training zip)",
    "data.train_zip_help": (
        "One folder per class. With train/ and val/ folders inside, that split is used; otherwise a fixed "
        "part of each class is set aside for validation."
    ),
    "data.val_zip": "Validation zip (optional)",
    "data.val_zip_help": "The same class folders as the training zip, with other images.",
    "data.add": "Add dataset",
    "data.demo": "Demo dataset",
    "data.demo_help": "No data at hand? A small generated dataset to try everything in a few minutes.",
    "data.ingesting": "Reading {name}…",
    "data.ingested": "Added {name}: {images} images in {classes} classes.",
    "data.none_yet": "No dataset yet: upload a zip or add the demo dataset.",
    "data.pick": "Dataset",
    "data.option": "{name} · {classes} classes · {images} images",
    "data.classes": "Classes",
    "data.train_images": "Training images",
    "data.val_images": "Validation images",
    "data.samples": "Sample images",
    "data.samples_classes": "Classes to show",
    "data.skipped": "Skipped files ({count})",
    "data.skipped_path": "File",
    "data.skipped_reason": "Reason",
    "data.nothing_skipped": "Every file was used.",
    "data.folder_title": "Folder on the server",
    "data.folder_help": (
        "For data too large to upload: register a folder of class folders on this server. Its JPEG photos are read "
        "where they are, never copied, and training streams them from disk."
    ),
    "data.folder_none": (
        "No server folder is allowed yet. The operator allows some by starting the app with TLCORE_DATA_DIRS set to "
        "them, separated by colons, for example `TLCORE_DATA_DIRS=/data/photos streamlit run app.py`."
    ),
    "data.folder_pick": "Folder",
    "data.folder_add": "Register folder",
    "data.folder_source": "Read in place from the server folder {folder}.",
    "data.folder_missing": "Some images of this dataset have gone from {folder} or changed since it was "
    "registered; register the folder again to train on what it holds now.",
    # model
    "model.title": "Model",
    "model.intro": (
        "A pretrained base (the backbone) plus a new head for your classes. The strategy decides which layers learn."
    ),
    "model.preset": "Original article preset",
    "model.preset_help": (
        "ResNet50, Flatten head, fine-tuning with the first 168 layers frozen, as in the original article."
    ),
    "model.backbone": "Backbone",
    "model.backbone_option": "{label} · {params:.1f} M parameters · {speed}",
    "model.image_size": "Input size (pixels)",
    "model.image_size_help": (
        "Images are resized to this square size. ImageNet weights were trained at 224; smaller sizes train faster."
    ),
    "model.pooling": "Head",
    "model.dropout": "Dropout before the classifier",
    "model.hidden_units": "Hidden units in the head (0 = none)",
    "model.hidden_units_help": "An extra Dense + ReLU layer between the pooled features and the classifier.",
    "model.strategy": "Strategy",
    "model.weights": "Starting weights",
    "model.weights_path": "Path of a Keras weights file on this machine",
    "model.weights_path_needed": "Type the path of a weights file (.h5 or .weights.h5) on this machine.",
    "model.weights_found": "ImageNet weights found: {path}",
    "model.weights_offline_hint": "You can still give a weights file, use random weights, or train from scratch.",
    "model.weights_download": (
        "ImageNet weights are not on this machine yet; they will be downloaded when training starts."
    ),
    "model.scratch_weights": "From scratch always starts from random weights.",
    "model.no_dataset": "No dataset chosen yet: the head is shown with 2 classes.",
    "model.building": "Building {label} to list its layers…",
    "model.frozen_layers": "Frozen base layers (of {total})",
    "model.frozen_help": "The first N layers of the base keep their pretrained weights; the layers after them learn.",
    "model.frozen_fixed_help": (
        "Set by the strategy: transfer learning freezes the whole base, from scratch freezes nothing. Choose "
        "fine-tuning to set it freely."
    ),
    "model.snap": "Snap to block boundaries",
    "model.snap_help": "Only offer values that fall exactly between two blocks, so no block is half frozen.",
    "model.params_total": "Total parameters",
    "model.params_trainable": "Trainable parameters",
    "model.params_frozen": "Frozen parameters",
    "model.params_frozen_help": (
        "Weights that do not learn: frozen layers, plus BatchNormalization's running statistics (never "
        "learned by gradient)."
    ),
    "model.layers": "Layers",
    "model.layers_legend": "Green rows learn; grey rows are frozen.",
    "model.summary": "{backbone} · {strategy}",
    "model.summary_frozen": "{backbone} · {strategy} · {frozen} frozen layers",
    "strategy.scratch": "From scratch",
    "strategy.transfer": "Transfer learning",
    "strategy.finetune": "Fine-tuning",
    "strategy.hint_scratch": "Random weights; every layer learns.",
    "strategy.hint_transfer": "The base is frozen; only the head learns.",
    "strategy.hint_finetune": "The first N base layers are frozen; the rest of the base and the head learn.",
    "pooling.avg": "Global average pooling",
    "pooling.flatten": "Flatten",
    "weights.imagenet": "ImageNet",
    "weights.none": "Random",
    "weights.file": "Weights file",
    "speed.fast": "fast on a CPU",
    "speed.medium": "medium on a CPU",
    "speed.slow": "slow on a CPU",
    "layers.index": "#",
    "layers.index_help": "Numbered as in model.layers[:N]: freezing N layers freezes base rows 0 to N−1.",
    "layers.part": "Part",
    "layers.name": "Name",
    "layers.type": "Type",
    "layers.output_shape": "Output shape",
    "layers.params": "Parameters",
    "layers.trainable_params": "Trainable parameters",
    "layers.trainable": "Learns",
    # train
    "train.title": "Train",
    "train.new_run": "New run",
    "train.need_dataset": "Choose a dataset first.",
    "train.need_model": "Choose a model first.",
    "train.summary": "Dataset: **{dataset}** · Model: **{model}**",
    "train.epochs": "Epochs",
    "train.batch_size": "Batch size",
    "train.learning_rate": "Learning rate",
    "train.optimizer": "Optimizer",
    "train.augmentation": "Augmentation (training images only)",
    "train.flip": "Random left–right flip",
    "train.rotation": "Rotation",
    "train.rotation_help": "Largest rotation as a fraction of a full turn: 0.1 is up to ±36°.",
    "train.zoom": "Zoom",
    "train.contrast": "Contrast",
    "train.two_phase": "Two-phase recipe",
    "train.two_phase_help": (
        "First train the head on a frozen base for the epochs on the left, then fine-tune (with the frozen "
        "layers chosen on the Model page) at the lower learning rate below."
    ),
    "train.two_phase_needs_finetune": (
        "The two-phase recipe ends in fine-tuning: choose that strategy on the Model page."
    ),
    "train.finetune_epochs": "Fine-tuning epochs",
    "train.finetune_learning_rate": "Fine-tuning learning rate",
    "train.seed": "Seed",
    "train.name": "Run name (optional)",
    "train.start": "Start training",
    "train.no_runs": "No runs yet.",
    "train.run": "Run",
    "train.stop": "Stop",
    "train.queued": "Queued: the run starts as soon as its training process is up and no earlier run is training.",
    "train.run_error": "Message from the run:",
    "train.best_val_accuracy": "Best validation accuracy",
    "train.best_epoch": "Reached at epoch {epoch}.",
    "train.no_metrics": "No metrics yet: the first numbers appear after the first batch.",
    "train.settings": "{model} · {epochs} epochs · batch {batch} · {optimizer} at {rate}",
    "train.settings_two_phase": (
        "{model} · batch {batch} · {optimizer} · head only for {epochs} epochs at {rate}, "
        "then fine-tuning for {finetune_epochs} epochs at {finetune_rate}"
    ),
    "train.progress_epoch": "Epoch {epoch} / {total}",
    "train.progress_step": "step {step} / {steps}",
    "train.progress_elapsed": "{time} elapsed",
    "train.progress_eta": "about {time} left",
    "train.features_progress": "Computing the frozen base's features: {done} / {total} images",
    "train.prefix_progress": "Computing the frozen layers' outputs: {done} / {total} images",
    "path.features": "Fast path: cached features",
    "path.prefix": "Fast path: cached frozen layers",
    "path.full": "Full network every epoch",
    "status.queued": "Queued",
    "status.running": "Running",
    "status.stopping": "Stopping",
    "status.stopped": "Stopped",
    "status.completed": "Completed",
    "status.failed": "Failed",
    "status.interrupted": "Interrupted",
    "status.damaged": "Damaged",
    "duration.seconds": "{s}s",
    "duration.minutes": "{m}m {s:02d}s",
    "duration.hours": "{h}h {m:02d}m",
    # compare
    "compare.title": "Compare runs",
    "compare.no_runs": "No runs yet: start one on the Train page.",
    "compare.runs": "Runs to compare",
    "compare.manage": "Rename or delete a run",
    "compare.target": "Run",
    "compare.new_name": "Name",
    "compare.rename": "Rename",
    "compare.delete": "Delete",
    "compare.delete_active_help": "Stop the run before deleting it.",
    "compare.confirm_delete": "Delete the run **{name}** and everything it saved? This cannot be undone.",
    "compare.confirm_yes": "Yes, delete",
    "compare.confirm_no": "Cancel",
    "compare.renamed": "Renamed to {name}.",
    "compare.deleted": "Deleted {name}.",
    "runs.name": "Name",
    "runs.backbone": "Backbone",
    "runs.strategy": "Strategy",
    "runs.path": "Path",
    "runs.path_help": (
        "How each epoch ran: on features the frozen base computed once, on the cached outputs of the frozen "
        "layers, or through the whole network."
    ),
    "runs.frozen_layers": "Frozen layers",
    "runs.trainable_params": "Trainable parameters",
    "runs.best_val_accuracy": "Best val. accuracy",
    "runs.best_epoch": "Best epoch",
    "runs.seconds_per_epoch": "Time per epoch",
    "runs.total_seconds": "Total time",
    "runs.status": "Status",
    "runs.id": "Id",
    # charts
    "chart.epoch": "epoch",
    "chart.loss": "loss",
    "chart.accuracy": "accuracy",
    "chart.train": "train",
    "chart.val": "validation",
    "chart.batch_note": "thin line: per batch · points: per epoch",
    "chart.images": "images",
    "chart.class": "class",
    "chart.run": "run",
    "chart.split": "split",
    "chart.frozen": "frozen (pretrained)",
    "chart.learns_pretrained": "learns (starts pretrained)",
    "chart.learns_random": "learns (starts random)",
    "chart.head": "new head",
    "chart.block": "block {n}",
    "chart.input": "input",
    # evaluate (evaluate, try it, export, code)
    "nav.evaluate": "Evaluate & export",
    "evaluate.no_runs": "No runs yet: start one on the Train page, then come back to evaluate it.",
    "evaluate.run": "Run",
    "evaluate.tab_evaluate": "Evaluate",
    "evaluate.tab_try": "Try it",
    "evaluate.tab_export": "Export",
    "evaluate.tab_code": "Code & reproduce",
    "evaluate.intro": (
        "Measures the run's best model on the validation images it never trained on, or on a test zip of your "
        "own. Results are kept with the run, so evaluating again is instant."
    ),
    "evaluate.test_zip": "Test zip (optional)",
    "evaluate.test_zip_help": (
        "One folder per class, named like the run's classes (some of them is fine). Leave empty to use the "
        "validation split."
    ),
    "evaluate.button": "Evaluate",
    "evaluate.progress": "Predicting {done} / {total} images…",
    "evaluate.on_val": "On the validation split of **{name}**: {images} images.",
    "evaluate.on_test": "On the test data **{name}**: {images} images.",
    "evaluate.stored": "Stored result from {created} (the model has not changed since).",
    "evaluate.accuracy": "Accuracy",
    "evaluate.macro_f1": "Macro F1",
    "evaluate.macro_f1_help": "F1 averaged over the classes, each class counting the same however many images it has.",
    "evaluate.misclassified_count": "Misclassified",
    "evaluate.per_class": "Per class",
    "evaluate.col_class": "Class",
    "evaluate.col_precision": "Precision",
    "evaluate.col_precision_help": "Of the images predicted as this class, the share that really are.",
    "evaluate.col_recall": "Recall",
    "evaluate.col_recall_help": "Of the images of this class, the share the model found.",
    "evaluate.col_f1": "F1",
    "evaluate.col_support": "Images",
    "evaluate.confusion": "Confusion matrix",
    "evaluate.confusion_help": (
        "Rows: the true class; columns: the predicted class. The number is a count of images, the colour its "
        "share of the row. Correct predictions are on the diagonal."
    ),
    "evaluate.gallery": "Misclassified images ({count})",
    "evaluate.gallery_none": "No image was misclassified.",
    "evaluate.gallery_caption": "true: {true} · predicted: {predicted} ({confidence})",
    "evaluate.gallery_more": "The {shown} most confident mistakes of {count}.",
    "evaluate.gradcam": "Grad-CAM heat maps",
    "evaluate.gradcam_help": (
        "Red marks where the model saw the class it predicted. The map is as coarse as the base's last "
        "feature map (7×7 at 224 pixels)."
    ),
    "evaluate.image_missing": "{file} is no longer in the workspace.",
    "evaluate.try_intro": "Upload images or pick validation images to see the classes the model gives them.",
    "evaluate.try_upload": "Images",
    "evaluate.try_val": "Validation images",
    "evaluate.top_k": "Classes shown",
    "evaluate.try_none": "Upload an image or pick one to see its prediction.",
    "evaluate.try_result": "**{label}** ({confidence})",
    "evaluate.try_truth": "True class: {label}",
    "evaluate.export_intro": (
        "Download the trained model. Every file takes RGB images of {size}×{size} pixels with values 0–255 "
        "(the preprocessing is inside) and returns class probabilities in the order of labels.txt. After "
        "export, each file is loaded again and its predictions are compared with the app's."
    ),
    "evaluate.export_button": "Export all formats",
    "evaluate.exporting": "Exporting and checking each file…",
    "evaluate.export_format": "Format",
    "evaluate.export_file": "File",
    "evaluate.export_tolerance": "Required",
    "evaluate.export_difference": "Largest difference",
    "evaluate.export_agreement": "Same top class",
    "evaluate.export_check": "Check",
    "evaluate.export_passed": "passed",
    "evaluate.export_failed": "failed",
    "evaluate.export_check_note": "Compared with the app's probabilities on {images} images of the run's dataset.",
    "evaluate.tolerance_value": "difference ≤ {tolerance}",
    "evaluate.tolerance_top1": "same top class where the app's leads by > {margin}",
    "evaluate.download_all": "Download everything (.zip)",
    "evaluate.format_keras": "Keras (.keras)",
    "evaluate.format_savedmodel": "TensorFlow SavedModel (.zip)",
    "evaluate.format_tflite": "TFLite, float32",
    "evaluate.format_tflite_quant": "TFLite, quantized (8-bit weights)",
    "evaluate.format_labels": "Class names (labels.txt)",
    "evaluate.format_readme": "How to use (README.txt)",
    "evaluate.code_intro": (
        "The plain Keras script that trains this run again, with its numbers: backbone, head, frozen layers, "
        "compile and fit."
    ),
    "evaluate.code_usage": (
        "Run it with `python {file} IMAGES_FOLDER`, where the folder holds one folder of images per class."
    ),
    "evaluate.code_download": "Download {file}",
    "evaluate.reproduce_title": "Train it on another machine",
    "evaluate.reproduce_intro": (
        "The spec is the whole job: download it with the dataset and run one of these commands where tlcore is "
        "installed, on a GPU server or a cluster (see docs/scaling.md). The spec's batch size stays the global "
        "batch, so the run trains as it did here."
    ),
    "evaluate.reproduce_spec": "Download spec.json",
    "evaluate.reproduce_dataset": "Download {file}",
    "evaluate.reproduce_folder": (
        "The dataset is read from the server folder {folder}; it must be there on the other machine too."
    ),
    "evaluate.chart_true": "true class",
    "evaluate.chart_predicted": "predicted class",
    "evaluate.chart_images": "images",
    "evaluate.chart_share": "share of the true class",
    "evaluate.chart_class": "class",
    "evaluate.chart_probability": "probability",
    # model page: the layer strip and random starting weights
    "model.layer_strip": "The whole network, one bar per layer, from the input (left) to the head (right):",
    "model.random_weights_hint": (
        "Random starting weights: the frozen layers keep their random values and pass on little for the other "
        "layers to learn from, so expect accuracy near chance. That is the baseline that shows what pretrained "
        "weights are worth; to train a network from random weights, choose From scratch."
    ),
}

JA: dict[str, str] = {
    "nav.home": "ホーム",
    "nav.data": "データ",
    "nav.model": "モデル",
    "nav.train": "学習",
    "nav.compare": "比較",
    "sidebar.language": "Language / 言語",
    "sidebar.workspace": "ワークスペース",
    "sidebar.current": "現在の選択",
    "sidebar.dataset": "データセット",
    "sidebar.model": "モデル",
    "sidebar.run": "実行",
    "sidebar.none": "なし",
    "sidebar.dataset_value": "{name}（{classes} クラス）",
    "error.prefix": "エラー:",
    "home.title": "転移学習スタジオ",
    "home.intro": (
        "ネットワークをゼロから学習させずに、あなたの画像クラスを認識させます。ImageNet の120万枚の写真で"
        "すでに「見る」ことを学んだネットワークから始め、その知識を生かして、タスクに必要な部分だけを学習します。"
        "方法は三つあります。"
    ),
    "home.transfer": (
        "**学習済みのベースを凍結し、新しいヘッドだけを学習します。** ベースは各画像を ImageNet で学んだ特徴に"
        "変換し、小さな新しい分類器（ヘッド）がその特徴をあなたのクラスに対応づけることを学びます。速く、少ない"
        "データで済み、過学習しにくいので、最初に試すのに最適です。"
    ),
    "home.finetune": (
        "**ヘッドとベースの上位層を学習し、ベースの最初の N 層は凍結したままにします。** 初期の層はほとんどの写真に"
        "通用するエッジや質感を検出するのでそのまま残し、後半の層は ImageNet のクラスに近い形を検出するので、"
        "あなたのクラスに合わせて調整します。学習率は小さくしてください（または二段階レシピ：まず凍結したベースの上で"
        "ヘッドを学習し、その後で上位層の凍結を解除する）。ランダムなヘッドからの大きな勾配が学習済みの特徴を"
        "壊さないようにするためです。"
    ),
    "home.scratch": (
        "**同じネットワークをランダムな重みから始め、すべての層を学習します。** ImageNet からは何も借りません。"
        "小さなデータセットでは、事前学習がもたらすものを示す基準（ベースライン）になります。精度が低い、"
        "学習が遅い、またはその両方になることが予想されます。"
    ),
    "home.steps_title": "四つのステップ",
    "home.step_data": "1. クラスごとのフォルダを含む zip をアップロードするか、デモデータセットを試します。",
    "home.step_model": "2. バックボーン、ヘッド、学習方法を選び、どの層が学習するかを確認します。",
    "home.step_train": "3. 学習を開始し、損失と正解率をリアルタイムで見ます。いつでも停止できます。",
    "home.step_compare": "4. 実行結果を重ねて、事前学習とファインチューニングの効果を確かめます。",
    "data.title": "データ",
    "data.intro": (
        "データセットは、クラスごとに画像フォルダを一つずつ含む zip です（train/ と val/ フォルダの中にあっても"
        "構いません）。画像は検査・変換されてワークスペースに保存され、使えないファイルは理由とともに一覧表示されます。"
    ),
    "data.train_zip": "データセットの zip（または学習用 zip）",
    "data.train_zip_help": (
        "クラスごとに一つのフォルダ。中に train/ と val/ フォルダがあればその分割を使い、なければ各クラスの"
        "一定の割合を検証用に取り分けます。"
    ),
    "data.val_zip": "検証用 zip（任意）",
    "data.val_zip_help": "学習用 zip と同じクラスフォルダで、別の画像を含むもの。",
    "data.add": "データセットを追加",
    "data.demo": "デモデータセット",
    "data.demo_help": "手元にデータがなければ、生成した小さなデータセットで数分ですべてを試せます。",
    "data.ingesting": "{name} を読み込んでいます…",
    "data.ingested": "{name} を追加しました：{classes} クラス、{images} 枚の画像。",
    "data.none_yet": "データセットがまだありません。zip をアップロードするか、デモデータセットを追加してください。",
    "data.pick": "データセット",
    "data.option": "{name} · {classes} クラス · {images} 枚",
    "data.classes": "クラス数",
    "data.train_images": "学習用画像",
    "data.val_images": "検証用画像",
    "data.samples": "サンプル画像",
    "data.samples_classes": "表示するクラス",
    "data.skipped": "スキップしたファイル（{count}）",
    "data.skipped_path": "ファイル",
    "data.skipped_reason": "理由",
    "data.nothing_skipped": "すべてのファイルを使用しました。",
    "data.folder_title": "サーバー上のフォルダ",
    "data.folder_help": (
        "アップロードするには大きすぎるデータ向け：このサーバー上の、クラスごとのフォルダを含むフォルダを登録します。"
        "JPEG 写真はコピーせずその場で読み込み、学習時にディスクから順に読み出します。"
    ),
    "data.folder_none": (
        "許可されたサーバーフォルダはまだありません。運用者が TLCORE_DATA_DIRS にフォルダをコロン区切りで設定して"
        "アプリを起動すると使えます（例：`TLCORE_DATA_DIRS=/data/photos streamlit run app.py`）。"
    ),
    "data.folder_pick": "フォルダ",
    "data.folder_add": "フォルダを登録",
    "data.folder_source": "サーバーのフォルダ {folder} からその場で読み込みます。",
    "data.folder_missing": (
        "このデータセットの一部の画像が、登録後に {folder} からなくなったか変更されました。"
        "今の中身で学習するには、フォルダをもう一度登録してください。"
    ),
    "model.title": "モデル",
    "model.intro": (
        "学習済みのベース（バックボーン）に、あなたのクラス用の新しいヘッドを加えます。"
        "どの層が学習するかは学習方法で決まります。"
    ),
    "model.preset": "元記事のプリセット",
    "model.preset_help": "元記事と同じく、ResNet50、Flatten ヘッド、最初の168層を凍結したファインチューニング。",
    "model.backbone": "バックボーン",
    "model.backbone_option": "{label} · パラメータ {params:.1f}M · {speed}",
    "model.image_size": "入力サイズ（ピクセル）",
    "model.image_size_help": (
        "画像はこの大きさの正方形にリサイズされます。"
        "ImageNet の重みは224で学習されています。小さいほど速く学習できます。"
    ),
    "model.pooling": "ヘッド",
    "model.dropout": "分類層の前のドロップアウト",
    "model.hidden_units": "ヘッドの隠れ層のユニット数（0 = なし）",
    "model.hidden_units_help": "プーリングした特徴と分類層の間に Dense + ReLU 層を一つ追加します。",
    "model.strategy": "学習方法",
    "model.weights": "初期の重み",
    "model.weights_path": "このマシン上の Keras 重みファイルのパス",
    "model.weights_path_needed": "このマシン上の重みファイル（.h5 または .weights.h5）のパスを入力してください。",
    "model.weights_found": "ImageNet の重みが見つかりました：{path}",
    "model.weights_offline_hint": "重みファイルを指定するか、ランダムな重みを使うか、ゼロから学習することはできます。",
    "model.weights_download": "ImageNet の重みはまだこのマシンにありません。学習開始時にダウンロードされます。",
    "model.scratch_weights": "ゼロから学習する場合は、常にランダムな重みから始まります。",
    "model.no_dataset": "データセットがまだ選ばれていないため、ヘッドは2クラスで表示しています。",
    "model.building": "{label} を構築して層を一覧にしています…",
    "model.frozen_layers": "凍結するベースの層数（全 {total} 層）",
    "model.frozen_help": "ベースの最初の N 層は学習済みの重みを保ち、それより後の層が学習します。",
    "model.frozen_fixed_help": (
        "学習方法で決まります：転移学習はベース全体を凍結し、ゼロから学習では何も凍結しません。"
        "自由に設定するにはファインチューニングを選んでください。"
    ),
    "model.snap": "ブロックの境界に合わせる",
    "model.snap_help": "ちょうどブロックの間になる値だけを選べるようにし、ブロックが途中まで凍結されないようにします。",
    "model.params_total": "総パラメータ数",
    "model.params_trainable": "学習するパラメータ数",
    "model.params_frozen": "凍結されたパラメータ数",
    "model.params_frozen_help": (
        "学習しない重み：凍結した層と、BatchNormalization の移動統計量（勾配では学習されない）。"
    ),
    "model.layers": "層",
    "model.layers_legend": "緑の行は学習し、灰色の行は凍結されています。",
    "model.summary": "{backbone} · {strategy}",
    "model.summary_frozen": "{backbone} · {strategy} · 凍結 {frozen} 層",
    "strategy.scratch": "ゼロから学習",
    "strategy.transfer": "転移学習",
    "strategy.finetune": "ファインチューニング",
    "strategy.hint_scratch": "ランダムな重みから始め、すべての層が学習します。",
    "strategy.hint_transfer": "ベースを凍結し、ヘッドだけが学習します。",
    "strategy.hint_finetune": "ベースの最初の N 層を凍結し、残りのベースとヘッドが学習します。",
    "pooling.avg": "グローバル平均プーリング",
    "pooling.flatten": "Flatten（平坦化）",
    "weights.imagenet": "ImageNet",
    "weights.none": "ランダム",
    "weights.file": "重みファイル",
    "speed.fast": "CPU で速い",
    "speed.medium": "CPU で普通",
    "speed.slow": "CPU で遅い",
    "layers.index": "#",
    "layers.index_help": (
        "model.layers[:N] と同じ番号付け：N 層を凍結すると、ベースの 0 から N−1 番の行が凍結されます。"
    ),
    "layers.part": "部分",
    "layers.name": "名前",
    "layers.type": "種類",
    "layers.output_shape": "出力の形",
    "layers.params": "パラメータ数",
    "layers.trainable_params": "学習するパラメータ数",
    "layers.trainable": "学習する",
    "train.title": "学習",
    "train.new_run": "新しい実行",
    "train.need_dataset": "まずデータセットを選んでください。",
    "train.need_model": "まずモデルを選んでください。",
    "train.summary": "データセット：**{dataset}** · モデル：**{model}**",
    "train.epochs": "エポック数",
    "train.batch_size": "バッチサイズ",
    "train.learning_rate": "学習率",
    "train.optimizer": "最適化手法",
    "train.augmentation": "データ拡張（学習用画像のみ）",
    "train.flip": "ランダムな左右反転",
    "train.rotation": "回転",
    "train.rotation_help": "最大の回転角を一回転に対する割合で指定します。0.1 は最大 ±36°。",
    "train.zoom": "ズーム",
    "train.contrast": "コントラスト",
    "train.two_phase": "二段階レシピ",
    "train.two_phase_help": (
        "まず凍結したベースの上で左のエポック数だけヘッドを学習し、その後、下の小さい学習率で"
        "（モデルページで選んだ凍結層数で）ファインチューニングします。"
    ),
    "train.two_phase_needs_finetune": (
        "二段階レシピはファインチューニングで終わります。モデルページでその学習方法を選んでください。"
    ),
    "train.finetune_epochs": "ファインチューニングのエポック数",
    "train.finetune_learning_rate": "ファインチューニングの学習率",
    "train.seed": "乱数シード",
    "train.name": "実行の名前（任意）",
    "train.start": "学習を開始",
    "train.no_runs": "実行はまだありません。",
    "train.run": "実行",
    "train.stop": "停止",
    "train.queued": "待機中：学習プロセスが起動し、先の実行が終わりしだい始まります。",
    "train.run_error": "実行からのメッセージ：",
    "train.best_val_accuracy": "検証データでの最高正解率",
    "train.best_epoch": "エポック {epoch} で達成。",
    "train.no_metrics": "指標はまだありません。最初のバッチの後に表示されます。",
    "train.settings": "{model} · {epochs} エポック · バッチ {batch} · {optimizer}（学習率 {rate}）",
    "train.settings_two_phase": (
        "{model} · バッチ {batch} · {optimizer} · まずヘッドだけを {epochs} エポック（学習率 {rate}）、"
        "続いてファインチューニングを {finetune_epochs} エポック（学習率 {finetune_rate}）"
    ),
    "train.progress_epoch": "エポック {epoch} / {total}",
    "train.progress_step": "ステップ {step} / {steps}",
    "train.progress_elapsed": "経過 {time}",
    "train.progress_eta": "残り約 {time}",
    "train.features_progress": "凍結したベースの特徴量を計算中：{done} / {total} 枚",
    "train.prefix_progress": "凍結した層の出力を計算中：{done} / {total} 枚",
    "path.features": "高速パス：特徴量をキャッシュ",
    "path.prefix": "高速パス：凍結した層の出力をキャッシュ",
    "path.full": "毎エポック全体を計算",
    "status.queued": "待機中",
    "status.running": "実行中",
    "status.stopping": "停止処理中",
    "status.stopped": "停止済み",
    "status.completed": "完了",
    "status.failed": "失敗",
    "status.interrupted": "中断",
    "status.damaged": "破損",
    "duration.seconds": "{s}秒",
    "duration.minutes": "{m}分{s:02d}秒",
    "duration.hours": "{h}時間{m:02d}分",
    "compare.title": "実行の比較",
    "compare.no_runs": "実行はまだありません。学習ページで開始してください。",
    "compare.runs": "比較する実行",
    "compare.manage": "実行の名前変更・削除",
    "compare.target": "実行",
    "compare.new_name": "名前",
    "compare.rename": "名前を変更",
    "compare.delete": "削除",
    "compare.delete_active_help": "削除する前に実行を停止してください。",
    "compare.confirm_delete": "実行 **{name}** と保存されたすべてを削除しますか？元に戻せません。",
    "compare.confirm_yes": "削除する",
    "compare.confirm_no": "キャンセル",
    "compare.renamed": "名前を {name} に変更しました。",
    "compare.deleted": "{name} を削除しました。",
    "runs.name": "名前",
    "runs.backbone": "バックボーン",
    "runs.strategy": "学習方法",
    "runs.path": "学習パス",
    "runs.path_help": (
        "各エポックの計算方法：凍結したベースが一度だけ計算した特徴量で学習、凍結した層のキャッシュした出力から学習、"
        "またはネットワーク全体を毎回計算。"
    ),
    "runs.frozen_layers": "凍結層数",
    "runs.trainable_params": "学習するパラメータ数",
    "runs.best_val_accuracy": "最高検証正解率",
    "runs.best_epoch": "最高のエポック",
    "runs.seconds_per_epoch": "1エポックの時間",
    "runs.total_seconds": "合計時間",
    "runs.status": "状態",
    "runs.id": "ID",
    "chart.epoch": "エポック",
    "chart.loss": "損失",
    "chart.accuracy": "正解率",
    "chart.train": "学習",
    "chart.val": "検証",
    "chart.batch_note": "細い線：バッチごと · 点：エポックごと",
    "chart.images": "画像数",
    "chart.class": "クラス",
    "chart.run": "実行",
    "chart.split": "分割",
    "chart.frozen": "凍結（学習済み）",
    "chart.learns_pretrained": "学習する（学習済みから）",
    "chart.learns_random": "学習する（ランダムから）",
    "chart.head": "新しいヘッド",
    "chart.block": "ブロック {n}",
    "chart.input": "入力",
    "nav.evaluate": "評価と書き出し",
    "evaluate.no_runs": "まだ実行がありません。学習ページで学習を開始してから、ここで評価してください。",
    "evaluate.run": "実行",
    "evaluate.tab_evaluate": "評価",
    "evaluate.tab_try": "試す",
    "evaluate.tab_export": "書き出し",
    "evaluate.tab_code": "コードと再現",
    "evaluate.intro": (
        "実行の最良モデルを、学習に使っていない検証画像、または独自のテスト用 zip で測定します。"
        "結果は実行と一緒に保存されるので、もう一度評価してもすぐに表示されます。"
    ),
    "evaluate.test_zip": "テスト用 zip（任意）",
    "evaluate.test_zip_help": (
        "クラスごとに一つのフォルダで、実行のクラス名と同じ名前にします（一部のクラスだけでも"
        "構いません）。空のままにすると検証データを使います。"
    ),
    "evaluate.button": "評価する",
    "evaluate.progress": "{done} / {total} 枚を予測中…",
    "evaluate.on_val": "**{name}** の検証データ：{images} 枚。",
    "evaluate.on_test": "テストデータ **{name}**：{images} 枚。",
    "evaluate.stored": "{created} に保存された結果です（その後モデルは変わっていません）。",
    "evaluate.accuracy": "正解率",
    "evaluate.macro_f1": "マクロ F1",
    "evaluate.macro_f1_help": "クラスごとの F1 の平均です。画像の枚数にかかわらず、各クラスを同じ重みで数えます。",
    "evaluate.misclassified_count": "誤分類",
    "evaluate.per_class": "クラス別",
    "evaluate.col_class": "クラス",
    "evaluate.col_precision": "適合率",
    "evaluate.col_precision_help": "このクラスと予測された画像のうち、本当にこのクラスだった割合。",
    "evaluate.col_recall": "再現率",
    "evaluate.col_recall_help": "このクラスの画像のうち、モデルが見つけた割合。",
    "evaluate.col_f1": "F1",
    "evaluate.col_support": "画像数",
    "evaluate.confusion": "混同行列",
    "evaluate.confusion_help": (
        "行は正解のクラス、列は予測したクラスです。数字は画像の枚数、色はその行に占める割合です。"
        "正しい予測は対角線上に並びます。"
    ),
    "evaluate.gallery": "誤分類された画像（{count} 枚）",
    "evaluate.gallery_none": "誤分類された画像はありません。",
    "evaluate.gallery_caption": "正解：{true} · 予測：{predicted}（{confidence}）",
    "evaluate.gallery_more": "{count} 件の誤りのうち、確信度の高い {shown} 件。",
    "evaluate.gradcam": "Grad-CAM ヒートマップ",
    "evaluate.gradcam_help": (
        "赤い部分は、モデルが予測したクラスを見いだした場所です。地図の粗さは"
        "ベースの最後の特徴マップと同じです（224 ピクセルで 7×7）。"
    ),
    "evaluate.image_missing": "{file} はもうワークスペースにありません。",
    "evaluate.try_intro": "画像をアップロードするか検証画像を選ぶと、モデルが付けるクラスを表示します。",
    "evaluate.try_upload": "画像",
    "evaluate.try_val": "検証画像",
    "evaluate.top_k": "表示するクラス数",
    "evaluate.try_none": "画像をアップロードするか選ぶと、予測が表示されます。",
    "evaluate.try_result": "**{label}**（{confidence}）",
    "evaluate.try_truth": "正解のクラス：{label}",
    "evaluate.export_intro": (
        "学習したモデルをダウンロードします。どのファイルも {size}×{size} ピクセル、"
        "値 0〜255 の RGB 画像を受け取り（前処理はモデルの中にあります）、labels.txt の順に"
        "クラスの確率を返します。書き出した後、各ファイルを読み込み直して、予測をアプリの予測と比べます。"
    ),
    "evaluate.export_button": "すべての形式で書き出す",
    "evaluate.exporting": "書き出して各ファイルを確認しています…",
    "evaluate.export_format": "形式",
    "evaluate.export_file": "ファイル",
    "evaluate.export_tolerance": "条件",
    "evaluate.export_difference": "最大の差",
    "evaluate.export_agreement": "最上位クラスの一致",
    "evaluate.export_check": "確認",
    "evaluate.export_passed": "合格",
    "evaluate.export_failed": "不合格",
    "evaluate.export_check_note": "実行のデータセットの画像 {images} 枚で、アプリの確率と比べました。",
    "evaluate.tolerance_value": "差 ≤ {tolerance}",
    "evaluate.tolerance_top1": "アプリの1位が {margin} 超の差なら1位が一致",
    "evaluate.download_all": "すべてをダウンロード（.zip）",
    "evaluate.format_keras": "Keras 形式（.keras）",
    "evaluate.format_savedmodel": "TensorFlow SavedModel 形式（.zip）",
    "evaluate.format_tflite": "TFLite（float32）",
    "evaluate.format_tflite_quant": "TFLite（量子化、8 ビットの重み）",
    "evaluate.format_labels": "クラス名（labels.txt）",
    "evaluate.format_readme": "使い方（README.txt）",
    "evaluate.code_intro": (
        "この実行をもう一度学習する素の Keras スクリプトです。バックボーン、ヘッド、凍結する層、"
        "compile と fit を、実行と同じ数値で書いています。"
    ),
    "evaluate.code_usage": (
        "`python {file} IMAGES_FOLDER` で実行します。フォルダにはクラスごとに画像のフォルダを置きます。"
    ),
    "evaluate.code_download": "{file} をダウンロード",
    "evaluate.reproduce_title": "別のマシンで学習する",
    "evaluate.reproduce_intro": (
        "spec がジョブのすべてです。データセットと一緒にダウンロードし、tlcore を入れた GPU サーバーやクラスタで"
        "次のコマンドのどれかを実行します（docs/scaling.md を参照）。spec のバッチサイズは全体のバッチのままなので、"
        "ここと同じように学習します。"
    ),
    "evaluate.reproduce_spec": "spec.json をダウンロード",
    "evaluate.reproduce_dataset": "{file} をダウンロード",
    "evaluate.reproduce_folder": (
        "データセットはサーバーのフォルダ {folder} から読み込みます。別のマシンにも同じフォルダが必要です。"
    ),
    "evaluate.chart_true": "正解のクラス",
    "evaluate.chart_predicted": "予測したクラス",
    "evaluate.chart_images": "画像数",
    "evaluate.chart_share": "正解クラスに占める割合",
    "evaluate.chart_class": "クラス",
    "evaluate.chart_probability": "確率",
    # model page: the layer strip and random starting weights
    "model.layer_strip": "ネットワーク全体です。1 本の棒が 1 層で、左が入力側、右がヘッドです。",
    "model.random_weights_hint": (
        "ランダムな初期重み：凍結した層はランダムな値のままで、ほかの層が学べる手がかりをほとんど渡さないため、"
        "正解率は偶然と同程度になるでしょう。事前学習済みの重みの価値を示す基準（ベースライン）です。"
        "ランダムな重みからネットワークを学習するには「ゼロから学習」を選んでください。"
    ),
}

STRINGS: dict[str, dict[str, str]] = {"en": EN, "ja": JA}

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


def language() -> str:
    lang = st.session_state.get("lang", DEFAULT_LANGUAGE)
    return lang if lang in STRINGS else DEFAULT_LANGUAGE


def t(key: str, **fmt: Any) -> str:
    """The text for `key` in the session's language, with `fmt` filled in."""
    text = STRINGS[language()][key]
    return text.format(**fmt) if fmt else text


def error_text(exc: Exception) -> str:
    """A tlcore error for `st.error`: a translated label, then tlcore's English sentence."""
    return f"{t('error.prefix')} {exc}"


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


def run_settings(spec: RunSpec) -> str:
    """A run's main settings on one line: model, epochs, batch size, learning rate(s)."""
    if spec.two_phase:
        return t(
            "train.settings_two_phase",
            model=model_summary(spec.model),
            epochs=spec.epochs,
            batch=spec.batch_size,
            rate=rate(spec.learning_rate),
            optimizer=spec.optimizer,
            finetune_epochs=spec.finetune_epochs,
            finetune_rate=rate(spec.finetune_learning_rate),
        )
    return t(
        "train.settings",
        model=model_summary(spec.model),
        epochs=spec.epochs,
        batch=spec.batch_size,
        rate=rate(spec.learning_rate),
        optimizer=spec.optimizer,
    )


def dataset_option(dataset: Dataset) -> str:
    return t(
        "data.option", name=dataset.name, classes=len(dataset.classes), images=int(dataset.counts()["total"].sum())
    )


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


def progress_text(info: RunInfo) -> str:
    """Where a run stands: epoch, step, time so far and time left, as far as they are known."""
    parts = [t("train.progress_epoch", epoch=info.epoch, total=info.total_epochs)]
    if info.steps_per_epoch and info.status in (RunState.RUNNING, RunState.STOPPING):
        parts.append(t("train.progress_step", step=info.step, steps=info.steps_per_epoch))
    if info.elapsed_seconds:
        parts.append(t("train.progress_elapsed", time=duration(info.elapsed_seconds)))
    if info.eta_seconds is not None:
        parts.append(t("train.progress_eta", time=duration(info.eta_seconds)))
    return " · ".join(parts)


def path_label(path: str) -> str:
    return {"features": t("path.features"), "prefix": t("path.prefix"), "full": t("path.full")}[path]


def path_text(info: RunInfo) -> str:
    """The run's training path as a badge, then the trainer's reason (an English sentence, like errors)."""
    parts = []
    if info.path is not None:
        parts.append(f":{'gray' if info.path == 'full' else 'green'}-badge[{path_label(info.path)}]")
    if info.path_note:
        parts.append(info.path_note)
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


def run_option(info: RunInfo) -> str:
    """A run in a selector: its name, status and start time."""
    created = (info.created or "").replace("T", " ")[:16]
    return " · ".join(part for part in (info.name, status_label(info.status), created) if part)


def run_labels(infos: list[RunInfo]) -> dict[str, str]:
    """Run id -> a label for charts and selectors: the name, with a number added where names repeat."""
    labels: dict[str, str] = {}
    seen: dict[str, int] = {}
    for info in reversed(infos):
        seen[info.name] = seen.get(info.name, 0) + 1
        labels[info.id] = info.name if seen[info.name] == 1 else f"{info.name} ({seen[info.name]})"
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
    )
