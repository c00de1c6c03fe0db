"""`compress_to`: the smallest loss of accuracy that fits a measured budget.

The search, for a budget in bytes of the int8 file and/or milliseconds on
a target:

1. measure the float file and the dense int8 file (size; latency on the
   target when a latency budget is set), and the per-layer sensitivities
   (`sensitivity`: channels and int8 precision, no retraining);
2. choose per-group channel fractions (`allocate_channels`): each group
   gives the channels that cost the least metric per parameter saved, a
   price searched by bisection until the shrunk model's int8 file, converted
   and measured for real, fits the budget. The uniform cut (one fraction
   for every group) is priced the same way, and the two compete on a short
   fine-tune scored on the validation data (`candidates`);
3. shrink the model to that plan, fine-tune it in `fit` (distilling from
   the original when `distill=True`), then quantization-aware training;
   with `mixed_precision=True` the layers whose int8 activations cost the
   most go to int16x8 in the file (AI Edge Quantizer) instead of QAT;
4. convert, measure the file again (size, latency, the metric in Keras and
   in the file). If it misses the budget, the price rises and the round
   repeats; after `max_rounds` the search stops with a `BudgetError` that
   says the closest it got.

Files and measurements come from an exporter (`exporter.get_exporter`):
`kcompress` itself never imports TensorFlow.
"""

import dataclasses

import keras
import numpy as np

from kcompress import _model_utils
from kcompress.budget import candidates
from kcompress.budget import scoring
from kcompress.budget.exporter import get_exporter
from kcompress.budget.layer_sensitivity import sensitivity
from kcompress.budget.plan import CompressionPlan
from kcompress.pruning.dependency_groups import channel_groups
from kcompress.pruning.group_pruning import prune_channel_groups
from kcompress.pruning.shrinking import shrink

__all__ = ["compress_to", "BudgetError", "BudgetResult"]

_MARGIN = 0.03  # aim this far under the budget while searching


class BudgetError(ValueError):
    """The budget cannot be met; `closest` holds the best measurement."""

    def __init__(self, message, closest=None):
        super().__init__(message)
        self.closest = closest


@dataclasses.dataclass
class BudgetResult:
    """What `compress_to` returns.

    Attributes:
        model: the compressed Keras model (QAT layers, unless mixed
            precision chose a post-training file).
        tflite: the `.tflite` bytes that were measured.
        plan: the `CompressionPlan` chosen.
        measured: sizes in bytes, latencies in ms, the metric in Keras and
            in the file, for the result and for the dense references;
            `plan_family`, the family of the plan chosen, and
            `probe_metric` and `probe_loss`, each family's probe scores
            when they competed.
        table: the `SensitivityTable` the plan came from.
    """

    model: keras.Model
    tflite: bytes
    plan: CompressionPlan
    measured: dict
    table: object = None


def _check_budget(size_bytes, latency_ms, max_metric_drop):
    if size_bytes is None and latency_ms is None:
        raise ValueError(
            "Received: size_bytes=None and latency_ms=None. Expected at "
            "least one budget, e.g. size_bytes=300_000 or latency_ms=5.0.")
    if size_bytes is not None:
        if isinstance(size_bytes, str):
            raise ValueError(
                f"Received: size_bytes={size_bytes!r}. Expected a number of "
                "bytes as an integer, e.g. 300_000 for 300 KB.")
        if (isinstance(size_bytes, bool) or not isinstance(
                size_bytes, (int, float, np.integer)) or size_bytes <= 0):
            raise ValueError(
                f"Received: size_bytes={size_bytes!r}. Expected a positive "
                "number of bytes.")
        if size_bytes < 1024:
            raise ValueError(
                f"Received: size_bytes={size_bytes!r}. Expected the budget "
                "in bytes (e.g. 300_000), not kilobytes or a fraction: no "
                "TFLite file is smaller than 1 KB.")
    if latency_ms is not None and (
            isinstance(latency_ms, (bool, str)) or not isinstance(
                latency_ms, (int, float, np.integer, np.floating))
            or latency_ms <= 0):
        raise ValueError(
            f"Received: latency_ms={latency_ms!r}. Expected a positive "
            "number of milliseconds, e.g. 5.0.")
    if max_metric_drop is not None and not (
            isinstance(max_metric_drop, (int, float))
            and 0 <= max_metric_drop < 1):
        raise ValueError(
            f"Received: max_metric_drop={max_metric_drop!r}. Expected a "
            "float in [0, 1) (0.01 is one point of accuracy).")


