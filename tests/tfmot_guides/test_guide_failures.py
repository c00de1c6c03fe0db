"""What stopped TFMOT's own guide notebooks on `kcompress.compat.tfmot`
(issue 35), one test each, in our words. `benchmarks/tfmot_guides.py` runs
the guides themselves."""

import json

import keras
import numpy as np
import pytest

from kcompress.compat import tfmot
from tests.tfmot_guides.conftest import compile_guide
from tflite_export.file_bytes import operators

L = keras.layers


def test_numpy_step_counts_are_taken_as_tfmot_takes_them():
    """pruning_with_keras computes end_step with numpy."""
    epochs = 2
    end_step = np.ceil(1437 / 128).astype(np.int32) * epochs
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=np.float32(0.5), final_sparsity=0.8,
        begin_step=np.int64(0), end_step=end_step, frequency=10.0)
    assert (schedule.end_step, type(schedule.end_step)) == (24, int)
    config = schedule.get_config()
    json.dumps(config)  # Python numbers, not numpy ones
    assert type(schedule).from_config(config).get_config() == config
    constant = tfmot.sparsity.keras.ConstantSparsity(0.5, np.int32(3))
    assert constant.begin_step == 3
    for bad in (2.5, True, "3"):
        with pytest.raises(ValueError, match="Expected an integer"):
            tfmot.sparsity.keras.ConstantSparsity(0.5, bad)


def test_a_wrapped_first_layer_keeps_its_input_shape(guide):
    """pruning_with_sparsity_2_by_4 and the QAT comprehensive guide wrap the
    first layer of a Sequential, made with `input_shape=`."""
    data = guide.data
    pruned = keras.Sequential([
        tfmot.sparsity.keras.prune_low_magnitude(
            L.Dense(32, activation="relu", input_shape=(8, 8)),
            sparsity_m_by_n=(2, 4)),
        L.Flatten(), L.Dense(10)])
    assert pruned.built
    # The default schedule prunes every 100 steps: batches of 8 make 180.
    compile_guide(pruned).fit(
        data.x_train, data.y_train, batch_size=8, epochs=1, verbose=0,
        callbacks=tfmot.sparsity.keras.UpdatePruningStep())
    kernel = keras.ops.convert_to_numpy(
        tfmot.sparsity.keras.strip_pruning(pruned).layers[0].kernel)
    assert (kernel.reshape(-1, 4, 32) == 0).sum(axis=1).min() >= 2

    annotated = keras.Sequential([
        tfmot.quantization.keras.quantize_annotate_layer(
            L.Dense(20, input_shape=(20,))), L.Flatten()])
    qat = tfmot.quantization.keras.quantize_apply(annotated)
    assert qat.output.shape == (None, 20)


def test_sparsity_preserving_clustering_from_tfmot_experimental_path(guide):
    """pcqat_example and sparse_clustering_example import cluster_weights
    from TFMOT's experimental module and cluster with k-means++ and
    preserve_sparsity=True."""
    from kcompress.compat.tfmot.clustering.keras.experimental import cluster

    pruned = tfmot.sparsity.keras.strip_pruning(
        tfmot.sparsity.keras.prune_low_magnitude(
            guide.copy(), tfmot.sparsity.keras.ConstantSparsity(0.5, 0)))
    compile_guide(pruned)
    # Sparsity from a pruning fit is not the point here: zero half by hand.
    kernel = pruned.get_layer("logits").kernel
    values = keras.ops.convert_to_numpy(kernel)
    values[np.abs(values) < np.median(np.abs(values))] = 0.0
    kernel.assign(values)
    init = tfmot.clustering.keras.CentroidInitialization
    clustered = cluster.cluster_weights(
        pruned, number_of_clusters=8,
        cluster_centroids_init=init.KMEANS_PLUS_PLUS, preserve_sparsity=True)
    assert (tfmot.clustering.keras.experimental.cluster_weights
            is cluster.cluster_weights)
    compile_guide(clustered).fit(guide.data.x_train, guide.data.y_train,
                                 epochs=1, verbose=0)
    stripped = tfmot.clustering.keras.strip_clustering(clustered)
    kept = keras.ops.convert_to_numpy(stripped.get_layer("logits").kernel)
    assert np.all(kept[values == 0] == 0)
    assert len(np.unique(kept)) <= 8


