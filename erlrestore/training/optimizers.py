"""Adam as one fused kernel per variable.

Keras 3's ``keras.optimizers.Adam`` writes its update as about ten separate
element-wise TensorFlow ops per variable (subtract, multiply, square, sqrt,
divide, three assignments, ...); each reads and writes the whole tensor, so
for the 57 M parameters of pix2pix they stream several gigabytes through
memory per step. On the 2-core CPU of docs/BENCHMARKS.md these ops took
about a fifth of the summed op time of a pix2pix training step
(``python -m tools.profile_ops --part=train``). :class:`FusedAdam` computes
the same update with TensorFlow's ``ResourceApplyAdam``, which reads the
gradient and the three state tensors once and updates them in place.

It is Keras's Adam in everything else: the same hyper-parameters and
``get_config``, the same slot variables (``momentum`` and ``velocity`` per
model variable), so checkpoints written with either restore into the other,
and the same arithmetic (``alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)``,
``m += (1 - beta_1) (g - m)``, ``v += (1 - beta_2) (g^2 - v)``,
``w -= alpha m / (sqrt(v) + epsilon)``), rounded in a different order
(tests/test_optimizers.py: equal within float32 rounding after many steps).

It falls back to Keras's update where the kernel does not apply: ``amsgrad``,
a variable whose dtype is not float32 / float64, a sparse gradient
(``tf.IndexedSlices``), or a backend other than TensorFlow.
"""

import keras
import tensorflow as tf

_FUSED_DTYPES = ("float32", "float64")


@keras.saving.register_keras_serializable(package="erlrestore")
class FusedAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` whose per-variable update is TensorFlow's fused ``ResourceApplyAdam`` kernel.

    Its default name is Keras Adam's, ``"adam"``, so that its variables'
    paths (``adam/iteration``, ``adam/<variable>_momentum``, ...) are the same.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("name", "adam")
        super().__init__(*args, **kwargs)

    def _fused(self, gradient, variable):
        return (
            keras.backend.backend() == "tensorflow"
            and not self.amsgrad
            and not isinstance(gradient, tf.IndexedSlices)
            and keras.backend.standardize_dtype(variable.dtype) in _FUSED_DTYPES
        )

    def update_step(self, gradient, variable, learning_rate):
        if not self._fused(gradient, variable):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        local_step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        momentum, velocity = self._momentums[index], self._velocities[index]
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=momentum.handle,
            v=velocity.handle,
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), local_step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), local_step),
            lr=tf.cast(learning_rate, dtype),
            beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
        )
        return None