def _group_savings(model, graph, fraction=0.5):
    """`{group: parameters removed per unit fraction}`, by shrinking."""
    total = model.count_params()
    savings = {}
    for group in graph.groups:
        if group.prunable:
            kept = shrink(prune_channel_groups(
                model, {group.name: fraction})).count_params()
            savings[group.name] = (total - kept) / fraction
    return savings


def _fits(measure, size_bytes, latency_ms, margin):
    return ((size_bytes is None or measure["size_bytes"]
             <= size_bytes * (1 - margin))
            and (latency_ms is None or measure["latency_ms"]
                 <= latency_ms * (1 - margin)))


def compress_to(model, data, *, size_bytes=None, latency_ms=None,
                target="host", max_metric_drop=None, validation_data=None,
                metric="accuracy", loss=None, epochs=4, qat_epochs=2,
                batch_size=32, learning_rate=1e-3, distill=False,
                mixed_precision=False, int16_threshold=0.005, table=None,
                plans=candidates.FAMILIES, probe_epochs=1, exporter="litert",
                max_rounds=3, verbose=1):
    """Compresses `model` until its int8 file fits the budget, measured.

    Args:
        model: a trained, built Sequential or functional Keras model with
            one input. It is not modified.
        data: `(x, y)` to fine-tune on.
        size_bytes: the largest file, in bytes.
        latency_ms: the longest median latency of one inference on
            `target`, in ms.
        target: where latency is measured: `"host"`, `"pi4"`/`"rpi4-emu"`
            or `"pi5"`/`"rpi5-emu"` (emulated), `"ssh://user@host"`, or
            `"adb"` (see `tflite_export bench`).
        max_metric_drop: the most the metric may fall from the original's,
            in the file (0.01: one point of accuracy); None for no bound.
        validation_data: `(x, y)` for the sensitivities and the metric;
            defaults to `data`.
        metric: `"accuracy"`, `"loss"` or a callable `score(y_true,
            y_pred)`, higher is better.
        loss: the fine-tuning loss; defaults to the model's compiled loss.
        epochs, qat_epochs: of the fine-tune and of QAT.
        batch_size, learning_rate: of both (Adam).
        distill: fine-tune the shrunk model on the original's outputs too
            (`kcompress.distillation.distill`).
        mixed_precision: let layers whose int8 activations cost more than
            `int16_threshold` of the metric run in int16x8 (post-training,
            AI Edge Quantizer) instead of quantization-aware training.
        table: a `SensitivityTable` already measured (else measured here).
        plans: the families of channel plans that compete
            (`candidates.FAMILIES`): `"sensitivity"` (`allocate_channels`
            at a price) and `"uniform"` (one fraction for every group).
            Each family's cheapest plan that fits is fine-tuned for
            `probe_epochs` and scored on the validation data; the best
            goes on.
        exporter: `"litert"` or an exporter object (`exporter.METHODS`).
        max_rounds: fine-tune rounds before giving up.
        verbose: 0 silent, 1 progress lines.

    Returns:
        A `BudgetResult`.

    Raises:
        ValueError: for a budget of the wrong unit or sign, a metric the
            data cannot compute, or an unknown exporter.
        BudgetError: when the budget cannot be met; `error.closest` is the
            best measurement.
        tflite_export.TargetError: for a target that is not configured.
    """
    _check_budget(size_bytes, latency_ms, max_metric_drop)
    plans = candidates.check_families(plans)
    _model_utils.check_model_argument(
        model, "model", "compress_to",
        "rebuild it as a functional or Sequential model first.",
        accept_layers=False)
    exporter = get_exporter(exporter)
    if latency_ms is not None:
        target = exporter.check_target(target)
    x, y = scoring.check_data(data)
    x_val, y_val = scoring.check_data(validation_data or data,
                                      "validation_data")
    reference = model.predict(x_val, verbose=0, batch_size=256)
    score = scoring.resolve_metric(metric, model, y_val, reference)
    loss = loss or getattr(model, "loss", None)
    if loss is None:
        raise ValueError(
            f"Model '{model.name}' is not compiled and no loss was given. "
            "Pass loss=... (the training loss) or compile the model.")
    say = print if verbose else (lambda *a, **k: None)
    samples = x[:300]

    def measure(candidate, mode="int8", int16_layers=()):
        tflite = exporter.convert(candidate, mode, samples, int16_layers)
        result = {"size_bytes": len(tflite)}
        if latency_ms is not None:
            result["latency_ms"] = exporter.latency_ms(tflite, target)
        return tflite, result

    measured = {"baseline_metric": score(reference), "target": target}
    float_file = exporter.convert(model, "float32", None, ())
    measured["float_size_bytes"] = len(float_file)
    _, dense = measure(model)
    measured["dense_int8_size_bytes"] = dense["size_bytes"]
    if latency_ms is not None:
        measured["dense_int8_latency_ms"] = dense["latency_ms"]
    say(f"compress_to: float file {len(float_file):,} B; dense int8 "
        f"{dense['size_bytes']:,} B" + (
            f", {dense['latency_ms']:.2f} ms on {target}"
            if latency_ms is not None else ""))
    if table is None:
        table = sensitivity(model, (x_val, y_val), metric=metric,
                            sparsities=(0.5,), verbose=verbose,
                            precisions=("int8",) if mixed_precision else ())
    savings = _group_savings(model, channel_groups(model))
    families = [candidates.family(name, table, savings,
                                  1.0 / max(model.count_params(), 1))
                for name in plans]

    def fits(result, margin=_MARGIN):
        return _fits(result, size_bytes, latency_ms, margin)

    measured_plans = {}

    def measure_plan(channels):
        key = candidates.plan_key(channels)
        if key not in measured_plans:  # bisection meets a plan again
            measured_plans[key] = measure(shrink(prune_channel_groups(
                model, channels)))[1]
        return measured_plans[key]

    def cheapest(plans, low):
        """`(knob, channels, PTQ estimate)` of the cheapest plan of the
        family that fits, or a `BudgetError`."""
        if fits(dense) and not low:
            return 0.0, {}, dense
        knob, channels, result = candidates.cheapest_fit(
            plans, measure_plan, fits, low)
        if knob is None:
            raise BudgetError(
                "The budget cannot be met: with every channel group at its "
                f"largest cut ({plans.name} plan) the int8 file is "
                f"{result['size_bytes']:,} B"
                + (f" and {result['latency_ms']:.2f} ms on {target}"
                   if latency_ms is not None else "")
                + f" (budget: {_budget_text(size_bytes, latency_ms)}). "
                "Raise the budget, or measure larger channel fractions "
                "(sensitivity(..., channel_fractions=(..., 0.9))).",
                closest=result)
        return knob, channels, result

    chosen, (knob, channels, estimate) = _choose(
        families, cheapest, model, (x, y), (x_val, y_val), score, loss,
        probe_epochs, batch_size, learning_rate, measured, say)
    measured["plan_family"] = chosen.name
    closest = None
    for round_number in range(1, max_rounds + 1):
        if round_number > 1:
            knob, channels, estimate = cheapest(chosen, knob)
        say(f"compress_to: round {round_number}: {chosen.name} plan removes "
            f"channels of {len(channels)} groups; PTQ estimate "
            f"{estimate['size_bytes']:,} B" + (
                f", {estimate['latency_ms']:.2f} ms"
                if latency_ms is not None else ""))
        compressed, tflite, plan = _fine_tune(
            model, channels, table, x, y, loss, epochs, qat_epochs,
            batch_size, learning_rate, distill, mixed_precision,
            int16_threshold, samples, exporter, verbose)
        result = {"size_bytes": len(tflite)}
        if latency_ms is not None:
            result["latency_ms"] = exporter.latency_ms(tflite, target)
        result["metric_keras"] = score(compressed.predict(
            x_val, verbose=0, batch_size=256))
        result["metric_tflite"] = score(exporter.predict(tflite, x_val))
        closest = result
        if fits(result, 0.0):
            break
        knob = max(knob, 1.0) * 1.5  # missed after training: cut more
    else:
        raise BudgetError(
            f"The budget ({_budget_text(size_bytes, latency_ms)}) was not "
            f"met in {max_rounds} rounds; the closest file: "
            f"{_measure_text(closest)}.", closest=closest)
    measured.update(result)
    drop = measured["baseline_metric"] - result["metric_tflite"]
    if max_metric_drop is not None and drop > max_metric_drop:
        raise BudgetError(
            f"The file fits ({_measure_text(result)}) but its metric fell "
            f"{drop:.4f} from {measured['baseline_metric']:.4f}, more than "
            f"max_metric_drop={max_metric_drop}. Raise the budget, train "
            "longer (epochs=...), or try distill=True.", closest=result)
    return BudgetResult(compressed, tflite, plan, measured, table)