def _xnnpack_model(keepdims_stem=True):
    stem = ([L.ZeroPadding2D(1), L.Conv2D(8, 3, strides=2)] if keepdims_stem
            else [L.Conv2D(8, 3, strides=2, padding="same")])
    return keras.Sequential([
        keras.Input((16, 16, 3)), *stem, L.BatchNormalization(), L.ReLU(),
        L.DepthwiseConv2D(3, padding="same"), L.ReLU(),
        L.Conv2D(16, 1, name="pointwise"), L.ReLU(),
        L.GlobalAveragePooling2D(keepdims=True), L.Flatten(), L.Dense(10)])


def test_prune_for_latency_on_xnnpack_prunes_only_what_runs_sparse():
    """pruning_for_on_device_inference passes a pruning policy."""
    policy = tfmot.sparsity.keras.PruneForLatencyOnXNNPack()
    pruned = tfmot.sparsity.keras.prune_low_magnitude(
        _xnnpack_model(), pruning_policy=policy,
        pruning_schedule=tfmot.sparsity.keras.PolynomialDecay(
            0.25, 0.75, begin_step=0, end_step=4))
    wrapped = [layer.layer.name for layer in pruned.layers
               if isinstance(layer, tfmot.sparsity.keras.PruneLowMagnitude)]
    assert wrapped == ["pointwise"]
    with pytest.raises(ValueError, match="XNNPACK's NCHW path"):
        tfmot.sparsity.keras.prune_low_magnitude(
            _xnnpack_model(keepdims_stem=False), pruning_policy=policy)
    with pytest.raises(ValueError, match="Expected a model"):
        tfmot.sparsity.keras.prune_low_magnitude(L.Conv2D(4, 1),
                                                 pruning_policy=policy)


def test_stock_converter_gives_an_int8_file_from_a_qat_model(guide):
    """training_example converts with the stock TFLiteConverter and
    Optimize.DEFAULT: the file holds int8 kernels and is far smaller than
    the float one (it held the inference emulation's float ops before)."""
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the stock converter traces a TensorFlow model")
    from ai_edge_litert.interpreter import Interpreter

    # The guide's MNIST model holds 20k weights; this one 130k, so that the
    # weights, not the file's fixed overhead, set the size, as there.
    keras.utils.set_random_seed(3)
    model = compile_guide(keras.Sequential([
        keras.Input((8, 8)), L.Reshape((8, 8, 1)),
        L.Conv2D(32, 3, padding="same", activation="relu"), L.Flatten(),
        L.Dense(64, activation="relu"), L.Dense(10)]))
    model.fit(guide.data.x_train, guide.data.y_train, epochs=2, verbose=0)
    qat = compile_guide(tfmot.quantization.keras.quantize_model(model))
    qat.fit(guide.data.x_train[:256], guide.data.y_train[:256], epochs=1,
            verbose=0)
    converter = tf.lite.TFLiteConverter.from_keras_model(qat)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    quantized = converter.convert()
    floating = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    assert len(quantized) <= 0.3 * len(floating), (len(quantized),
                                                     len(floating))
    interpreter = Interpreter(model_content=quantized)
    ops = {op["op_name"] for op in operators(quantized)}
    assert {"CONV_2D", "FULLY_CONNECTED"} <= ops
    assert not ops & {"ROUND", "MAXIMUM", "MINIMUM"}, ops
    kernels = [t for t in interpreter.get_tensor_details()
               if len(t["shape"]) > 1 and t["dtype"] == np.int8]
    assert kernels
    # The QAT model itself still computes as the file does, in inference.
    x = guide.data.x_test[:32]
    interpreter.allocate_tensors()
    got = []
    for row in x:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                               row[None])
        interpreter.invoke()
        got.append(interpreter.get_tensor(
            interpreter.get_output_details()[0]["index"])[0])
    assert np.mean(np.argmax(got, -1) == np.argmax(
        qat.predict(x, verbose=0), -1)) >= 0.95


