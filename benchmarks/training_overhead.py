"""Training overhead of pruning and QAT: kcompress (Keras 3) against TFMOT.

For each framework (kcompress on Keras 3, TFMOT on tf_keras), the reference
digits CNN is fitted three ways: plain, wrapped for pruning (PolynomialDecay
to 80%, mask updates every 10 steps), and wrapped for QAT (`quantize_model`).
The fits alternate, round after round, in one process, and the order
rotates every round, so that drifts in machine load hit every configuration
alike. Each fit in a round runs `epochs_per_round` epochs, the first of which
(tracing, XLA compilation) is dropped. The table gives the median seconds per
epoch, the ratios of those medians (pruned / plain, QAT / plain, each against
the same framework's plain fit), and the median of the per-round paired
ratios, which cancels slow drifts in load. On a noisy shared machine the
paired figure is the steadier one. The row "kcompress on JAX" comes from a
child process with `KERAS_BACKEND=jax` (a process has one backend), run
after the others with the same rounds; its ratios are paired within it.

The two frameworks default to different TensorFlow execution: Keras 3
compiles the train step with XLA where it can (`jit_compile="auto"`), and
tf_keras does not. XLA speeds a plain model up more than a QAT one (it
fuses a convolution with its bias and activation, and a quantizer between
them costs a pass of its own), so a ratio under one framework's default
says little about the other's. By default (`--xla=both`) every fit runs
both ways, `jit_compile=True` and `False`, for both frameworks, and each
ratio is compared with TFMOT's under the same execution.

Run: `make bench` or
`python benchmarks/training_overhead.py --rounds=20 --epochs_per_round=2`.
"""

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

# tf_keras (for TFMOT) is reached through tf.keras only with this set, and it
# must be set before TensorFlow is imported. Keras 3 is imported as `keras`
# and is not affected. This is a benchmark script, not the package.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_ROUNDS = flags.DEFINE_integer("rounds", 30, "Alternating rounds.")
_EPOCHS = flags.DEFINE_integer("epochs_per_round", 2,
                               "Epochs per fit per round (first dropped).")
_SKIP_TFMOT = flags.DEFINE_bool("skip_tfmot", False,
                                "Measure kcompress only.")
_JAX = flags.DEFINE_bool("jax", True, "Also measure kcompress on the JAX "
                         "backend, in a child process (needs jax).")
_TIMES_ONLY = flags.DEFINE_bool("times_only", False, "Print kcompress's "
                                "epoch times as JSON (the JAX child).")
_XLA = flags.DEFINE_enum(
    "xla", "both", ["both", "default", "on", "off"],
    "TensorFlow execution: every framework with and without XLA "
    "(`jit_compile=True` and `False`), or each framework's default (Keras "
    "3: XLA where it compiles; tf_keras: no XLA), or one of the two.")

BATCH = 32
SPARSITY = 0.8
FREQUENCY = 10


class _EpochTimer:
    """Collects wall-clock seconds per epoch; works for both Keras flavours."""

    def __init__(self, base):
        timer = self

        class Callback(base):
            def on_epoch_begin(self, epoch, logs=None):
                timer._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                timer.times.append(time.perf_counter() - timer._start)

        self.times = []
        self.callback = Callback()


def _modes():
    """`jit_compile` values to measure; None is the framework's default."""
    return {"both": [True, False], "default": [None], "on": [True],
            "off": [False]}[_XLA.value]


def _label(framework, jit_compile):
    return framework + {None: "", True: ", XLA", False: ", no XLA"}[
        jit_compile]


def _compile_kwargs(jit_compile):
    return {} if jit_compile is None else {"jit_compile": jit_compile}


def _kcompress_fits(data, end_step, jit_compile):
    import keras

    import kcompress as kc
    from kcompress_demo import reference

    def compile_(model):
        return reference.compile_reference(model,
                                           **_compile_kwargs(jit_compile))

    plain = compile_(reference.reference_cnn(seed=0))
    pruned = compile_(kc.prune_low_magnitude(
        reference.reference_cnn(seed=0),
        kc.pruning.PolynomialDecay(0.0, SPARSITY, 0, end_step,
                                   frequency=FREQUENCY)))
    qat = compile_(kc.quantize_model(reference.reference_cnn(seed=0)))
    base = keras.callbacks.Callback
    return {
        "plain": (plain, [], base),
        "pruned": (pruned, [kc.pruning.UpdatePruningStep()], base),
        "qat": (qat, [], base),
    }


def _tfmot_fits(data, end_step, jit_compile):
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras_reference as ref

    tf_keras = tf.keras
    build = ref.build_cnn

    def compile_(model):
        return ref.compile_reference(model, **_compile_kwargs(jit_compile))

    schedule = tfmot.sparsity.keras.PolynomialDecay(
        0.0, SPARSITY, 0, end_step, frequency=FREQUENCY)
    pruned = tfmot.sparsity.keras.prune_low_magnitude(
        build(), pruning_schedule=schedule)
    qat = tfmot.quantization.keras.quantize_model(build())
    base = tf_keras.callbacks.Callback
    return {
        "plain": (compile_(build()), [], base),
        "pruned": (compile_(pruned),
                   [tfmot.sparsity.keras.UpdatePruningStep()], base),
        "qat": (compile_(qat), [], base),
    }


