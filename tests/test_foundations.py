"""What a library owes the application that imports it, read from the
source: no logging configured or written on the root logger."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).parent.parent
SOURCES = sorted([*(ROOT / "kcompress").rglob("*.py"),
                  *(ROOT / "tflite_export").rglob("*.py")])
# Calls on the `logging` module itself that write to or configure the root
# logger (`logging.getLogger(__name__).warning` is the library's way).
ROOT_CALLS = {"debug", "info", "warning", "warn", "error", "exception",
              "critical", "log", "basicConfig"}


def _root_logger_calls(text, name):
    tree = ast.parse(text, name)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "logging"):
            continue
        if node.func.attr in ROOT_CALLS or (
                node.func.attr == "getLogger" and not node.args):
            yield f"{name}:{node.lineno} logging.{node.func.attr}"


def test_no_module_writes_to_the_root_logger():
    found = [call for path in SOURCES for call in _root_logger_calls(
        path.read_text(), str(path.relative_to(ROOT)))]
    assert not found, found


@pytest.mark.parametrize("source, expected", [
    ("import logging\nlogging.warning('x')\n", 1),
    ("import logging\nlogging.getLogger().info('x')\n", 1),
    ("import logging\nlogging.getLogger(__name__).warning('x')\n", 0),
])
def test_the_scan_finds_root_logger_calls(source, expected):
    assert len(list(_root_logger_calls(source, "probe.py"))) == expected


# LiteRT's private interpreter calls: the file is read with the generated
# schema reader instead (`tflite_export.file_bytes.operators`).
PRIVATE_LITERT = ("_get_ops_details", "_get_full_signature_list")


def test_no_private_litert_interpreter_calls():
    found = [f"{path.relative_to(ROOT)}: {name}"
             for path in SOURCES + sorted((ROOT / "tests").rglob("*.py"))
             if path.name != "test_foundations.py"
             for name in PRIVATE_LITERT if name in path.read_text()]
    assert not found, found
