"""compress_to(): the file meets the budget, measured; bad input refused.

The searches here are short (one fine-tune epoch, one QAT epoch): the
figures of full runs are in benchmarks/budget.py.
"""

import numpy as np
import pytest

from kcompress import budget
from tflite_export.budget_export import LiteRTExporter
from tflite_export.errors import TargetError


def _search(model, budget_data, **kwargs):
    train, val = budget_data
    kwargs.setdefault("epochs", 1)
    kwargs.setdefault("qat_epochs", 1)
    return budget.compress_to(model, train, validation_data=val, verbose=0,
                              **kwargs)


def test_the_file_fits_a_size_budget(trained_cnn, budget_data):
    before = [w.copy() for w in trained_cnn.get_weights()]
    float_bytes = len(LiteRTExporter().convert(trained_cnn, "float32"))
    limit = int(0.2 * float_bytes)
    result = _search(trained_cnn, budget_data, size_bytes=limit)
    assert len(result.tflite) == result.measured["size_bytes"] <= limit
    assert result.measured["float_size_bytes"] == float_bytes
    assert result.measured["dense_int8_size_bytes"] > limit  # had to cut
    assert result.plan.channels, "no channels removed"
    # Both families fit; the one whose probe scored best was chosen.
    probe = result.measured["probe_metric"]
    assert set(probe) == {"sensitivity", "uniform"}
    losses = result.measured["probe_loss"]
    assert result.measured["plan_family"] == max(
        probe, key=lambda name: (probe[name], -losses[name]))
    if result.measured["plan_family"] == "uniform":
        assert len(set(result.plan.channels.values())) == 1
    # The file answers as the Keras model does, and stays useful.
    assert result.measured["metric_tflite"] == pytest.approx(
        result.measured["metric_keras"], abs=0.02)
    assert result.measured["metric_tflite"] > 0.7
    _, (x_val, _) = budget_data
    lite = LiteRTExporter().predict(result.tflite, x_val[:20])
    assert lite.shape == (20, 10)
    assert all(np.array_equal(a, b) for a, b in zip(
        before, trained_cnn.get_weights())), "the user's model changed"


def test_mixed_precision_runs_the_planned_layers_in_int16(
        trained_cnn, budget_data):
    exporter = LiteRTExporter()
    _, (x_val, y_val) = budget_data
    tflite = exporter.convert(trained_cnn, "int8", x_val[:100],
                              ("conv1", "hidden", "logits"))
    precisions = exporter.layer_precisions(
        tflite, ["conv1", "conv2", "conv3", "hidden", "logits"])
    # The last layer too, whose output tensor is named after the signature.
    assert precisions == {"conv1": "int16x8", "conv2": "int8",
                          "conv3": "int8", "hidden": "int16x8",
                          "logits": "int16x8"}
    lite = exporter.predict(tflite, x_val)
    keras_out = trained_cnn.predict(x_val, verbose=0)
    assert np.mean(lite.argmax(-1) == keras_out.argmax(-1)) > 0.97
    # verify() says the same, and its report row names the wide layers.
    import tflite_export as te
    from tflite_export import reports

    checked = te.verify(tflite, trained_cnn, x_val[:50], y_val[:50])
    assert checked.layer_precision == precisions
    assert reports.precision_text(checked.layer_precision) == (
        "int16x8 except conv2 int8, conv3 int8")
    plain = exporter.convert(trained_cnn, "int8", x_val[:100])
    assert set(te.verify(plain, trained_cnn, x_val[:50]).layer_precision
               .values()) == {"int8"}


def test_mixed_precision_search_with_distillation(trained_cnn, budget_data):
    float_bytes = len(LiteRTExporter().convert(trained_cnn, "float32"))
    # Every layer whose int8 activations cost anything goes to int16x8.
    result = _search(trained_cnn, budget_data, size_bytes=float_bytes // 2,
                     mixed_precision=True, int16_threshold=-1.0,
                     distill=True)
    assert result.plan.mixed
    assert len(result.tflite) <= float_bytes // 2
    read = LiteRTExporter().layer_precisions(result.tflite,
                                             list(result.plan.precision))
    assert read == result.plan.precision
    assert result.measured["metric_tflite"] > 0.7


