"""What a technique left uncompressed, said out loud.

A compressor that leaves part of a model as it was must say so: each
entry point that rewrites a model (`prune_low_magnitude`,
`quantize_model`, `cluster_weights`) collects the layers it left out with
the reason, and `report_left_out` names them in one warning through the
entry point's logger, with the share of the model's parameters they hold,
or raises with `strict=True`.
"""

import keras

from kcompress import _model_utils

__all__ = ["holds_kernel", "report_left_out"]


def holds_kernel(layer):
    """Whether `layer` holds a weight of two or more dimensions (a kernel,
    an embedding table): something a technique would compress."""
    return any(len(w.shape) >= 2 for w in layer.weights)


def _parameters(layer):
    return sum(int(keras.ops.size(w)) for w in layer.weights)


def left_out_message(verb, model, left):
    """The message naming the layers of `model` in `left` (`{name:
    reason}`) and the share of parameters they hold."""
    by_name = {layer.name: layer for layer in
               _model_utils.iter_layers(model)}
    held = sum(_parameters(by_name[name]) for name in left if name in by_name)
    total = sum(_parameters(layer) for layer in model.layers) or 1
    listed = "; ".join(f"'{name}' ({reason})" for name, reason in left.items())
    return (
        f"{verb} left {len(left)} layer(s) of model '{model.name}' "
        f"uncompressed, holding {held:,} of its {total:,} parameters "
        f"({held / total:.1%}): {listed}. Pass strict=True to make this an "
        "error.")


def report_left_out(logger, verb, model, left, strict):
    """Warns through `logger` (or raises if `strict`) when `left` names
    layers `verb` left uncompressed in `model`."""
    if not left:
        return
    message = left_out_message(verb, model, left)
    if strict:
        raise ValueError(message.replace(
            " Pass strict=True to make this an error.",
            " (strict=True). Make these layers compressible, or pass "
            "strict=False to accept the rest."))
    logger.warning(message)
