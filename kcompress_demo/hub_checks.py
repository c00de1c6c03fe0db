"""Each technique on one KerasHub model, measured: the cells of
`benchmarks/kerashub_zoo.py` and of `tests/test_kerashub_zoo.py`.

Every function takes a model of `hub_zoo.model(name, nested)` and its
sample inputs, and returns a dict of figures; none modifies the model.

- `ptq`: the int8 file loads with and without XNNPACK; its compute ops'
  int8 share and its largest distance from Keras in output steps.
- `qat`: `quantize_model`, calibrated, converted with mode "qat": the same
  figures, the file against the QAT model.
- `prune`: `prune_low_magnitude` at 50% trained for two steps; the
  sparsity of every kernel it reports as pruned (composites included).
- `cluster`: `cluster_weights` with 8 clusters; the most distinct values
  left in any clustered kernel after `strip_clustering`.
- `groups`: `prune_channel_groups` at 25% then `shrink`: parameters kept
  and the largest output difference, or the refusal.
"""

import keras
import numpy as np

import kcompress as kc
import tflite_export as te
from kcompress.clustering.cluster_wrapper import clusterable_weights
from tflite_export.inspection import interpreter_for

__all__ = ["COMPUTE_OPS", "ptq", "qat", "prune", "cluster", "groups"]

COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
               "BATCH_MATMUL")


def _file_figures(tflite, model, x):
    loads = {}
    for delegates in (True, False):
        try:
            interpreter_for(tflite, delegates=delegates)
            loads[delegates] = True
        except ValueError:
            loads[delegates] = False
    compute = [op for op in te.inspect(tflite).ops
               if op.name in COMPUTE_OPS]
    figures = {
        "loads_xnnpack": loads[True], "loads_reference": loads[False],
        "compute_ops": len(compute),
        "int8_share": sum(op.integer for op in compute) / max(len(compute),
                                                              1),
        "size": len(tflite)}
    if loads[True]:
        report = te.verify(tflite, model, x)
        figures["max_steps"] = float(report.max_steps)
    return figures


def ptq(model, x):
    return _file_figures(te.convert(model, "int8", representative_data=x),
                         model, x)


def qat(model, x):
    quantized = kc.quantize_model(model)
    kc.quantization.calibrate(quantized, x)
    return _file_figures(te.convert(quantized, "qat"), quantized, x)


def _labels(model, x):
    classes = model.outputs[0].shape[-1]
    size = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
    return np.random.default_rng(0).integers(0, classes, size)


def prune(model, x, sparsity=0.5):
    pruned = kc.prune_low_magnitude(
        model, kc.pruning.ConstantSparsity(sparsity, 0, frequency=1))
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    pruned.fit(x, _labels(model, x), epochs=1, batch_size=8, verbose=0,
               callbacks=[kc.pruning.UpdatePruningStep()])
    kernels = {}
    for wrapper in kc.pruning.pruning_wrappers(pruned):
        for variable, value in wrapper.masked_weights():
            value = keras.ops.convert_to_numpy(value)
            kernels[variable.path] = float(np.mean(value == 0))
    return {"wrapped": len(kc.pruning.pruning_wrappers(pruned)),
            "kernels": len(kernels),
            "min_sparsity": min(kernels.values()),
            "max_sparsity": max(kernels.values())}


def _layers(model):
    """The layers of `model`, those of nested models included."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _layers(layer)


def cluster(model, x, clusters=8):
    clustered = kc.clustering.cluster_weights(model,
                                              number_of_clusters=clusters)
    names = [w.layer.name for w in
             kc.clustering.clustering_wrappers(clustered)]
    layers = {layer.name: layer
              for layer in _layers(kc.clustering.strip_clustering(clustered))}
    distinct = [len(np.unique(keras.ops.convert_to_numpy(w)))
                for name in names for w in clusterable_weights(layers[name])]
    return {"wrapped": len(names), "max_distinct": max(distinct)}


def groups(model, x, fraction=0.25):
    zeroed = kc.pruning.prune_channel_groups(model, fraction)
    small = kc.pruning.shrink(zeroed)
    difference = np.abs(
        np.asarray(small.predict(x, verbose=0))
        - np.asarray(zeroed.predict(x, verbose=0))).max()
    return {"params_kept": small.count_params() / model.count_params(),
            "max_difference": float(difference)}