def _choose(families, cheapest, model, data, validation, score, loss,
            probe_epochs, batch_size, learning_rate, measured, say):
    """`(family, (knob, channels, estimate))`: each family's cheapest plan
    that fits, probed (a short fine-tune, scored on the validation data)
    when more than one fits and they differ; the best score wins, then the
    lower validation loss. Raises the first family's `BudgetError` when none
    fits."""
    fitting, errors = [], []
    for plans in families:
        try:
            fitting.append((plans, cheapest(plans, 0.0)))
        except BudgetError as error:
            errors.append(error)
    if not fitting:
        raise errors[0]
    distinct = {candidates.plan_key(found[1]) for _, found in fitting}
    if len(fitting) == 1 or len(distinct) == 1 or not probe_epochs:
        return fitting[0]
    scores = {}
    for plans, found in fitting:
        scores[plans.name] = candidates.probe(
            model, found[1], data, validation, score, loss, probe_epochs,
            batch_size, learning_rate)
    measured["probe_metric"] = {name: value for name, (value, _)
                                in scores.items()}
    measured["probe_loss"] = {name: -minus for name, (_, minus)
                              in scores.items()}
    best = max(fitting, key=lambda item: scores[item[0].name])
    say("compress_to: probe (" + ", ".join(
        f"{name} {value:.4f} (loss {-minus:.4f})"
        for name, (value, minus) in scores.items())
        + f"): {best[0].name} plan")
    return best