def test_one_family_of_plans(trained_cnn, budget_data):
    float_bytes = len(LiteRTExporter().convert(trained_cnn, "float32"))
    result = _search(trained_cnn, budget_data, size_bytes=float_bytes // 5,
                     plans=("uniform",), qat_epochs=0)
    assert len(result.tflite) <= float_bytes // 5
    assert result.measured["plan_family"] == "uniform"
    assert "probe_metric" not in result.measured  # nothing to compete with
    assert len(set(result.plan.channels.values())) == 1


def test_an_unreachable_budget_says_the_closest(trained_cnn, budget_data):
    with pytest.raises(budget.BudgetError, match="cannot be met") as info:
        _search(trained_cnn, budget_data, size_bytes=2_000)
    assert info.value.closest["size_bytes"] > 2_000


@pytest.mark.parametrize("kwargs, message", [
    (dict(), "Expected at least one budget"),
    (dict(size_bytes=0.3), "not kilobytes or a fraction"),
    (dict(size_bytes="300KB"), "e.g. 300_000"),
    (dict(size_bytes=-5), "positive number of bytes"),
    (dict(latency_ms=-1.0), "positive number of milliseconds"),
    (dict(size_bytes=50_000, max_metric_drop=5), "max_metric_drop=5"),
    (dict(size_bytes=50_000, exporter="onnx"), "exporter='onnx'"),
    (dict(size_bytes=50_000, metric="bleu"), "metric='bleu'"),
    (dict(size_bytes=50_000, plans=("random",)), "plans=\\('random',\\)"),
    (dict(size_bytes=50_000, plans="uniform"), "non-empty tuple"),
])
def test_bad_budgets_are_refused(trained_cnn, budget_data, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _search(trained_cnn, budget_data, **kwargs)


def test_a_target_that_is_not_configured(trained_cnn, budget_data):
    with pytest.raises(TargetError, match="target='pi3'"):
        _search(trained_cnn, budget_data, latency_ms=5.0, target="pi3")
    with pytest.raises(TargetError, match="ssh://user@host"):
        _search(trained_cnn, budget_data, latency_ms=5.0, target="ssh://")


def test_a_metric_the_data_cannot_compute(trained_cnn, budget_data):
    (x, _), _ = budget_data
    with pytest.raises(ValueError, match="metric='accuracy' with labels"):
        budget.compress_to(trained_cnn, (x, None), size_bytes=50_000,
                           verbose=0)


def test_the_report_shows_the_plan(trained_cnn, budget_data, tmp_path):
    from kcompress.budget import BudgetResult
    from kcompress.budget import CompressionPlan
    from tflite_export import reports
    from tflite_export.budget_export import save_budget_result

    _, (x_val, _) = budget_data
    exporter = LiteRTExporter()
    plan = CompressionPlan(channels={"conv2": 0.25},
                           precision={"hidden": "int16x8"})
    tflite = exporter.convert(trained_cnn, "int8", x_val[:50], ("hidden",))
    result = BudgetResult(trained_cnn, tflite, plan, {
        "size_bytes": len(tflite), "metric_keras": 0.9,
        "metric_tflite": 0.89, "baseline_metric": 0.91})
    path = str(tmp_path / "planned.tflite")
    report = save_budget_result(result, path)
    assert report["layer_precision"] == {"hidden": "int16x8"}
    markdown = open(reports.report_paths(path)[1]).read()
    assert "plan: channels of conv2 | -25%" in markdown
    assert "hidden int16x8" in markdown
    summary = reports.table([(path, tflite)])
    assert "channels cut in 1 groups; int16x8: hidden" in summary
