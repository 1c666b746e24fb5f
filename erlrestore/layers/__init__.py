"""Custom Keras layers shared by the restoration models.

Every layer here is a serializable ``keras.layers.Layer`` (registered under the
``erlrestore`` package, constructor arguments returned by ``get_config``), works
channels-last on float32 tensors and accepts dynamic spatial sizes
(``(batch, None, None, channels)``).

- :class:`DenseBlock` -- DenseNet-style block, the stage of the ERL-Net MEMD.
- :class:`FeatureFusion` -- ERL-Net's feature-fusion layer FUS (Fig. 2(c)).
- :class:`PadToMultiple` / :class:`CropToMatch` -- pad an image of any size to
  a multiple of ``2**depth`` before a U-Net and crop the result back.
- :class:`InfoAccum` -- the rethinking paper's information-accumulation module
  (dense layers with dilation-1/3/5 branches, Eq. 14).
- :class:`SubPixelUpsample` -- sub-pixel convolution up-sampling (SubPixUpsamp).
- :class:`PhaseConv2DTranspose` -- a trained transposed convolution run as a
  forward convolution and ``depth_to_space`` (the inference graph's form,
  :mod:`erlrestore.inference_graph`).
- :class:`BatchNormalization` -- Keras' batch normalization (same
  weights, config and arithmetic) whose training step is TensorFlow's fused
  kernel; every batch norm of the models is one.
- :class:`Conv2D` / :class:`Conv2DTranspose` -- Keras' convolutions (same
  weights, config and arithmetic) whose training step takes a faster form at
  the ends of a U-Net (one matrix product on a tiny image, ``space_to_depth``
  on a large one); pix2pix's U-Net and PatchGAN use them.

Plain Keras layers are used wherever they suffice (e.g. ``keras.layers.Add``
for the ERL-Net feature entanglement).

Each layer lives in a module of its own (``dense_block``, ``feature_fusion``,
``pad_to_multiple``, ``crop_to_match``, ``info_accum``, ``subpixel_upsample``,
``phase_conv2d_transpose``, ``batch_normalization``, ``conv2d``,
``conv2d_transpose``; shared helpers in ``_common``); import them from
here. Their ``__module__`` is set to this package, the path they had as one
module, so that ``keras.saving.serialize_keras_object`` writes the same
``"module": "erlrestore.layers"`` as the configs already shipped and saved
(loading finds a layer by its registered name, ``erlrestore>DenseBlock``, in
either case).
"""

from erlrestore.layers._common import IMAGE_DTYPE, NORMS, PYTORCH_NORM
from erlrestore.layers.crop_to_match import CropToMatch
from erlrestore.layers.dense_block import DenseBlock
from erlrestore.layers.feature_fusion import FeatureFusion
from erlrestore.layers.batch_normalization import BatchNormalization
from erlrestore.layers.conv2d import Conv2D
from erlrestore.layers.conv2d_transpose import Conv2DTranspose
from erlrestore.layers.info_accum import InfoAccum
from erlrestore.layers.pad_to_multiple import PadToMultiple
from erlrestore.layers.phase_conv2d_transpose import PhaseConv2DTranspose, phase_form_applies, phase_kernel
from erlrestore.layers.subpixel_upsample import SubPixelUpsample

# Every custom layer, in the order of the docstring (the tests check each one with layer_testing.check_layer).
LAYERS = (DenseBlock, FeatureFusion, PadToMultiple, CropToMatch, InfoAccum, SubPixelUpsample, PhaseConv2DTranspose,
          BatchNormalization, Conv2D, Conv2DTranspose)

for _layer in LAYERS:
    _layer.__module__ = __name__
del _layer

__all__ = [
    "IMAGE_DTYPE",
    "LAYERS",
    "NORMS",
    "PYTORCH_NORM",
    "CropToMatch",
    "DenseBlock",
    "FeatureFusion",
    "BatchNormalization",
    "Conv2D",
    "Conv2DTranspose",
    "InfoAccum",
    "PadToMultiple",
    "PhaseConv2DTranspose",
    "SubPixelUpsample",
    "phase_form_applies",
    "phase_kernel",
]
