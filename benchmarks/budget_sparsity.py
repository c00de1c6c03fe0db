"""Global magnitude pruning against TFMOT's uniform pruning (issue 32).

The cells, models, data, float weights, batches and recipe of
`benchmarks/pruning_parity.py` (four small architectures on three
scikit-learn sets, 5 seeds, PolynomialDecay to the target over 6 epochs then
10 fine-tune epochs), with one change on the kcompress side:
`prune_low_magnitude(..., scope="global")`, which ranks every layer's
weights together, so the target is the model's overall sparsity. TFMOT
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


def run_global(cells, seeds):
    import keras

    import kcompress as kc

    sparsity = types.SimpleNamespace(
        PolynomialDecay=kc.pruning.PolynomialDecay,
        prune_low_magnitude=functools.partial(
            kc.pruning.prune_low_magnitude, scope="global"),
        UpdatePruningStep=kc.pruning.UpdatePruningStep,
        strip_pruning=kc.pruning.strip_pruning)
    return parity._sweep(cells, seeds, types.SimpleNamespace(
        name="kcompress global", keras=keras, sparsity=sparsity,
        input=keras.Input, copy=lambda model: model))


def table(global_results, tfmot_results):
    """Rows and the verdict of the acceptance: +1 point in half the cells,
    never worse than -0.5."""
    from kcompress.tables import render

    rows, wins, cells, worst = [], 0, 0, np.inf
    for key, ours in global_results.items():
        model_name, dataset, sparsity = key.split("/")
        if sparsity == "float":
            continue
        cells += 1
        ours, theirs = np.array(ours), np.array(tfmot_results[key])
        diff = 100 * (ours.mean() - theirs.mean())
        wins += diff >= 1.0
        worst = min(worst, diff)
        rows.append([model_name, dataset, f"{float(sparsity):.0%}",
                     f"{np.mean(global_results[f'{model_name}/{dataset}/float']):.3f}",
                     f"{ours.mean():.3f}", f"{theirs.mean():.3f}",
                     f"{diff:+.1f}"])
    verdict = (f"{wins} of {cells} cells >= +1 point; worst cell "
               f"{worst:+.1f} points (acceptance: half the cells >= +1, none "
               "below -0.5)")
    return render(["model", "data", "sparsity", "float", "global (kc)",
                   "uniform (TFMOT)", "diff (pt)"], rows), verdict


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
        tfmot = subprocess.Popen(
            [sys.executable, parity.__file__, "--tool=tfmot",
             f"--work_dir={work}", *passed], stdout=subprocess.PIPE,
            env=env, text=True)
        ours = subprocess.run(
            [sys.executable, __file__, "--stage=global", f"--work_dir={work}",
             *passed], stdout=subprocess.PIPE, env=env, text=True, check=True)
        theirs, _ = tfmot.communicate()
        if tfmot.returncode:
            sys.exit(f"TFMOT run failed (exit {tfmot.returncode})")
    return table(json.loads(ours.stdout.strip().splitlines()[-1]),
                 json.loads(theirs.strip().splitlines()[-1]))


def main(argv):
    del argv
    if _STAGE.value:
        print(json.dumps(run_global(parity._cells(), parity._SEEDS.value)))
        return
    passed = [a for a in sys.argv[1:]
              if not a.startswith(("--stage", "--work_dir"))]
    if not any(a.startswith("--sparsities") for a in passed):
        passed.append("--sparsities=0.8,0.9")
    text, verdict = run(passed)
    print(text + "\n\n" + verdict)
    print(f"\nCommand: python benchmarks/budget_sparsity.py "
          f"{' '.join(passed)}".rstrip())


if __name__ == "__main__":
    app.run(main)
