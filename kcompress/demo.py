"""The end-to-end demo on the reference digits task (`make demo`).

Trains the reference CNN, prunes it to the target sparsity during `fit`,
strips the wrappers, and prints the per-layer sparsity report and the
accuracy before and after.

Run: `python -m kcompress.demo [--sparsity=0.8] [--fine_tune_epochs=10]`.
"""

import os
import sys

from absl import app
from absl import flags

_SPARSITY = flags.DEFINE_float("sparsity", 0.8, "Final sparsity, in [0, 1).")
_EPOCHS = flags.DEFINE_integer("epochs", 30, "Float training epochs.")
_FINE_TUNE = flags.DEFINE_integer("fine_tune_epochs", 10,
                                  "Pruning fine-tune epochs.")
_OUT = flags.DEFINE_string("out", "artifacts",
                           "Directory for the models and logs.")


def run(sparsity, epochs, fine_tune_epochs, out_dir, print_fn=print):
    """Runs the demo; returns a dict of the figures it printed."""
    import keras

    import kcompress as kc
    from kcompress import reference

    data = reference.load_digits_split()
    model = reference.compile_reference(reference.reference_cnn())
    print_fn(f"Training the reference CNN for {epochs} epochs...")
    model.fit(data.x_train, data.y_train, batch_size=32, epochs=epochs,
              verbose=0)
    float_accuracy = reference.accuracy(model, data.x_test, data.y_test)

    steps_per_epoch = -(-len(data.x_train) // 32)
    end_step = int(steps_per_epoch * fine_tune_epochs * 0.7)
    schedule = kc.pruning.PolynomialDecay(
        0.0, sparsity, begin_step=0, end_step=end_step, frequency=10)
    pruned = reference.compile_reference(
        kc.prune_low_magnitude(model, schedule))
    print_fn(f"Pruning to {sparsity:.0%} over {fine_tune_epochs} epochs...")
    pruned.fit(
        data.x_train, data.y_train, batch_size=32, epochs=fine_tune_epochs,
        verbose=0,
        callbacks=[kc.pruning.UpdatePruningStep(),
                   kc.pruning.PruningSummaries(os.path.join(out_dir, "logs"))])
    stripped = kc.strip_pruning(pruned)
    pruned_accuracy = reference.accuracy(stripped, data.x_test, data.y_test)

    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "digits_pruned.keras")
    tmp = path + ".tmp.keras"
    stripped.save(tmp)
    os.replace(tmp, path)

    print_fn("\nPer-layer report of the stripped, pruned model:")
    rows = kc.summary(stripped, print_fn=print_fn)
    print_fn(
        f"\nTest accuracy (n={len(data.y_test)}): float {float_accuracy:.4f}"
        f" -> pruned {pruned_accuracy:.4f} "
        f"({pruned_accuracy - float_accuracy:+.4f})"
    )
    print_fn(f"Saved {path}; sparsity logs in {out_dir}/logs "
             f"(keras {keras.__version__}).")
    return {"float_accuracy": float_accuracy,
            "pruned_accuracy": pruned_accuracy, "rows": rows, "path": path}


def main(argv):
    if len(argv) > 1:
        print(f"demo: unexpected arguments {argv[1:]}", file=sys.stderr)
        sys.exit(2)
    if not 0.0 <= _SPARSITY.value < 1.0:
        print(f"demo: Received: --sparsity={_SPARSITY.value}. Expected a "
              "float in [0, 1).", file=sys.stderr)
        sys.exit(2)
    run(_SPARSITY.value, _EPOCHS.value, _FINE_TUNE.value, _OUT.value)


if __name__ == "__main__":
    app.run(main)
