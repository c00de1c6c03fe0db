import json

import keras
import numpy as np
import pytest
from keras.ops import convert_to_numpy as to_numpy

import kcompress as kc
from kcompress import quantization as q
from kcompress.quantization import QuantizeConfig

L = keras.layers


def _functional():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="c1")(inputs)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU(6.0, name="r1")(x)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = L.BatchNormalization(name="bn2")(y)
    x = L.Add(name="add")([x, y])
    x = L.SeparableConv2D(8, 3, padding="same", activation="relu",
                          name="sep")(x)
    x = L.Concatenate(name="cat")([x, x])
    x = L.AveragePooling2D(2, name="avg")(x)
    x = L.ZeroPadding2D(name="pad")(x)
    x = L.UpSampling2D(name="up")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dropout(0.1, name="drop")(x)
    x = L.Reshape((16,), name="reshape")(x)
    outputs = L.Dense(4, name="head")(x)
    return keras.Model(inputs, outputs, name="many_layers")


def _data(n=32, shape=(8, 8, 3), seed=0):
    return np.random.default_rng(seed).uniform(size=(n,) + shape).astype(
        "float32")


def test_quantize_model_rewrites_folds_and_splits():
    model = _functional()
    qat = q.quantize_model(model)
    kinds = {layer.name: type(layer).__name__ for layer in qat.layers}
    assert kinds["quant_c1_bn1"] == "QuantizeConvBatchNorm"
    assert kinds["quant_dw_bn2"] == "QuantizeConvBatchNorm"
    assert "bn1" not in kinds and "bn2" not in kinds
    assert kinds["quant_sep_depthwise"] == "QuantizeWrapper"
    assert kinds["quant_sep_pointwise"] == "QuantizeWrapper"
    assert kinds["pad"] == "ZeroPadding2D"  # pass-through, left alone
    assert any(k == "QuantizeLayer" for k in kinds.values())
    # c1+bn1 feeds a ReLU6 that TFLite fuses: no output quantizer there.
    assert not qat.get_layer("quant_c1_bn1").output_quantized
    assert qat.get_layer("quant_dw_bn2").output_quantized
    assert not pkg_wrappers(model)


def pkg_wrappers(model):
    return q.quantize_layers(model)


def test_untrained_qat_model_keeps_float_accuracy_and_calibrates():
    model = _functional()
    x = _data()
    qat = q.quantize_model(model)
    # Ranges unset: activations pass through, outputs as the float model's
    # up to weight quantization.
    np.testing.assert_allclose(to_numpy(qat(x)), to_numpy(model(x)), atol=0.05)
    q.calibrate(qat, x)
    for layer in q.quantize_layers(qat):
        if hasattr(layer, "range_initialized"):
            assert float(layer.range_initialized) == 1.0
            assert float(layer.output_min) <= 0.0
    np.testing.assert_allclose(to_numpy(qat(x)), to_numpy(model(x)), atol=0.1)


def test_fit_updates_ranges_and_freeze_callbacks_stop_them():
    qat = q.quantize_model(_functional())
    qat.compile("adam", "mse")
    x, y = _data(), np.zeros((32, 4))
    qat.fit(x, y, batch_size=8, epochs=1, verbose=0)
    head = qat.get_layer("quant_head")
    assert float(head.range_initialized) == 1.0
    qat.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[
        q.FreezeQuantizationRanges(after_step=0),
        q.FreezeBatchNormStatistics(after_step=0)])
    frozen = (float(head.output_min), float(head.output_max))
    fold = qat.get_layer("quant_dw_bn2")
    mean = fold.batchnorm.moving_mean.numpy().copy()
    qat.fit(x * 5, y, batch_size=8, epochs=1, verbose=0)
    assert (float(head.output_min),
            float(head.output_max)) == frozen
    np.testing.assert_array_equal(fold.batchnorm.moving_mean.numpy(), mean)


def test_folded_pair_matches_conv_then_batchnorm_in_inference():
    model = _functional()
    x = _data()
    model.compile("adam", "mse")
    model.fit(x, np.zeros((32, 4)), epochs=2, verbose=0)  # moves BN stats
    stripped = q.strip_quantization(q.quantize_model(model))
    assert "bn1" not in [layer.name for layer in stripped.layers]
    np.testing.assert_allclose(to_numpy(stripped(x)), to_numpy(model(x)),
                               rtol=1e-4, atol=1e-4)


def test_pruned_model_wrapped_or_stripped_keeps_zeros_through_qat():
    model = keras.Sequential([keras.Input((16,)), L.Dense(32, name="d1"),
                              L.Dense(4, name="d2")])
    pruned = kc.prune_low_magnitude(model, kc.pruning.ConstantSparsity(
        0.75, begin_step=0, frequency=1))
    pruned.compile("adam", "mse")
    x = _data(64, (16,))
    pruned.fit(x, np.zeros((64, 4)), epochs=1, verbose=0,
               callbacks=[kc.pruning.UpdatePruningStep()])
    for source in (pruned, kc.strip_pruning(pruned)):
        qat = q.quantize_model(source)
        qat.compile("adam", "mse")
        qat.fit(x, np.ones((64, 4)), epochs=3, verbose=0)
        stripped = q.strip_quantization(qat)
        kernel = stripped.get_layer("d1").kernel.numpy()
        assert (kernel == 0).mean() == pytest.approx(0.75, abs=0.01)


