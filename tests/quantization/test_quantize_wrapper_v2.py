"""`QuantizeWrapperV2`: a layer quantized as a TFMOT-style QuantizeConfig
says, with quantizer objects, through `fit`, `.keras` and the int8 file."""

import keras
import numpy as np
import pytest
from keras import ops

from kcompress import quantization
from kcompress.quantization import tfmot_quantizers as tq

L = keras.layers


@keras.saving.register_keras_serializable(package="kcompress_tests")
class DenseQuantizers(quantization.QuantizeConfig):
    """TFMOT's guide's config: the kernel on its last values, the
    activation on a moving average, no output quantizer."""

    def get_weights_and_quantizers(self, layer):
        return [(layer.kernel, tq.LastValueQuantizer(
            num_bits=8, symmetric=True, narrow_range=False, per_axis=False))]

    def get_activations_and_quantizers(self, layer):
        return [(layer.activation, tq.MovingAverageQuantizer(
            num_bits=8, symmetric=False, narrow_range=False, per_axis=False))]

    def set_quantize_weights(self, layer, quantize_weights):
        layer.kernel = quantize_weights[0]  # Keras 3 refuses; never called

    def set_quantize_activations(self, layer, quantize_activations):
        layer.activation = quantize_activations[0]

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}


def _qat():
    keras.utils.set_random_seed(0)
    annotated = keras.Sequential([
        quantization.quantize_annotate_layer(
            L.Dense(16, activation="relu", input_shape=(12,)),
            DenseQuantizers()),
        quantization.quantize_annotate_layer(L.Dense(3))])
    return quantization.quantize_apply(annotated)


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 12)).astype("float32")
    return x, (x[:, :3].sum(-1) > 0).astype("int32") + (x[:, 3] > 1)


def test_quantizers_train_and_the_weights_stay_float():
    qat = _qat()
    wrapper = [la for la in qat.layers
               if isinstance(la, quantization.QuantizeWrapperV2)][0]
    assert wrapper.layer.activation.__name__ == "relu"
    x, y = _data()
    kernel_before = ops.convert_to_numpy(wrapper.layer.kernel)
    qat.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    qat.fit(x, y, batch_size=32, epochs=2, verbose=0)
    ranges = {w.path.split("/")[-1]: float(ops.convert_to_numpy(w))
              for w in wrapper.non_trainable_weights}
    # The kernel's range is its last value; the activation's moved from
    # TFMOT's [-6, 6] towards the ReLU's [0, max].
    kernel = ops.convert_to_numpy(wrapper.layer.kernel)
    assert not np.array_equal(kernel, kernel_before)
    assert [v for k, v in ranges.items() if "kernel" in k and "max" in k] \
        == pytest.approx([np.abs(kernel).max()], rel=1e-3)
    activation_min = [v for k, v in ranges.items()
                      if k.startswith("activation") and "min" in k][0]
    assert -6.0 < activation_min < -5.9
    assert wrapper.layer.activation.__name__ == "relu"  # restored
    # The stored kernel is float, off the 8-bit grid; the call's is on it.
    assert len(np.unique(kernel)) == kernel.size


def test_keras_file_round_trip_and_strip(tmp_path):
    qat = _qat()
    x, _ = _data()
    qat.save(tmp_path / "v2.keras")
    loaded = keras.saving.load_model(tmp_path / "v2.keras")  # no scope
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               qat.predict(x, verbose=0), atol=1e-6)
    stripped = quantization.strip_quantization(loaded)
    assert not quantization.quantize_layers(stripped)
    assert [type(la) for la in stripped.layers
            if not isinstance(la, L.InputLayer)] == [L.Dense, L.Dense]


def test_the_int8_file_computes_what_keras_does():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("converts in process; other backends convert in a "
                    "TensorFlow child process (tflite_export.backend_bridge)")
    import tflite_export as te

    qat = _qat()
    x, y = _data()
    qat.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    qat.fit(x, y, batch_size=32, epochs=2, verbose=0)
    tflite = te.convert(qat, "qat")
    outputs, _ = te.run_tflite(tflite, [x])
    keras_outputs = qat.predict(x, verbose=0)
    # No int8-kernel emulation for these layers: within a step of the
    # output grid.
    step = (keras_outputs.max() - keras_outputs.min()) / 255
    assert np.abs(outputs - keras_outputs).max() <= 1.01 * step
    assert np.mean(np.argmax(outputs, -1) == np.argmax(keras_outputs, -1)) \
        >= 0.98
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite)
    kernels = [t for t in interpreter.get_tensor_details()
               if len(t["shape"]) == 2 and t["dtype"] == np.int8
               and tuple(t["shape"]) in ((16, 12), (3, 16))]
    assert len(kernels) == 2


def test_a_config_without_quantizers_is_refused():
    with pytest.raises(ValueError, match="get_weights_and_quantizers"):
        quantization.QuantizeWrapperV2(
            L.Dense(2), quantization.QuantizeConfig(weights={"kernel": -1}))
