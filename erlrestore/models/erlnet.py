"""ERL-Net: MEMD plus a residual encoder REN whose outputs entangle MEN's embeddings.

Wang, Sun and Sowmya, ICCV 2019, Sec. 3.1-3.2, Eq. (2): the decoder receives
``MEN(x) + REN(x)`` instead of ``MEN(x)``. REN has MEN's structure (Sec. 3.2:
"exactly the same structure with the main branch") and the sums keep MEN's
dimensions, so REN can be stitched onto a trained MEMD
(:func:`erlnet_from_memd`).

- **CLGD** (connection-layer guided): only the bottleneck embedding is
  entangled.
- **MLGD** (multiple-layer guided): the bottleneck and every skip embedding.

Non-entangled levels pass MEN's embedding unchanged. REN gets embedding heads
only at the entangled levels (for CLGD it therefore lacks MEN's skip heads,
which would be unused weights); its trunk is MEN's.

Feature loss support: :func:`erlnet_feature_model` exposes the entangled sums
``MEN(x_r)_l + REN(x_r)_l`` and :func:`encoder_feature_model` the clean-to-clean
network's ``Phi(x_c)_l`` at the same levels, so the training code computes
``L_fre = sum_l mean|MEN(x_r)_l + REN(x_r)_l - Phi(x_c)_l|``. Both are
computed on the padded input, so they align.
"""

import dataclasses

import keras

from erlrestore.layers import IMAGE_DTYPE, PadToMultiple
from erlrestore.models.memd import MEMDConfig, _wrap, build_decoder, build_encoder, build_memd, config_from_model

ENTANGLEMENTS = ("CLGD", "MLGD")


def entangled_levels(config, entanglement):
    """Indices into the encoder's feature list that ``entanglement`` entangles.

    CLGD: ``[depth]`` (the bottleneck); MLGD: ``[0, ..., depth]``. Without skip
    connections (MEMD--) the feature list is ``[bottleneck]``, so CLGD gives
    ``[0]`` and MLGD is an error.
    """
    if entanglement not in ENTANGLEMENTS:
        raise ValueError(f"unknown entanglement {entanglement!r}; choose one of {ENTANGLEMENTS}")
    count = len(config.feature_levels())
    if entanglement == "CLGD":
        return [count - 1]
    if not config.skips:
        raise ValueError("MLGD entangles the skip embeddings, but this config has skips=False (MEMD--); use CLGD")
    return list(range(count))


def build_erlnet(config=None, entanglement="MLGD", name="erlnet", ren_head_initializer="glorot_uniform"):
    """Builds an ERL-Net: image of any size -> restored image of the same size.

    Contains the sub-models ``"men"``, ``"ren"`` and ``"mde"`` (reach them with
    ``model.get_layer``) and one ``keras.layers.Add`` named ``"entangle_<i>"``
    per entangled feature index ``i``.

    Args:
        config: a :class:`~erlrestore.models.memd.MEMDConfig` (default
            ``MEMDConfig()``).
        entanglement: ``"MLGD"`` or ``"CLGD"``.
        name: model name.
        ren_head_initializer: initializer of REN's embedding-head kernels;
            ``"zeros"`` makes REN start as a no-op (see :func:`erlnet_from_memd`).
    """
    config = config or MEMDConfig()
    levels = entangled_levels(config, entanglement)
    feature_levels = config.feature_levels()
    image = keras.Input(shape=(None, None, 3), name="image")
    padded = PadToMultiple(config.multiple, name="pad", dtype=IMAGE_DTYPE)(image)
    men = build_encoder(config, name="men")
    ren = build_encoder(
        config, name="ren", head_levels=[feature_levels[i] for i in levels], head_initializer=ren_head_initializer
    )
    main_features = list(men(padded))
    residuals = list(ren(padded))
    features = list(main_features)
    for residual, index in zip(residuals, levels):
        features[index] = keras.layers.Add(name=f"entangle_{index}")([main_features[index], residual])
    mde = build_decoder(config, name="mde")
    return _wrap(config, image, mde(features), padded, name)


def erlnet_from_memd(memd_model, entanglement="MLGD", config=None, name="erlnet"):
    """Stitches a fresh REN onto a trained MEMD (module assembly, Sec. 3.3).

    MEN and MDE weights are copied from ``memd_model``; REN's trunk is freshly
    initialised and its embedding heads are zero (kernels and biases), so REN
    adds nothing at first and the new network reproduces ``memd_model``
    exactly; the heads receive gradients immediately and REN's trunk from
    the first update of the heads on.

    ``config`` defaults to :func:`~erlrestore.models.memd.config_from_model`.
    """
    if any(layer.name == "ren" for layer in memd_model.layers):
        raise ValueError(f"model {memd_model.name!r} already has a residual encoder 'ren'; pass a MEMD")
    config = config or config_from_model(memd_model)
    model = build_erlnet(config, entanglement, name=name, ren_head_initializer="zeros")
    for sub in ("men", "mde"):
        source, target = memd_model.get_layer(sub), model.get_layer(sub)
        source_shapes = [tuple(w.shape) for w in source.weights]
        target_shapes = [tuple(w.shape) for w in target.weights]
        if source_shapes != target_shapes:
            raise ValueError(
                f"cannot copy {sub!r} from {memd_model.name!r}: its weight shapes do not match {config}; "
                "pass the MEMD's config explicitly"
            )
        target.set_weights(source.get_weights())
    return model


def build_clean_to_clean(config=None, name="c2c"):
    """Builds the clean-to-clean network whose encoder gives ``Phi(x_clean)``.

    A MEMD of the same config but without the global residual (with it, the
    net would learn the identity through the residual and its encoder features
    would carry nothing). Train it on clean -> clean; its ``"men"`` sub-model
    then provides the feature-loss targets (:func:`encoder_feature_model`).
    """
    config = dataclasses.replace(config or MEMDConfig(), global_residual=False)
    return build_memd(config, name=name)


def _entangle_index(layer):
    return int(layer.name.rsplit("_", 1)[1])


def erlnet_feature_model(model):
    """A model sharing ``model``'s weights: ``x -> {"restored": y, "features": [...]}``.

    ``features`` are the entangled sums ``MEN(x)_l + REN(x)_l`` at
    ``entangled_levels`` (in that order, on the padded input), taken from the
    same forward pass as ``restored``.
    """
    adds = sorted((layer for layer in model.layers if layer.name.startswith("entangle_")), key=_entangle_index)
    if not adds:
        raise ValueError(f"model {model.name!r} has no 'entangle_<i>' layers; pass an ERL-Net")
    outputs = {"restored": model.outputs[0], "features": [layer.output for layer in adds]}
    return keras.Model(model.inputs, outputs, name=f"{model.name}_features")


def encoder_feature_model(model, levels):
    """A model sharing ``model``'s ``pad`` and ``men``: ``x -> {"features": [MEN(x)_l for l in levels]}``.

    For the clean-to-clean network this gives the feature-loss targets
    ``Phi(x_c)`` (``levels = entangled_levels(config, entanglement)``).
    """
    men = model.get_layer("men")
    count = len(men.outputs)
    if not levels or any(not 0 <= i < count for i in levels):
        raise ValueError(f"levels must index the {count} encoder features of {model.name!r}, got {levels}")
    image = keras.Input(shape=(None, None, 3), name="image")
    features = men(model.get_layer("pad")(image))
    if not isinstance(features, (list, tuple)):
        features = [features]
    return keras.Model(image, {"features": [features[i] for i in levels]}, name=f"{model.name}_features")