def test_annotate_and_apply_leaves_unannotated_layers_float():
    class Custom(L.Layer):
        def call(self, x):
            return x * 2.0

    inputs = keras.Input((4,))
    x = q.quantize_annotate_layer(L.Dense(4, name="d"))(inputs)
    x = Custom(name="custom")(x)
    outputs = q.quantize_annotate_layer(
        L.Dense(2, name="out"),
        QuantizeConfig(weights={"kernel": None}, quantize_output=False))(x)
    qat = q.quantize_apply(keras.Model(inputs, outputs))
    kinds = {layer.name: type(layer).__name__ for layer in qat.layers}
    assert kinds["custom"] == "Custom"
    assert kinds["quant_d"] == "QuantizeWrapper"
    assert not qat.get_layer("quant_out").quantize_config.quantize_output


def test_annotate_model_then_apply_equals_quantize_model_layers():
    model = _functional()
    a = q.quantize_apply(q.quantize_annotate_model(model))
    b = q.quantize_model(model)
    assert [type(x).__name__ for x in a.layers] == [
        type(x).__name__ for x in b.layers]


def test_nested_model_is_quantized():
    inner = keras.Sequential([keras.Input((6,)), L.Dense(6, name="inner_d")],
                             name="inner")
    inputs = keras.Input((4,))
    outputs = L.Dense(3, name="head")(inner(L.Dense(6, name="d0")(inputs)))
    qat = q.quantize_model(keras.Model(inputs, outputs))
    nested = qat.get_layer("inner")
    assert [type(x).__name__ for x in nested.layers][-1] == "QuantizeWrapper"


def test_keras_file_round_trip(tmp_path):
    qat = q.quantize_model(_functional())
    x = _data()
    qat.compile("adam", "mse")
    qat.fit(x, np.zeros((32, 4)), epochs=1, verbose=0)
    path = tmp_path / "qat.keras"
    qat.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               qat.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-5)
    for a, b in zip(q.quantize_layers(loaded), q.quantize_layers(qat)):
        assert json.dumps(a.get_config(), sort_keys=True) == json.dumps(
            b.get_config(), sort_keys=True)
        if hasattr(a, "output_min"):
            assert float(a.output_min) == float(b.output_min)


def test_backup_and_restore_keeps_ranges(tmp_path):
    x, y = _data(), np.zeros((32, 4))

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("interrupted")

    keras.utils.set_random_seed(3)
    qat = q.quantize_model(_functional())
    qat.compile("adam", "mse")
    backup = str(tmp_path / "backup")
    with pytest.raises(RuntimeError):
        qat.fit(x, y, batch_size=8, epochs=4, verbose=0, callbacks=[
            keras.callbacks.BackupAndRestore(backup), Interrupt()])
    saved = float(qat.get_layer("quant_head").output_max)
    keras.utils.set_random_seed(3)
    resumed = q.quantize_model(_functional())
    resumed.compile("adam", "mse")
    seen = {}

    class Check(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            head = self.model.get_layer("quant_head")
            seen.setdefault(epoch, (float(head.output_max),
                                    float(head.range_initialized)))

    resumed.fit(x, y, batch_size=8, epochs=4, verbose=0, callbacks=[
        keras.callbacks.BackupAndRestore(backup), Check()])
    assert min(seen) == 2  # resumed after the two finished epochs
    assert seen[2] == (saved, 1.0)


def test_config_round_trips():
    config = QuantizeConfig(weights={"kernel": -1, "k2": "depthwise"},
                            quantize_output=False, num_bits=7)
    assert QuantizeConfig.from_config(config.get_config()) == config
    for callback in (q.FreezeQuantizationRanges(5),
                     q.FreezeBatchNormStatistics(7)):
        assert type(callback).from_config(
            callback.get_config()).get_config() == callback.get_config()


def test_already_quantized_model_is_refused():
    qat = q.quantize_model(_functional())
    with pytest.raises(ValueError, match="already quantized"):
        q.quantize_model(qat)


def test_layer_without_int8_kernel_is_left_float_with_a_warning():
    inputs = keras.Input((5, 3))
    x = L.LSTM(4, name="lstm")(inputs)
    outputs = L.Dense(2, name="head")(x)
    with pytest.warns(UserWarning, match="left these layers in float.*lstm"):
        qat = q.quantize_model(keras.Model(inputs, outputs))
    kinds = {layer.name: type(layer).__name__ for layer in qat.layers}
    assert kinds["lstm"] == "LSTM"  # Not wrapped.
    assert kinds["quantize_lstm"] == "QuantizeLayer"  # Its output is.
    assert kinds["quant_head"] == "QuantizeWrapper"


def test_annotated_layer_without_default_is_named_with_the_way_out():
    inputs = keras.Input((5, 3))
    outputs = q.quantize_annotate_layer(L.LSTM(4, name="lstm"))(inputs)
    with pytest.raises(ValueError, match="'lstm' of type LSTM has no default"
                       ".*QuantizeConfig.*leave it in float"):
        q.quantize_apply(keras.Model(inputs, outputs))


def test_unbuilt_model_is_refused():
    model = keras.Sequential([L.Dense(2)], name="unbuilt")
    with pytest.raises(ValueError, match="'unbuilt' is not built and has no "
                       "input shape"):
        q.quantize_model(model)


@pytest.mark.parametrize("bad, message", [
    ("model.keras", "str. Expected a Sequential or functional keras.Model; "
                    "quantize_model rewrites whole models"),
    (L.Dense(2), "Expected a Sequential or functional keras.Model"),
])
def test_non_model_is_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        q.quantize_model(bad)


def test_bad_calibration_data_and_callback_arguments():
    qat = q.quantize_model(_functional())
    with pytest.raises(ValueError, match="non-finite"):
        q.calibrate(qat, np.full((4, 8, 8, 3), np.nan, "float32"))
    with pytest.raises(ValueError, match="after_step=-1"):
        q.FreezeQuantizationRanges(-1)
    with pytest.raises(ValueError, match="num_bits=9"):
        QuantizeConfig(num_bits=9)
