"""Trained QAT models (briefly: the figures under test are agreements
between runtimes, not accuracy) and their micro exports, made once.
`digits` is the suite's (tests/conftest.py)."""

import keras
import pytest

import kcompress as kc
from kcompress_demo import micro as micro_demo
from kcompress_demo import reference

pytest.importorskip("tflite_micro", reason="pip install 'kcompress[micro]'")


def _qat(name, data, epochs):
    model = reference.fit(micro_demo.build(name), data, epochs)
    return reference.fit(kc.quantize_model(model), data, 1)


@pytest.fixture(scope="session")
def qat_models(digits):
    """{name: QAT model} for the digits CNN and the MobileNetV2-style one."""
    return {"digits_cnn": _qat("digits_cnn", digits, 2),
            "mobilenet_v2_style": _qat("mobilenet_v2_style", digits, 2)}


@pytest.fixture(scope="session")
def clustered_qat(digits):
    """The digits CNN, 16 clusters per kernel, cluster-preserving QAT."""
    keras.utils.set_random_seed(0)
    model = reference.fit(micro_demo.build("digits_cnn"), digits, 2)
    return micro_demo.clustered_qat(model, digits, clusters=16, epochs=1)


@pytest.fixture(scope="session")
def exports(digits, qat_models, clustered_qat, tmp_path_factory):
    """{name: MicroExport} with files written, for the three models."""
    from tflite_export.micro import micro_export

    made = {}
    for name, model in [*qat_models.items(),
                        ("clustered", clustered_qat)]:
        out = tmp_path_factory.mktemp(name)
        made[name] = (micro_export(
            model, digits.x_train[:64], out, board="arduino-nano-33-ble-sense",
            compress=name == "clustered", verify_data=digits.x_test,
            labels=digits.y_test), out)
    return made
