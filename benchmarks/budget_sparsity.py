"""Global magnitude pruning against TFMOT's uniform pruning (issue 32).

The cells, models, data, float weights, batches and recipe of
`benchmarks/pruning_parity.py` (four small architectures on three
scikit-learn sets, 5 seeds, PolynomialDecay to the target over 6 epochs then
10 fine-tune epochs), with one change on the kcompress side:
`prune_low_magnitude(..., scope="global")`, which ranks every layer's
weights together, so the target is the model's overall sparsity; by
magnitude, and by LAMP score (`ranking="lamp"`); and sensitivity-planned
(each layer's loss rise measured alone on the training data by
`kc.budget.sensitivity`, `allocate_sparsity` to the overall target, each
layer on its own schedule), each in its own process. TFMOT prunes each
layer to the target. All end at the same number of zeros in the pruned
kernels (TFMOT leaves the depthwise kernel dense, and the kcompress
variants rank or plan the same layers).

Run: `python benchmarks/budget_sparsity.py` (about 25 minutes on 2 cores;
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
_RANKING = flags.DEFINE_enum("ranking", "magnitude",
                             ["magnitude", "lamp", "planned"],
                             "Global ranking of the stage (internal).")
_RANKINGS = flags.DEFINE_list("rankings", ["magnitude", "lamp", "planned"],
                              "The kcompress variants to run beside TFMOT.")


def _cross_entropy_score(y_true, logits):
    """Minus the mean cross-entropy of `logits`: higher is better."""
    logits = logits - logits.max(-1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return float(np.mean(log_p[np.arange(len(y_true)), y_true]))


def planned_pruning(kc, data):
    """`prune_low_magnitude` with per-layer targets from a plan: each
    layer's loss rise measured alone on the training data
    (`kc.budget.sensitivity`), then `allocate_sparsity` to the schedule's
    overall target, each layer on the schedule's own ramp."""
    from kcompress.pruning.prunable_layer import DENSE_BY_DEFAULT

    def prune(model, pruning_schedule):
        table = kc.budget.sensitivity(
            model, data["train"], metric=_cross_entropy_score,
            sparsities=(0.5, 0.7, 0.8, 0.9, 0.95), channel_fractions=(),
            precisions=(), verbose=0)
        # The layers TFMOT and global pruning prune (not the depthwise).
        layers = [layer.name for layer in model.layers
                  if layer.name in table.layers("sparsity")
                  and not isinstance(layer, DENSE_BY_DEFAULT)]
        targets = kc.budget.allocate_sparsity(
            table, pruning_schedule.final_sparsity, layers=layers)
        plan = kc.budget.CompressionPlan(sparsity=targets)
        return kc.pruning.prune_low_magnitude(
            model, pruning_schedule=plan.pruning_schedules(
                pruning_schedule.begin_step, pruning_schedule.end_step,
                frequency=pruning_schedule.frequency))
    return prune


def run_global(cells, seeds):
    import keras

    import kcompress as kc

    data = {}
    if _RANKING.value == "planned":
        prune = planned_pruning(kc, data)
    else:
        prune = functools.partial(kc.pruning.prune_low_magnitude,
                                  scope="global", ranking=_RANKING.value)
    sparsity = types.SimpleNamespace(
        PolynomialDecay=kc.pruning.PolynomialDecay,
        prune_low_magnitude=prune,
        UpdatePruningStep=kc.pruning.UpdatePruningStep,
        strip_pruning=kc.pruning.strip_pruning)
    return parity._sweep(cells, seeds, types.SimpleNamespace(
        name=f"kcompress {_RANKING.value}", keras=keras, sparsity=sparsity,
        input=keras.Input, copy=lambda model: model,
        training_data=lambda x, y: data.update(train=(x, y))))


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
        for ranking in _RANKINGS.value:
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
