"""Several inputs: each array feeds the file's input of its name, never
the one at its position, through `verify`, `run_tflite`, the micro path,
`bench` and the command."""

import keras
import numpy as np
import pytest

import tflite_export as te
from tflite_export import conversion
from tflite_export import file_bytes
from tflite_export import targets
from tflite_export.errors import DataError
from tflite_export.input_matching import feed_order
from tflite_export.input_matching import file_inputs
from tflite_export.input_matching import input_names
from tflite_export.inspection import interpreter_for

from .helpers import assert_bad_input
from .helpers import cli


def _model(names, shapes=None, name="several"):
    """Inputs of one shape (unless `shapes`) that the model tells apart:
    each is scaled by its own factor before a Dense layer."""
    keras.utils.set_random_seed(0)
    shapes = shapes or [(8,)] * len(names)
    inputs = [keras.Input(shape, name=n) for n, shape in zip(names, shapes)]
    scaled = [keras.layers.Rescaling(2.0 ** i)(t)
              for i, t in enumerate(inputs)]
    joined = keras.layers.Concatenate()(scaled)
    return keras.Model(inputs, keras.layers.Dense(4)(joined), name=name)


def _x(model, n=64, seed=0):
    """One array per input, each on its own scale (as real inputs are)."""
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(n,) + tuple(t.shape[1:])) * (1 + 3 * i))
            .astype("float32") for i, t in enumerate(model.inputs)]


def _file_order(tflite):
    interpreter = interpreter_for(tflite)
    names = {index: name for name, index in file_inputs(interpreter).items()}
    return [names[d["index"]] for d in interpreter.get_input_details()]


@pytest.fixture(scope="module")
def zeta_alpha():
    model = _model(["zeta", "alpha"], name="zeta_alpha")
    return model, te.convert(model, "float32")


@pytest.fixture(scope="module")
def alpha_zeta():
    """The converter puts `zeta` first: the file's order is not Keras's."""
    model = _model(["alpha", "zeta"], name="alpha_zeta")
    tflite = te.convert(model, "float32")
    assert _file_order(tflite) == ["zeta", "alpha"]
    return model, tflite


def test_the_file_names_its_inputs_after_the_keras_inputs(zeta_alpha):
    model, tflite = zeta_alpha
    assert input_names(model) == ["zeta", "alpha"]
    assert set(file_inputs(interpreter_for(tflite))) == {"zeta", "alpha"}
    named = te.convert(model, "float32", keep_names=True)
    tensors = {d["name"] for d in interpreter_for(named).get_input_details()}
    assert tensors == {"serving_default_zeta:0", "serving_default_alpha:0"}
    sequential = keras.Sequential([keras.Input((3,), name="pixels"),
                                   keras.layers.Dense(2)])
    assert input_names(sequential) == ["pixels"]


@pytest.mark.parametrize("fixture", ["zeta_alpha", "alpha_zeta"])
def test_verify_feeds_each_input_by_name(fixture, request):
    # Fed by position, zeta_alpha agreed on 0% of samples (max difference
    # 12.9): `convert` named the inputs input_0 and input_1, which the
    # converter put the other way round.
    model, tflite = request.getfixturevalue(fixture)
    check = te.verify(tflite, model, _x(model))
    assert check.top1_agreement == 1.0
    assert check.max_abs_diff < 1e-5


def test_run_tflite_feeds_each_input_by_name(alpha_zeta):
    model, tflite = alpha_zeta
    x = _x(model, n=130)  # two batches of 64 and a partial one
    expected = model.predict(x, verbose=0)
    by_list, _ = te.run_tflite(tflite, x, names=input_names(model))
    by_dict, _ = te.run_tflite(tflite, {"zeta": x[1], "alpha": x[0]})
    np.testing.assert_allclose(by_list, expected, atol=1e-5)
    np.testing.assert_allclose(by_dict, expected, atol=1e-5)


def test_inputs_that_cannot_be_told_apart_are_refused(alpha_zeta):
    model, tflite = alpha_zeta
    x = _x(model, n=4)
    with pytest.raises(ValueError, match=r"Received: 2 inputs named nothing"
                       r".*'zeta' \(8,\), 'alpha' \(8,\).*2 of the file's "
                       "inputs take"):
        te.run_tflite(tflite, x)  # no names, one shape: no guessing
    with pytest.raises(ValueError, match=r"Received: 1 inputs.*Expected 2, "
                       "one per input of the file"):
        te.run_tflite(tflite, x[:1])
    with pytest.raises(ValueError, match=r"Received: names=\['alpha'\] for "
                       "2 inputs"):
        te.run_tflite(tflite, x, names=["alpha"])
    with pytest.raises(ValueError, match=r"named \['a', 'z'\]"):
        te.run_tflite(tflite, {"a": x[0], "z": x[1]})
    with pytest.raises(ValueError, match=r"Received: input 'zeta' of "
                       r"per-sample shape \(3,\). Expected \(8,\)"):
        te.run_tflite(tflite, {"zeta": x[0][:, :3], "alpha": x[1]})