def test_compat_quantize_loses_zeros_unless_the_scheme_keeps_them(guide):
    """pqat_example: plain QAT loses the sparsity, PQAT keeps it, as in
    TFMOT (kcompress's own quantize_model keeps it by default)."""
    from kcompress.quantization import quantize_model as kcompress_quantize

    pruned = tfmot.sparsity.keras.prune_low_magnitude(
        guide.copy(),
        tfmot.sparsity.keras.ConstantSparsity(0.6, 0, frequency=1))
    compile_guide(pruned).fit(guide.data.x_train, guide.data.y_train,
                              epochs=1, verbose=0,
                              callbacks=tfmot.sparsity.keras.UpdatePruningStep())
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)

    def zeros_after_qat(qat):
        compile_guide(qat).fit(guide.data.x_train, guide.data.y_train,
                               epochs=1, verbose=0)
        layer = [la for la in qat.layers if "logits" in la.name][0]
        return float(np.mean(keras.ops.convert_to_numpy(
            layer.layer.kernel) == 0))

    combine = tfmot.experimental.combine
    annotate = tfmot.quantization.keras.quantize_annotate_model
    assert zeros_after_qat(
        tfmot.quantization.keras.quantize_model(stripped)) < 0.1
    assert zeros_after_qat(tfmot.quantization.keras.quantize_apply(
        annotate(stripped),
        combine.Default8BitPrunePreserveQuantizeScheme())) >= 0.59
    assert zeros_after_qat(kcompress_quantize(stripped)) >= 0.59


def test_custom_quantize_configs_with_tfmot_quantizers(guide):
    """training_comprehensive_guide's custom-QuantizeConfig cells: a
    config that hands out `tfmot.quantization.keras.quantizers`, a custom
    layer, 4-bit weights, and a Quantizer subclass of the user's own."""
    quantizers = tfmot.quantization.keras.quantizers

    class DenseConfig(tfmot.quantization.keras.QuantizeConfig):
        def get_weights_and_quantizers(self, layer):
            return [(layer.kernel, quantizers.LastValueQuantizer(
                num_bits=4, symmetric=True, narrow_range=False,
                per_axis=False))]

        def get_activations_and_quantizers(self, layer):
            return [(layer.activation, quantizers.MovingAverageQuantizer(
                num_bits=8, symmetric=False, narrow_range=False,
                per_axis=False))]

        def set_quantize_weights(self, layer, quantize_weights):
            layer.kernel = quantize_weights[0]

        def set_quantize_activations(self, layer, quantize_activations):
            layer.activation = quantize_activations[0]

        def get_output_quantizers(self, layer):
            return []

        def get_config(self):
            return {}

    class Clip(quantizers.Quantizer):
        def build(self, tensor_shape, name, layer):
            return {}

        def __call__(self, inputs, training, weights, **kwargs):
            return keras.ops.clip(inputs, -0.05, 0.05)

        def get_config(self):
            return {}

    class ClippedConfig(DenseConfig):
        def get_weights_and_quantizers(self, layer):
            return [(layer.kernel, Clip())]

    class CustomLayer(L.Dense):
        pass

    annotate = tfmot.quantization.keras.quantize_annotate_layer
    data = guide.data
    for config, check in ((DenseConfig(), 15), (ClippedConfig(), None)):
        model = tfmot.quantization.keras.quantize_annotate_model(
            keras.Sequential([
                annotate(CustomLayer(20, input_shape=(8, 8)), config),
                L.Flatten(), L.Dense(10)]))
        with tfmot.quantization.keras.quantize_scope(
                {"DenseConfig": DenseConfig, "ClippedConfig": ClippedConfig,
                 "CustomLayer": CustomLayer}):
            qat = tfmot.quantization.keras.quantize_apply(model)
        wrapper, = [la for la in qat.layers
                    if type(la).__name__ == "QuantizeWrapperV2"]
        assert isinstance(wrapper.layer, CustomLayer)
        compile_guide(qat).fit(data.x_train, data.y_train, epochs=1,
                               verbose=0)
        kernel = keras.ops.convert_to_numpy(
            wrapper._weight_quantizers[0][1](wrapper.layer.kernel, False,
                                             wrapper._weight_quantizers[0][2]))
        if check:  # 4 bits, symmetric: at most 15 levels
            assert len(np.unique(np.round(kernel, 6))) <= check
        else:  # the user's quantizer ran
            assert np.abs(kernel).max() <= 0.05 + 1e-7
