"""Global magnitude pruning against TFMOT's uniform pruning (issue 32).

The cells, models, data, float weights, batches and recipe of
`benchmarks/pruning_parity.py` (four small architectures on three
scikit-learn sets, 5 seeds, PolynomialDecay to the target over 6 epochs then
10 fine-tune epochs), with one change on the kcompress side:
`prune_low_magnitude(..., scope="global")`, which ranks every layer's
weights together, so the target is the model's overall sparsity; by
magnitude, and by LAMP score (`ranking="lamp"`), each in its own process. TFMOT
prunes each layer to the target. Both end at the same number of zeros in
the pruned kernels (TFMOT leaves the depthwise kernel dense, and global
pruning ranks the same layers).

Run: `python benchmarks/budget_sparsity.py` (about 20 minutes on 2 cores;
`--seeds=2` for a quick look). `benchmarks/budget.py` runs it.
"""

import functools
import json
import os
import subprocess
import sys
import tempfile
import types

import numpy as np
import pruning_parity as parity
from absl import app
from absl import flags

flags.FLAGS.set_default("sparsities", ["0.8", "0.9"])
_STAGE = flags.DEFINE_enum("stage", None, ["global"],
                           "Run one stage and print JSON (internal).")
_RANKING = flags.DEFINE_enum("ranking", "magnitude", ["magnitude", "lamp"],
                             "Global ranking of the stage (internal).")
RANKINGS = ("magnitude", "lamp")


def run_global(cells, seeds):
    import keras

    import kcompress as kc

    sparsity = types.SimpleNamespace(
        PolynomialDecay=kc.pruning.PolynomialDecay,
        prune_low_magnitude=functools.partial(
            kc.pruning.prune_low_magnitude, scope="global",
            ranking=_RANKING.value),
        UpdatePruningStep=kc.pruning.UpdatePruningStep,
        strip_pruning=kc.pruning.strip_pruning)
    return parity._sweep(cells, seeds, types.SimpleNamespace(
        name="kcompress global", keras=keras, sparsity=sparsity,
        input=keras.Input, copy=lambda model: model))


def table(ours, tfmot_results):
    """Rows, and per ranking the verdict of the acceptance: +1 point in
    half the cells, never worse than -0.5."""
    from kcompress.tables import render

    rows, verdicts = [], []
    stats = {r: {"wins": 0, "cells": 0, "worst": np.inf} for r in ours}
    for key in tfmot_results:
        model_name, dataset, sparsity = key.split("/")
        if sparsity == "float":
            continue
        theirs = np.mean(tfmot_results[key])
        row = [model_name, dataset, f"{float(sparsity):.0%}",
               f"{np.mean(tfmot_results[f'{model_name}/{dataset}/float']):.3f}",
               f"{theirs:.3f}"]
        for ranking, results in ours.items():
            mean = np.mean(results[key])
            diff = 100 * (mean - theirs)
            stat = stats[ranking]
            stat["cells"] += 1
            stat["wins"] += diff >= 1.0
            stat["worst"] = min(stat["worst"], diff)
            row += [f"{mean:.3f}", f"{diff:+.1f}"]
        rows.append(row)
    for ranking, stat in stats.items():
        verdicts.append(
            f"global ({ranking}): {stat['wins']} of {stat['cells']} cells >= "
            f"+1 point; worst cell {stat['worst']:+.1f} points")
    header = ["model", "data", "sparsity", "float", "uniform (TFMOT)"]
    for ranking in ours:
        header += [f"global {ranking} (kc)", "diff (pt)"]
    return render(header, rows), "\n".join(verdicts) + (
        "\n(acceptance: half the cells >= +1 point, none below -0.5)")


def run(passed):
    """Runs the float stage, then the global and TFMOT sweeps in parallel;
    returns the table and the verdict."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join(
        [here] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                  if p])
    with tempfile.TemporaryDirectory() as work:
        parity._run_stages(["float"], passed, work, env)
        children = {"tfmot": subprocess.Popen(
            [sys.executable, parity.__file__, "--tool=tfmot",
             f"--work_dir={work}", *passed], stdout=subprocess.PIPE,
            env=env, text=True)}
        for ranking in RANKINGS:
            children[ranking] = subprocess.Popen(
                [sys.executable, __file__, "--stage=global",
                 f"--ranking={ranking}", f"--work_dir={work}", *passed],
                stdout=subprocess.PIPE, env=env, text=True)
        results = {}
        for name, child in children.items():
            out, _ = child.communicate()
            if child.returncode:
                sys.exit(f"{name} run failed (exit {child.returncode})")
            results[name] = json.loads(out.strip().splitlines()[-1])
    tfmot = results.pop("tfmot")
    return table(results, tfmot)


def main(argv):
    del argv
    if _STAGE.value:
        print(json.dumps(run_global(parity._cells(), parity._SEEDS.value)))
        return
    passed = [a for a in sys.argv[1:]
              if not a.startswith(("--stage", "--work_dir", "--ranking"))]
    if not any(a.startswith("--sparsities") for a in passed):
        passed.append("--sparsities=0.8,0.9")
    text, verdict = run(passed)
    print(text + "\n\n" + verdict)
    print(f"\nCommand: python benchmarks/budget_sparsity.py "
          f"{' '.join(passed)}".rstrip())


if __name__ == "__main__":
    app.run(main)