def test_three_inputs_float_and_int8():
    names = ["c_in", "a_in", "b_in"]
    model = _model(names, name="three")
    x = _x(model, n=200, seed=1)
    tflite = te.convert(model, "float32")
    assert _file_order(tflite) != names
    check = te.verify(tflite, model, x)
    assert check.top1_agreement == 1.0 and check.max_abs_diff < 1e-5
    outputs, _ = te.run_tflite(tflite, x, names=names)
    np.testing.assert_allclose(outputs, model.predict(x, verbose=0),
                               atol=1e-5)
    # int8: each input is also quantized with its own tensor's scale.
    int8 = te.convert(model, "int8", representative_data=x)
    check = te.verify(int8, model, x)
    assert check.top1_agreement >= 0.95
    assert check.max_steps <= 3


def test_files_named_by_the_earlier_convert_follow_the_keras_order(
        monkeypatch):
    model = _model(["alpha", "zeta"], name="legacy")
    monkeypatch.setattr(conversion, "input_names",
                        lambda m: [f"input_{i}" for i in range(len(
                            m.inputs))])
    tflite = te.convert(model, "float32")
    monkeypatch.undo()
    assert _file_order(tflite) == ["input_1", "input_0"]
    x = _x(model)
    check = te.verify(tflite, model, x)
    assert check.top1_agreement == 1.0 and check.max_abs_diff < 1e-5
    np.testing.assert_allclose(te.run_tflite(tflite, x)[0],
                               model.predict(x, verbose=0), atol=1e-5)
    with pytest.raises(ValueError, match="Name the arrays after the file's "
                       "inputs"):  # a dict has no Keras order
        te.run_tflite(tflite, {"alpha": x[0], "zeta": x[1]})


def _unnamed(tflite):
    """The file without its signature or tensor names (converted
    elsewhere)."""
    model = file_bytes.read_model(file_bytes.strip_names(tflite))
    model.signatureDefs = []
    return file_bytes._write(model)


def test_unnamed_inputs_are_matched_by_unique_shape_only():
    model = _model(["zeta", "alpha"], shapes=[(8,), (5,)], name="shapes")
    tflite = _unnamed(te.convert(model, "float32"))
    assert file_inputs(interpreter_for(tflite)) == {}
    x = _x(model)
    check = te.verify(tflite, model, x)
    assert check.top1_agreement == 1.0 and check.max_abs_diff < 1e-5
    same = _model(["zeta", "alpha"], name="same")
    with pytest.raises(ValueError, match=r"tensor \d \(8,\), tensor \d "
                       r"\(8,\).*Convert the model with tflite_export"):
        te.verify(_unnamed(te.convert(same, "float32")), same, _x(same))


def test_feed_order_is_the_files_order(alpha_zeta):
    model, tflite = alpha_zeta
    x = _x(model, n=2)
    interpreter = interpreter_for(tflite)
    fed = feed_order(interpreter, x, input_names(model))
    assert [d["index"] for d, _ in fed] == [
        d["index"] for d in interpreter.get_input_details()]
    assert np.array_equal(fed[0][1], x[1])  # zeta, the file's first


def test_micro_path_feeds_each_input_by_name(tmp_path):
    pytest.importorskip("tflite_micro", reason="pip install "
                        "'kcompress[micro]'")
    from tflite_export.micro import micro_export

    model = _model(["alpha", "zeta"], name="micro_two")
    x = _x(model, n=32, seed=2)
    result = micro_export(model, x, verify_data=x)
    interpreter = interpreter_for(result.int8_tflite, delegates=False)
    names = {i: n for n, i in file_inputs(interpreter).items()}
    assert [names[d["index"]] for d in interpreter.get_input_details()] == [
        "zeta", "alpha"]
    check = result.agreement
    assert check.max_steps_vs_litert_reference <= 1.0 + 1e-4  # rounding
    assert check.top1_vs_keras >= 0.95 and check.max_steps_vs_keras <= 3


def test_bench_feeds_every_input_and_data_only_to_one(alpha_zeta, tmp_path):
    _, tflite = alpha_zeta
    path = tmp_path / "two.tflite"
    path.write_bytes(tflite)
    result = targets.bench("host", str(path), runs=2, warmup=0)
    assert result["median_ms"] > 0
    with pytest.raises(DataError, match="does not fit the model input: "
                       r"Received: 1 inputs.*Expected 2"):
        targets.bench("host", str(path), runs=1,
                      x=np.zeros((2, 8), "float32"))


def test_command_refuses_one_data_array_for_two_inputs(zeta_alpha,
                                                       tmp_path):
    model, _ = zeta_alpha
    model.save(tmp_path / "two.keras")
    np.savez(tmp_path / "data.npz", x=_x(model)[0])
    done = cli("convert", str(tmp_path / "two.keras"), "--mode=float32",
               f"--verify={tmp_path / 'data.npz'}",
               f"--out={tmp_path / 'two.tflite'}")
    assert_bad_input(done, "Received: x with 1 arrays. Expected 2, one per "
                     "model input.")


def test_importing_tflite_export_loads_neither_keras_nor_tensorflow():
    # The command holds TensorFlow's start-up lines only once it runs.
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", "import sys, tflite_export; print("
         "'keras' in sys.modules, 'tensorflow' in sys.modules)"],
        capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
