"""What a technique left uncompressed, said out loud.

A compressor that leaves part of a model as it was must say so: each
entry point that rewrites a model (`prune_low_magnitude`,
`quantize_model`, `cluster_weights`) collects the layers it left out with
the reason, and `report_left_out` names them in one warning through the
entry point's logger, with the share of the model's parameters they hold
and of its multiply-accumulates per sample they do, or raises with
`strict=True`.
"""

from kcompress import _macs
from kcompress import _model_utils
from kcompress._owned_weights import OwnedWeight

__all__ = ["holds_kernel", "report_left_out"]


def holds_kernel(layer):
    """Whether `layer` holds a weight of two or more dimensions (a kernel,
    an embedding table): something a technique would compress. A
    composite's own token or table, held by an `OwnedWeight` once the
    composite is flattened, is not one (it was not one inside it)."""
    if isinstance(layer, OwnedWeight):
        return False
    return any(len(w.shape) >= 2 for w in layer.weights)


def left_out_message(verb, model, left, strict=False):
    """The message naming the layers of `model` in `left` (`{name:
    reason}`), with the share of parameters they hold and of MACs they
    do."""
    by_name = {layer.name: layer for layer in
               _model_utils.iter_layers(model)}
    held = sum(by_name[name].count_params() for name in left
               if name in by_name)
    total = sum(layer.count_params() for layer in model.layers) or 1
    macs = sum(_macs.layer_macs(by_name[name]) for name in left
               if name in by_name)
    total_macs = _macs.model_macs(model) or 1
    listed = "; ".join(f"'{name}' ({reason})" for name, reason in left.items())
    ending = (" (strict=True). Make these layers compressible, or pass "
              "strict=False to accept the rest." if strict else
              ". Pass strict=True to make this an error.")
    return (
        f"{verb} left {len(left)} layer(s) of model '{model.name}' "
        f"uncompressed, holding {held:,} of its {total:,} parameters "
        f"({held / total:.1%}) and doing {macs:,} of its {total_macs:,} "
        f"MACs per sample ({macs / total_macs:.1%}): {listed}{ending}")


def report_left_out(logger, verb, model, left, strict):
    """Warns through `logger` (or raises if `strict`) when `left` names
    layers `verb` left uncompressed in `model`."""
    if not left:
        return
    if strict:
        raise ValueError(left_out_message(verb, model, left, strict=True))
    logger.warning(left_out_message(verb, model, left))
