"""KerasHub as a zoo: every technique on every backbone, flat and nested.

The backbones of `kcompress_demo.hub_zoo` (MobileNetV3-style, EfficientNet,
ResNet, CSPNet, HGNetV2, ViT, DeiT, MiT; BERT, DistilBERT and RoBERTa,
tiny), each built from its class at a small random-weight config (no
preset, nothing downloaded), with a small head: "flat" puts the
backbone's layers in the classifier's graph, "nested" calls the backbone
as one layer, as KerasHub's tasks do. The cells (`kcompress_demo.
hub_checks`):

- PTQ int8: whether the file loads with XNNPACK and with the reference
  kernels (X/R), the int8 share of its CONV_2D, DEPTHWISE_CONV_2D,
  FULLY_CONNECTED and BATCH_MATMUL ops, and its largest distance from
  Keras in output steps;
- QAT: the same, for `quantize_model` calibrated on the sample inputs and
  converted with mode "qat" (against the QAT model);
- prune 50%: wrappers, and the lowest and highest sparsity of the kernels
  they report as pruned, after two training steps;
- cluster 8: the most distinct values left in a clustered kernel;
- groups 25%: parameters kept by `shrink` and the largest output
  difference from the zeroed model, or the refusal.

Each model runs in its own process. Run: `python benchmarks/kerashub_zoo.py`
(about ten minutes on 2 cores; `--models=MiTBackbone --forms=flat` for a
subset). Needs the `hub` extra.
"""

import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_MODELS = flags.DEFINE_list("models", None, "Backbones to run (default all).")
_FORMS = flags.DEFINE_list("forms", ["flat", "nested"], "flat and/or nested.")
_WORKER = flags.DEFINE_string("worker", None, "Internal: name,form.")

CHECKS = ("ptq", "qat", "prune", "cluster", "groups")


def _cells(name, form):
    from kcompress_demo import hub_checks
    from kcompress_demo import hub_zoo

    model = hub_zoo.model(name, nested=form == "nested")
    x = hub_zoo.sample_inputs(name, 16, 0)
    cells = {}
    for check in CHECKS:
        try:
            cells[check] = getattr(hub_checks, check)(model, x)
        except Exception as error:  # noqa: BLE001 - a cell of the table
            first = (str(error).strip().splitlines() or [""])[0]
            cells[check] = {"error": f"{type(error).__name__}: {first}"}
    return cells


def _file(cell):
    if "error" in cell:
        return f"refused: {cell['error'][:70]}"
    loads = ("X" if cell["loads_xnnpack"] else "-") + (
        "R" if cell["loads_reference"] else "-")
    steps = cell.get("max_steps")
    steps = "n/a" if steps is None else f"{steps:.0f}"
    return f"{loads} {cell['int8_share']:.0%} of {cell['compute_ops']}, {steps}"


def _text(check, cell):
    if check in ("ptq", "qat"):
        return _file(cell)
    if "error" in cell:
        return f"refused: {cell['error'][:70]}"
    if check == "prune":
        return (f"{cell['wrapped']} ({cell['min_sparsity']:.3f}-"
                f"{cell['max_sparsity']:.3f})")
    if check == "cluster":
        return f"{cell['wrapped']}, <= {cell['max_distinct']}"
    return f"{cell['params_kept']:.2f}, {cell['max_difference']:.1e}"


def main(argv):
    del argv
    if _WORKER.value:
        name, form = _WORKER.value.split(",")
        print("CELLS " + json.dumps(_cells(name, form)))
        return
    from kcompress_demo import hub_zoo

    names = _MODELS.value or hub_zoo.VISION + hub_zoo.TEXT
    print("| backbone | form | PTQ int8: loads, int8 ops, steps | "
          "QAT: loads, int8 ops, steps | prune 50%: wrapped (sparsity) | "
          "cluster 8: wrapped, distinct | groups 25%: kept, max diff |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        for form in _FORMS.value:
            run = subprocess.run(
                [sys.executable, __file__, f"--worker={name},{form}"],
                capture_output=True, text=True, check=False)
            lines = [line for line in run.stdout.splitlines()
                     if line.startswith("CELLS ")]
            if not lines:
                tail = (run.stderr.strip().splitlines() or ["no output"])
                print(f"| {name} | {form} | crash: {tail[-1][:100]} |")
                continue
            cells = json.loads(lines[-1][len("CELLS "):])
            print(f"| {name} | {form} | " + " | ".join(
                _text(check, cells[check]) for check in CHECKS) + " |",
                flush=True)
    print("\nCommand: python benchmarks/kerashub_zoo.py" + (
        f" --models={','.join(_MODELS.value)}" if _MODELS.value else "")
        + f" --forms={','.join(_FORMS.value)}")


if __name__ == "__main__":
    app.run(main)
