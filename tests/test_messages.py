"""Every sentence tlcore shows people exists in English and in Japanese, and renders whole in both.

The keys are found the way translators find them: Babel's extractor over tlcore's sources, with the
error classes and `msg` as keywords (see docs/translating.md). Each call site's named parameters are
read from the same sources, so a template that asks for a value no call gives is caught here, not
by a user reading "{name}".
"""

import ast
import re
import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir

from tlcore import errors
from tlcore.i18n import LANGUAGES, core_catalog, msg

TLCORE = Path(__file__).resolve().parents[1] / "tlcore"
ERROR_CLASSES = {
    cls.__name__ for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.TLCoreError)
}
KEYWORDS = dict.fromkeys((*ERROR_CLASSES, "msg"))
# Words a Japanese sentence keeps in Latin letters: names of things, file formats, code.
TERMS = {
    "ImageNet",
    "Keras",
    "TensorFlow",
    "BatchNormalization",
    "JPEG",
    "PNG",
    "BMP",
    "GIF",
    "WebP",
    "TIFF",
    "RGB",
    "CPU",
    "GPU",
    "XLA",
    "TF_CONFIG",
    "TLCORE_",
    "SHA",
    "MD5",
    "zip",
    "val",
    "train",
    "test",
    "validation",
    "valid",
    "imagenet",
    "none",
    "keras",
    "SavedModel",
    "TFLite",
    "ONNX",
    "TensorBoard",
    "onnxruntime",
    "tf2onnx",
    "flock",
    "macOS",
    "Windows",
    "Thumbs",
    "UTF",
    "Pillow",
    "EXIF",
    "STOP",
    "spec",
    "json",
    "jsonl",
    "JSON",
    "Python",
    "float32",
    "txt",
    "h5",
    "weights",
    "Flatten",
    "Dense",
    "GlobalAveragePooling2D",
    "Dropout",
    "Adam",
    "SGD",
    "RMSprop",
    "AdamW",
    "MiB",
    "GiB",
    "KiB",
    "MB",
    "GB",
    "KB",
    "bytes",
    "mirrored",
    "multiworker",
    "chief",
    "worker",
    "features",
    "prefix",
    "full",
    "scratch",
    "transfer",
    "finetune",
    "run",
    "lock",
    "tlcore",
    "python",
    "pip",
    "http",
    "https",
    "localhost",
}


def call_sites() -> list[tuple[str, set[str], str, str]]:
    """Every `ErrorClass("key", ...)` and `msg("key", ...)` in tlcore: (key, parameter names, where, callee)."""
    found = []
    for path in sorted(TLCORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            first = node.args[0]
            if name in KEYWORDS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                params = {keyword.arg for keyword in node.keywords}
                assert None not in params, f"{path.name}:{node.lineno} passes **params; name each one"
                found.append((first.value, params, f"{path.relative_to(TLCORE.parent)}:{node.lineno}", name))
    return found


def placeholders(template: str) -> set[str]:
    return {field.split(".")[0].split("[")[0] for _, field, _, _ in string.Formatter().parse(template) if field}


def templates(key: str, lang: str) -> list[str]:
    found = core_catalog().templates[lang][key]
    return list(found) if isinstance(found, tuple) else [found]


def test_babel_finds_the_same_keys_as_the_call_sites():
    extracted = {message for _, _, message, *_ in extract_from_dir(str(TLCORE), keywords=KEYWORDS)}
    keys = {key for key, *_ in call_sites()}
    assert len(keys) > 150 and keys == {m if isinstance(m, str) else m[0] for m in extracted}


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_every_key_tlcore_uses_is_in_the_catalog(lang):
    missing = sorted({f"{key} ({where})" for key, _, where, _ in call_sites() if key not in core_catalog().keys(lang)})
    assert missing == []


def test_every_catalog_entry_is_used():
    used = {key for key, *_ in call_sites()}
    unused = core_catalog().keys("en") - used - {key for key in core_catalog().keys("en") if key.startswith("count.")}
    assert unused == set()


def test_both_languages_ask_for_the_same_values():
    differ = []
    for key in core_catalog().keys("en"):
        asked = {frozenset(placeholders(t)) for t in templates(key, "en") + templates(key, "ja")}
        if len(asked) != 1:
            differ.append(key)
    assert differ == []


def test_every_call_gives_every_value_its_sentence_asks_for():
    unfilled = []
    for key, params, where, _ in call_sites():
        for lang in LANGUAGES:
            for template in templates(key, lang):
                if placeholders(template) - params:
                    unfilled.append(f"{where} {key} ({lang}): {sorted(placeholders(template) - params)}")
    assert unfilled == []


def test_japanese_sentences_have_no_english_words_left():
    def english(template: str) -> list[str]:
        text = re.sub(r"\{[^}]*\}", " ", template)
        text = re.sub(r"[`'\"][^`'\"]*[`'\"]", " ", text)  # quoted names and code
        text = re.sub(r"--[\w-]+|\b[A-Z][A-Z_.]+\b|\b[\w.-]+/", " ", text)  # options, METAVARS, folders/
        return [
            word for word in re.findall(r"[A-Za-z][A-Za-z_0-9]{2,}", text) if not any(word.startswith(t) for t in TERMS)
        ]

    left = {key: words for key in core_catalog().keys("ja") for t in templates(key, "ja") if (words := english(t))}
    assert left == {}


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_every_message_renders_whole_with_its_values(lang):
    for key, params, where, _ in call_sites():
        numeric = {
            field.split(".")[0]
            for template in templates(key, lang)
            for _, field, spec, _ in string.Formatter().parse(template)
            if field and spec and spec[-1:] in ",dfgeE%"
        }
        values = {
            name: msg("count.files", n=2) if name == "reason" else 2 if name in numeric | {"n"} else f"<{name}>"
            for name in params
        }
        text = msg(key, **values).render(lang)
        assert text and "{" not in text.replace("{'", "").replace('{"', ""), f"{where} {key}: {text}"


def test_every_error_class_is_raised_with_a_sentence_in_both_languages():
    callees = {callee for *_, callee in call_sites()}
    assert ERROR_CLASSES - callees <= {"TLCoreError"}
    for key, params, _, callee in call_sites():
        if callee in ERROR_CLASSES:
            error = getattr(errors, callee)(key, **{name: f"<{name}>" for name in params})
            assert error.render("en") == str(error) and error.render("ja") != error.render("en")
