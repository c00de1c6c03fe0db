"""Checks over every public object, in the spirit of optax's shared tests."""

import inspect
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import kcompress as kc
import tflite_export
from kcompress import budget
from kcompress import clustering
from kcompress import detection
from kcompress import distillation
from kcompress import lowrank
from kcompress import pruning
from kcompress import quantization
from kcompress.quantization import tfmot_quantizers

PUBLIC = [(module, name) for module in (kc, pruning, quantization,
                                        clustering, distillation, lowrank,
                                        detection, budget, tflite_export)
          for name in module.__all__]

SCHEDULES = [
    pruning.ConstantSparsity(0.4, begin_step=2, end_step=20, frequency=3),
    pruning.PolynomialDecay(0.1, 0.7, begin_step=0, end_step=30, power=2,
                            frequency=5),
]


def _wrapper_model(**kwargs):
    return keras.Sequential([keras.Input((8,)), pruning.PruneLowMagnitude(
        keras.layers.Dense(4), **kwargs)])


@pytest.mark.parametrize("module, name", PUBLIC,
                         ids=[f"{m.__name__}.{n}" for m, n in PUBLIC])
def test_every_public_name_exists_and_is_documented(module, name):
    obj = getattr(module, name)
    if isinstance(obj, (tuple, str)):
        return  # constants such as MODES
    assert obj.__doc__ and obj.__doc__.strip()


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_registered_schedules_serialize_without_scope(schedule):
    data = keras.saving.serialize_keras_object(schedule)
    assert data["registered_name"].startswith("kcompress>")
    assert keras.saving.deserialize_keras_object(data) == schedule


@pytest.mark.parametrize("kwargs", [
    dict(pruning_schedule=SCHEDULES[0]),
    dict(pruning_schedule=SCHEDULES[1], block_size=(2, 2)),
    dict(sparsity_m_by_n=(2, 4)),
])
def test_wrapper_keras_file_round_trip(kwargs, tmp_path):
    model = _wrapper_model(**kwargs)
    model.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
    model.fit(x, np.zeros((16, 4)), epochs=2, batch_size=4, verbose=0,
              callbacks=[pruning.UpdatePruningStep()])
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects, no scope
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-6)
    wrapper = loaded.layers[0]
    # Compared as JSON, the form .keras stores them in (tuples become lists).
    assert json.dumps(wrapper.get_config(), sort_keys=True) == json.dumps(
        model.layers[0].get_config(), sort_keys=True)
    stripped = pruning.strip_pruning(loaded)
    np.testing.assert_allclose(stripped.predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("obj", [
    quantization.QuantizeConfig(weights={"kernel": -1}),
    quantization.FreezeQuantizationRanges(10),
    quantization.FreezeBatchNormStatistics(3),
    pruning.UpdatePruningStep(),
    quantization.Default8BitClusterPreserveQuantizeScheme(False),
    pruning.PruneForLatencyOnXNNPack(),
    tfmot_quantizers.LastValueQuantizer(
        4, per_axis=True, symmetric=True, narrow_range=True),
    tfmot_quantizers.MovingAverageQuantizer(
        8, per_axis=False, symmetric=False, narrow_range=False),
    tfmot_quantizers.AllValuesQuantizer(
        8, per_axis=False, symmetric=False, narrow_range=False),
])
def test_registered_objects_round_trip_config(obj):
    name = keras.saving.get_registered_name(type(obj))
    assert name.startswith("kcompress>")
    clone = type(obj).from_config(obj.get_config())
    assert clone.get_config() == obj.get_config()


@pytest.mark.parametrize("make", [
    lambda: quantization.quantize_model(keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(4)])),
    lambda: quantization.quantize_model(keras.Sequential(
        [keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 3, use_bias=False),
         keras.layers.BatchNormalization(), keras.layers.ReLU()])),
    lambda: quantization.quantize_apply(keras.Sequential(
        [keras.Input((8,)), quantization.quantize_annotate_layer(
            keras.layers.Dense(4))])),
])
def test_qat_models_keras_file_round_trip(make, tmp_path):
    model = make()
    shape = (16,) + tuple(model.inputs[0].shape[1:])
    x = np.random.default_rng(0).uniform(size=shape).astype("float32")
    quantization.calibrate(model, x)
    path = tmp_path / "q.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-6,
                               atol=1e-6)
    stripped = quantization.strip_quantization(loaded)
    assert not quantization.quantize_layers(stripped)


def test_no_mutable_defaults():
    import inspect

    for module in (pruning, quantization, clustering, distillation, lowrank,
                   detection, budget, kc, tflite_export):
        for name in module.__all__:
            obj = getattr(module, name)
            target = obj.__init__ if inspect.isclass(obj) else obj
            if not callable(target):
                continue
            try:
                signature = inspect.signature(target)
            except (TypeError, ValueError):
                continue
            for param in signature.parameters.values():
                assert not isinstance(param.default, (list, dict, set)), (
                    name, param.name)
                assert not isinstance(param.default, pruning.PruningSchedule)


def test_import_sets_no_environment_variables():
    code = ("import os, json; before = dict(os.environ); import kcompress; "
            "print(json.dumps(sorted(set(os.environ.items()) - "
            "set(before.items()))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True, env=dict(os.environ))
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("package", [kc, pruning, quantization, clustering,
                                     distillation, lowrank, detection,
                                     budget, tflite_export])
def test_no_public_function_shadows_a_module(package):
    """`pkg.name` and `from pkg.module import x` must both keep working."""
    folder = os.path.dirname(package.__file__)
    modules = {name[:-3] for name in os.listdir(folder) if name.endswith(".py")}
    modules |= {name for name in os.listdir(folder)
                if os.path.isdir(os.path.join(folder, name))}
    for name in package.__all__:
        value = getattr(package, name)
        if name in modules:
            assert inspect.ismodule(value), (
                f"{package.__name__}.{name} is a {type(value).__name__} that "
                f"hides the module {package.__name__}.{name}")


DETECTION_OBJECTS = [
    detection.AnchorBoxes((64, 64), (16, 32), ((.3, .4), (.6,)), (1., 2.)),
    detection.SSDPostProcessing(
        detection.AnchorBoxes((32, 32), (16, 32), ((.5,), (.8,))), 3,
        max_detections=5, score_threshold=.2, iou_threshold=.6),
    detection.BoxRegressionLoss(delta=0.5),
    detection.FocalClassLoss(alpha=0.3, gamma=1.5),
    budget.CompressionPlan(sparsity={"dense": 0.8}, channels={"conv": 0.25},
                           precision={"stem": "int16x8"}),
    budget.SensitivityTable(0.9, [("dense", "sparsity", 0.5, 64, 0.88,
                                   0.02)]),
]


@pytest.mark.parametrize("obj", DETECTION_OBJECTS,
                         ids=[type(o).__name__ for o in DETECTION_OBJECTS])
def test_detection_objects_round_trip_without_scope(obj):
    data = json.loads(json.dumps(keras.saving.serialize_keras_object(obj)))
    assert data["registered_name"].startswith("kcompress>")
    again = keras.saving.deserialize_keras_object(data)
    assert type(again) is type(obj)
    assert again.get_config() == obj.get_config()
    assert type(obj).from_config(obj.get_config()).get_config() == (
        obj.get_config())
