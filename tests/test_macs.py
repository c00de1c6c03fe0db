"""MACs per sample (`kcompress._macs`) and the share a warning reports
for the layers a technique left out."""

import logging

import keras
import pytest

import kcompress as kc
from kcompress import _macs
from tests._composite_blocks import OwnKernel
from tests._composite_blocks import ScaledDense
from tests._composite_blocks import scaled_model


def test_kernels_count_at_their_output_positions():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 64 x 108
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)  # 16 x 36
    x = keras.layers.Dense(5)(x)  # 16 x 20, per position
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(2)(x)  # 160
    model = keras.Model(inputs, outputs)
    assert [_macs.layer_macs(layer) for layer in model.layers] == [
        0, 64 * 108, 16 * 36, 16 * 20, 0, 160]
    assert _macs.model_macs(model) == 64 * 108 + 16 * 36 + 16 * 20 + 160
    nested = keras.Sequential([keras.Input((8, 8, 3)), model])
    assert _macs.model_macs(nested) == _macs.model_macs(model)


@pytest.mark.parametrize("middle, call, share", [
    # The composite's Dense (16 x 16) inside its call; first 8 x 16, last
    # 16 x 4.
    (ScaledDense, kc.quantize_model, "256 of its 448 MACs per sample (57.1%)"),
    # A custom kernel of its own (16 x 16).
    (OwnKernel, kc.prune_low_magnitude,
     "256 of its 448 MACs per sample (57.1%)"),
])
def test_the_warning_gives_the_share_of_macs_left_out(middle, call, share,
                                                      caplog):
    with caplog.at_level(logging.WARNING, logger="kcompress"):
        call(scaled_model(middle))
    messages = [r.getMessage() for r in caplog.records
                if r.name.startswith("kcompress")]
    assert len(messages) == 1 and share in messages[0], messages
