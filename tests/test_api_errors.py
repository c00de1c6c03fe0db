"""Bad API calls get errors that say what was received and what is
accepted (issue 17, item 7; verify and inspect are in tests/tflite_export)."""

import keras
import numpy as np
import pytest

import kcompress as kc
import tflite_export as te
from kcompress.lowrank import factorize
from kcompress.pruning import shrink

L = keras.layers


def _model():
    return keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3),
                             L.Flatten(), L.Dense(3)], name="small")


@pytest.mark.parametrize("function, name", [
    (shrink, "shrink"), (kc.quantize_model, "quantize_model"),
    (lambda m: factorize(m, energy=0.9), "factorize")])
@pytest.mark.parametrize("bad", [L.Dense(2), [L.Dense(2)]])
def test_model_only_functions_say_so(function, name, bad):
    with pytest.raises(ValueError, match=f"Expected a Sequential or "
                       f"functional keras.Model; {name} rewrites whole "
                       "models"):
        function(bad)


def test_factorize_checks_its_data():
    model = _model()
    x = np.zeros((4, 8, 8, 1), "float32")
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        factorize(model, energy=0.9, data=x)
    with pytest.raises(ValueError, match=r"Expected \(n, 8, 8, 1\)"):
        factorize(model, energy=0.9, data=np.zeros((4, 5, 5, 1)))


def test_pruning_a_qat_model_says_prune_first():
    qat = kc.quantize_model(_model())
    with pytest.raises(ValueError, match="already quantized .* Prune first"):
        kc.prune_low_magnitude(qat)


def test_convert_names_a_subclassed_model():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__(name="sub")
            self.dense = L.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Sub()
    model(np.zeros((1, 3), "float32"))  # built, yet no symbolic inputs
    with pytest.raises(te.ConversionError, match="subclassed model .* Wrap "
                       "it in a functional model"):
        te.convert(model, "float32")
