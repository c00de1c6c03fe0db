"""A quick subset of benchmarks/kerashub_zoo.py, held to the acceptance
bounds: KerasHub backbones built from their classes at small configs (no
download), their composite layers compressed inside.

- MobileNetV3-style, flat and nested: composite conv blocks with
  squeeze-and-excite (3.4% of its compute ops were int8 after QAT before
  composites were flattened);
- CSPNet: a stem that pads with -inf (its int8 file did not load);
- MiT: attention that reshapes to the batch size it read while tracing;
- BERT: three inputs, MultiHeadAttention called by keywords, inside
  transformer blocks, with a padding mask.
"""

import numpy as np
import pytest

pytest.importorskip("keras_hub")

from kcompress_demo import hub_checks  # noqa: E402
from kcompress_demo import hub_zoo  # noqa: E402

CASES = [("MobileNetV3Backbone", False), ("MobileNetV3Backbone", True),
         ("CSPNetBackbone", False), ("MiTBackbone", False),
         ("BertBackbone", False)]


def _ids(case):
    return f"{case[0]}-{'nested' if case[1] else 'flat'}"


def _model(case):
    name, nested = case
    return hub_zoo.model(name, nested=nested), hub_zoo.sample_inputs(name, 16)


@pytest.mark.parametrize("case", CASES[:4], ids=_ids)
def test_ptq_file_loads_both_ways(case):
    figures = hub_checks.ptq(*_model(case))
    assert figures["loads_xnnpack"] and figures["loads_reference"], figures
    assert figures["int8_share"] == 1.0, figures


def test_ptq_of_a_masked_text_model_loads_and_answers_as_keras():
    # Keras fills the attention mask with -1e9, which calibration gave a
    # scale of about 4e6 (refused); the converter traces a finite fill
    # instead (tflite_export.finite_masks). Measured: 1 step.
    figures = hub_checks.ptq(*_model(("BertBackbone", False)))
    assert figures["loads_xnnpack"] and figures["loads_reference"], figures
    assert figures["int8_share"] == 1.0, figures
    assert figures["max_steps"] <= 2, figures


# Every case within the 2 steps. MiT's file measures 1 step here
# (the tests' seed) and 1 to 2 at seeds 0 to 4; a draw of weights now and
# then gives 3 (BUILD.md's 2 to 3): the first tensor to depart is the first
# layer norm's, where the int8 MEAN and SUB land a step away on a few
# elements and the squared deviations' MUL makes that step four (not its
# GELU). BERT's file is 0 steps from its QAT model (it was 5 to 6: its
# layer norms' variance, about 5e-4, counted as zero in the file's int8
# GREATER; and the mask's -1e9 fell to the bottom of the scores' grid).
_MAX_STEPS = 2


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_qat_file_is_int8_and_answers_as_keras(case):
    figures = hub_checks.qat(*_model(case))
    assert figures["int8_share"] >= 0.95, figures
    assert figures["max_steps"] <= _MAX_STEPS, figures


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_pruning_reaches_every_reported_kernel(case):
    figures = hub_checks.prune(*_model(case), sparsity=0.5)
    assert figures["kernels"] >= figures["wrapped"] > 0
    assert abs(figures["min_sparsity"] - 0.5) <= 0.01, figures
    assert abs(figures["max_sparsity"] - 0.5) <= 0.01, figures


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_clustering_leaves_at_most_the_clusters(case):
    figures = hub_checks.cluster(*_model(case), clusters=8)
    assert figures["wrapped"] > 0 and figures["max_distinct"] <= 8, figures


@pytest.mark.parametrize("case", CASES[:3], ids=_ids)
def test_channel_groups_shrink_with_equal_outputs(case):
    figures = hub_checks.groups(*_model(case), fraction=0.25)
    assert figures["params_kept"] < 1.0 and figures["max_difference"] <= 1e-4


def test_channel_groups_name_the_token_inputs_they_cannot_follow():
    model, x = _model(("BertBackbone", False))
    with pytest.raises(ValueError, match="no fixed channel count"):
        hub_checks.groups(model, x)
    np.testing.assert_equal(len(model.inputs), 3)
