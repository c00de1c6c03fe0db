"""QuantizeConfig and the default per-layer table."""

import keras
import pytest

from kcompress.quantization.quantize_config import SUPPORTED_LAYERS
from kcompress.quantization.quantize_config import QuantizeConfig
from kcompress.quantization.quantize_config import default_quantize_config
from kcompress.quantization.quantize_config import unsupported_layer_error
from kcompress.quantization.quantizers import DEPTHWISE

L = keras.layers


@pytest.mark.parametrize("layer, weights, output", [
    (L.Dense(2), {"kernel": None}, True),  # per-tensor, or conversion fails
    (L.Conv2D(2, 3), {"kernel": -1}, True),  # per output channel
    (L.DepthwiseConv2D(3), {"kernel": DEPTHWISE}, True),
    (L.Add(), {}, True),
    (L.MaxPooling2D(), {}, False),  # passes its input's range through
    (L.Flatten(), {}, False),
])
def test_defaults_follow_tflite_int8(layer, weights, output):
    config = default_quantize_config(layer)
    assert config.weights == weights
    assert config.quantize_output is output


def test_unsupported_layer_has_no_default_and_a_named_error():
    layer = L.LSTM(4, name="rnn")
    assert default_quantize_config(layer) is None
    message = str(unsupported_layer_error(layer))
    assert "'rnn' of type LSTM" in message and "Dense" in message
    assert "SeparableConv2D" in SUPPORTED_LAYERS


def test_config_round_trips_and_compares():
    config = QuantizeConfig(weights={"kernel": -1}, quantize_output=False,
                            num_bits=6)
    assert QuantizeConfig.from_config(config.get_config()) == config
    assert config.quantizes_anything
    assert not QuantizeConfig(quantize_output=False).quantizes_anything


@pytest.mark.parametrize("kwargs, message", [
    (dict(weights={"kernel": "rows"}), "Expected each axis"),
    (dict(weights={"kernel": True}), "Expected each axis"),
    (dict(num_bits=9), "num_bits=9"),
    (dict(num_bits=1), "num_bits=1"),
])
def test_bad_configs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QuantizeConfig(**kwargs)


def test_missing_weight_is_named():
    layer = L.Dense(2, name="d")
    layer.build((None, 3))
    with pytest.raises(ValueError, match="'d' .* has no weight 'gamma'"):
        QuantizeConfig(weights={"gamma": None}).get_weights_and_axes(layer)