def measure(rounds, epochs_per_round, with_tfmot, modes=(None,)):
    """Epoch times keyed by (framework label, kind): for each `jit_compile`
    in `modes`, kcompress's fits and, `with_tfmot`, TFMOT's."""
    from kcompress_demo import reference

    data = reference.load_digits_split()
    steps = -(-len(data.x_train) // BATCH)
    end_step = steps * rounds * epochs_per_round
    fits = {}
    for jit_compile in modes:
        fits.update({(_label("kcompress", jit_compile), k): v for k, v in
                     _kcompress_fits(data, end_step, jit_compile).items()})
        if with_tfmot:
            fits.update({(_label("tfmot", jit_compile), k): v for k, v in
                         _tfmot_fits(data, end_step, jit_compile).items()})
    timers = {key: _EpochTimer(base) for key, (_, _, base) in fits.items()}
    keys = list(fits)
    for round_index in range(rounds):
        shift = round_index % len(keys)
        for key in keys[shift:] + keys[:shift]:
            model, callbacks, _ = fits[key]
            timer = timers[key]
            before = len(timer.times)
            model.fit(data.x_train, data.y_train, batch_size=BATCH,
                      epochs=epochs_per_round, verbose=0,
                      callbacks=callbacks + [timer.callback])
            del timer.times[before]  # first epoch of each fit: tracing
        print(f"round {round_index + 1}/{rounds} done", file=sys.stderr)
    return {key: timer.times for key, timer in timers.items()}


def _paired(times, name, kind):
    """Median over rounds of (kind epoch / plain epoch) in the same round."""
    epochs = len(times[(name, "plain")]) // _ROUNDS.value
    per_round = []
    for r in range(_ROUNDS.value):
        window = slice(r * epochs, (r + 1) * epochs)
        per_round.append(statistics.median(times[(name, kind)][window])
                         / statistics.median(times[(name, "plain")][window]))
    return statistics.median(per_round)


def table(times, frameworks):
    from kcompress.tables import render

    lines = []
    ratios = {}
    for name in frameworks:
        median = {kind: statistics.median(times[(name, kind)])
                  for kind in ("plain", "pruned", "qat")}
        ratios[name] = {kind: _paired(times, name, kind)
                        for kind in ("pruned", "qat")}
        lines.append([
            name, f"{median['plain']:.4f}", f"{median['pruned']:.4f}",
            f"{median['qat']:.4f}",
            f"{median['pruned'] / median['plain']:.3f}",
            f"{median['qat'] / median['plain']:.3f}",
            f"{ratios[name]['pruned']:.3f}", f"{ratios[name]['qat']:.3f}",
            len(times[(name, "plain")])])
    return render(["framework", "plain s/epoch", "pruned s/epoch",
                   "QAT s/epoch", "pruned/plain", "QAT/plain",
                   "pruned/plain paired", "QAT/plain paired", "epochs each"],
                  lines), ratios


def _jax_times():
    """kcompress's epoch times on the JAX backend, from a child process."""
    command = [sys.executable, os.path.abspath(__file__), "--skip_tfmot",
               "--times_only", "--xla=default", f"--rounds={_ROUNDS.value}",
               f"--epochs_per_round={_EPOCHS.value}"]
    done = subprocess.run(command, env=dict(os.environ, KERAS_BACKEND="jax"),
                          capture_output=True, text=True, check=True)
    times = json.loads(done.stdout.strip().splitlines()[-1])
    return {("kcompress on JAX", kind): value for kind, value in times.items()}


def main(argv):
    del argv
    if _TIMES_ONLY.value:
        times = measure(_ROUNDS.value, _EPOCHS.value, False)
        print(json.dumps({kind: value for (_, kind), value in times.items()}))
        return
    with_jax = _JAX.value and importlib.util.find_spec("jax") is not None
    with_tfmot = not _SKIP_TFMOT.value
    if with_tfmot:
        try:
            import tensorflow_model_optimization  # noqa: F401
        except ImportError:
            print("tensorflow-model-optimization is not installed; install "
                  "the bench extra (`pip install -e '.[bench]'`) or pass "
                  "--skip_tfmot.", file=sys.stderr)
            sys.exit(2)
    times = measure(_ROUNDS.value, _EPOCHS.value, with_tfmot, _modes())
    frameworks = list(dict.fromkeys(name for name, _ in times))
    if with_jax:  # Its own process: a process has one Keras backend.
        times.update(_jax_times())
        frameworks.append("kcompress on JAX")
    text, ratios = table(times, frameworks)
    command = "python benchmarks/training_overhead.py " + " ".join(
        f"--{name}={flag.value}" for name, flag in
        (("rounds", _ROUNDS), ("epochs_per_round", _EPOCHS), ("jax", _JAX),
         ("skip_tfmot", _SKIP_TFMOT), ("xla", _XLA)))
    print(f"\nTraining overhead, reference digits CNN, batch {BATCH}: "
          f"pruning ({SPARSITY:.0%} PolynomialDecay, frequency {FREQUENCY}) "
          "and QAT, medians of seconds per epoch.")
    print(f"Command: {command}\n")
    print(text)
    if with_tfmot:
        for jit_compile in _modes():
            ours = ratios[_label("kcompress", jit_compile)]
            theirs = ratios[_label("tfmot", jit_compile)]
            for kind in ("pruned", "qat"):
                print(f"\n{kind}{_label('', jit_compile)}: kcompress/TFMOT "
                      f"ratio of paired ratios "
                      f"{ours[kind] / theirs[kind]:.3f} (below 1: kcompress "
                      "adds less overhead).", end="")
        print()


if __name__ == "__main__":
    app.run(main)