def _budget_text(size_bytes, latency_ms):
    parts = []
    if size_bytes is not None:
        parts.append(f"{int(size_bytes):,} B")
    if latency_ms is not None:
        parts.append(f"{latency_ms} ms")
    return " and ".join(parts)


def _measure_text(result):
    text = f"{result['size_bytes']:,} B"
    if "latency_ms" in result:
        text += f", {result['latency_ms']:.2f} ms"
    return text


def _fine_tune(model, channels, table, x, y, loss, epochs, qat_epochs,
               batch_size, learning_rate, distill, mixed_precision,
               int16_threshold, samples, exporter, verbose):
    """Shrinks `model` to `channels`, fine-tunes it, and converts it:
    `(Keras model, file bytes, plan)`."""
    from kcompress import quantization

    student = shrink(prune_channel_groups(model, channels))
    fit_verbose = 2 if verbose else 0
    if epochs:
        if distill:
            from kcompress.distillation import distill as make_distiller

            trainer = make_distiller(student, teacher=model)
        else:
            trainer = student
        trainer.compile(keras.optimizers.Adam(learning_rate), loss=loss)
        trainer.fit(x, y, epochs=epochs, batch_size=batch_size,
                    verbose=fit_verbose)
    int16 = []
    if mixed_precision and "precision" in {r.kind for r in table.rows}:
        int16 = [layer for layer in table.layers("precision")
                 if table.drop(layer, "precision", "int8") > int16_threshold
                 and layer in {la.name for la in student.layers}]
    plan = CompressionPlan(channels=channels,
                           precision=dict.fromkeys(int16, "int16x8"))
    if int16 or not qat_epochs:
        return student, exporter.convert(student, "int8", samples,
                                         tuple(int16)), plan
    qat = quantization.quantize_model(student)
    qat.compile(keras.optimizers.Adam(learning_rate / 2), loss=loss)
    qat.fit(x, y, epochs=qat_epochs, batch_size=batch_size,
            verbose=fit_verbose)
    return qat, exporter.convert(qat, "qat", samples, ()), plan
