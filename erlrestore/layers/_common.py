"""What the layers of :mod:`erlrestore.layers` share: the registration package, dtypes and argument checks.

Private to the package; :mod:`erlrestore.layers` re-exports the public
constants (``IMAGE_DTYPE``, ``NORMS``, ``PYTORCH_NORM``).
"""

import keras

# The dtype of the layers at a network's image-space ends (padding, last
# convolution, global residual, tanh, crop, logits): float32 under any
# mixed-precision policy, so outputs and losses keep full precision.
IMAGE_DTYPE = "float32"

# The package every layer is registered under (``erlrestore>DenseBlock`` ...):
# saved models name their layers so, so it must never change.
PACKAGE = "erlrestore"

# The normalisations a layer or model can use, declared here once: the layers' ``norm`` argument, MEMD's and the
# pix2pix generators' ``norm`` and the training flags that set them (``--norm``, ``--gen_norm``) all take these.
# "instance" is GroupNormalization with one group per channel. Listed in this order by the ERL-Net family's
# checks and --help; the pix2pix family lists them backwards, from its default (batch).
NORMS = ("none", "instance", "batch")

# PyTorch's normalisation defaults (momentum 0.1 there, 0.9 in Keras' convention; epsilon 1e-5), which the
# pix2pix generators use everywhere; InfoAccum lives inside those generators and follows them.
PYTORCH_NORM = {"momentum": 0.9, "epsilon": 1e-5}


def check_positive_int(value, what, owner):
    """Raises ``ValueError("<owner>: <what> must be a positive integer, got <value>")`` unless ``value`` is one."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {what} must be a positive integer, got {value!r}")


def norm_layer(norm, name, dtype_policy, pytorch_defaults=False):
    """The normalisation sub-layer of DenseBlock (Keras' defaults) / InfoAccum (PyTorch's): instance or batch."""
    if norm == "instance":
        epsilon = {"epsilon": PYTORCH_NORM["epsilon"]} if pytorch_defaults else {}
        return keras.layers.GroupNormalization(groups=-1, dtype=dtype_policy, name=name, **epsilon)
    from erlrestore.layers.batch_normalization import BatchNormalization  # imports this module

    settings = PYTORCH_NORM if pytorch_defaults else {}
    return BatchNormalization(dtype=dtype_policy, name=name, **settings)
