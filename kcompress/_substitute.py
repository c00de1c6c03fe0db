"""Calling a layer with some of its weights replaced by computed values.

Pruning masks weights and QAT fake-quantizes them, and neither may overwrite
the stored variable: gradients and optimizer state must stay with the float
weight. `keras.StatelessScope` lets a layer read other values for chosen
variables during one call, on every backend and under XLA.
"""

import keras

# Keras exports `StatelessScope` but not the accessor for the active scope;
# it is needed to nest our scope correctly inside JAX's stateless train step.
from kcompress._keras_internals import get_stateless_scope


def call_with_values(owner, layer, mapping, *args, own_state=(), **kwargs):
    """`layer(*args, **kwargs)` with each `(variable, value)` of `mapping`.

    Args:
        owner: the layer making the call; losses that `layer` adds (activity
            regularizers) are re-added to it.
        layer: the layer to call.
        mapping: list of `(variable, value)` pairs.
        own_state: variables of `owner` that the call may assign (through a
            function `owner` handed `layer`, as `QuantizeWrapperV2` hands
            it quantized activations); their new values are kept.

    Returns:
        The outputs of `layer`.
    """
    mapping = list(mapping)
    substituted = {id(v) for v, _ in mapping}
    outer = get_stateless_scope()
    if outer is not None:
        # Inside another stateless scope (JAX's train step), variables read
        # their values from that scope; carry the others over.
        replaced = {id(v) for v, _ in mapping}
        for variable in list(layer.variables) + list(own_state):
            if id(variable) in replaced:
                continue
            value = outer.get_current_value(variable)
            if value is not None:
                mapping.append((variable, value))
    with keras.StatelessScope(state_mapping=mapping,
                              collect_losses=True) as scope:
        outputs = layer(*args, **kwargs)
    # Updates the layer made to its own state (BatchNormalization's moving
    # statistics) were caught by the scope; apply them.
    for variable in list(layer.non_trainable_variables) + list(own_state):
        if id(variable) not in substituted:
            value = scope.get_current_value(variable)
            if value is not None:
                variable.assign(value)
    if scope.losses:
        owner.add_loss(scope.losses)
    return outputs
