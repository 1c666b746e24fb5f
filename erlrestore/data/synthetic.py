"""Synthetic degradations, procedural images and paired-folder synthesis: the one import for all of them.

The code lives in the package :mod:`erlrestore.data.degradations`, one module
per kind (its docstring states the contract every degradation keeps):

* ``rain``, ``heavy_rain``, the procedural streaks: :mod:`~erlrestore.data.degradations.rain`;
* ``haze`` and the depth proxies: :mod:`~erlrestore.data.degradations.haze`;
* ``real_rain``, ``real_heavy_rain``, :class:`StreakBank`, :func:`load_streaks`:
  :mod:`~erlrestore.data.degradations.real_streaks`;
* ``dense_rain``, ``real_dense_rain``, ``rain_haze``, ``rain_cityscapes``:
  :mod:`~erlrestore.data.degradations.dense_rain`;
* ``gaussian_noise``, ``poisson_gaussian_noise``, ``camera_noise``:
  :mod:`~erlrestore.data.degradations.noise`;
* ``DEGRADATIONS``, ``make_degradation``, ``check_params``, ``parse_params``,
  ``degradation_params``, ``required_params``, ``register_degradation``
  (``registry.register``):
  :mod:`~erlrestore.data.degradations.registry`;
* :func:`procedural_images`: :mod:`~erlrestore.data.degradations.procedural`;
* :func:`synthesize_folder`, :func:`derive_seed` (``erlrestore-synth``):
  :mod:`~erlrestore.data.degradations.folder`.

This module only re-exports them (and a few private helpers that tests reach
for), so ``from erlrestore.data.synthetic import add_rain`` keeps working.
To patch a function for a test, patch it in the module that defines it.
"""

# pylint: disable=unused-import
# Every name below is re-exported (noqa: F401); the private ones are those the tests reach for
# (tests/test_synthetic.py, tests/test_rain_synthesis.py).
from erlrestore.data.degradations.common import _sample, _split  # noqa: F401
from erlrestore.data.degradations.folder import MAX_COPIES, derive_seed, synthesize_folder  # noqa: F401
from erlrestore.data.degradations.haze import DEPTH_PROXIES, add_haze  # noqa: F401
from erlrestore.data.degradations.noise import add_gaussian_noise, add_poisson_gaussian_noise  # noqa: F401
from erlrestore.data.degradations.procedural import procedural_images  # noqa: F401
from erlrestore.data.degradations.rain import (  # noqa: F401
    _FFT_ZERO,
    _fft_length,
    _gaussian_1d,
    _line_kernels,
    _smear_fft,
    _smear_sparse,
    add_heavy_rain,
    add_rain,
)
from erlrestore.data.degradations.real_streaks import (  # noqa: F401
    StreakBank,
    add_real_heavy_rain,
    add_real_rain,
    load_streaks,
    real_streak_layers,
)
from erlrestore.data.degradations.registry import (  # noqa: F401
    _PARAM_CHECKS,
    DEGRADATIONS,
    check_params,
    degradation_params,
    make_degradation,
    parse_params,
    required_params,
)
from erlrestore.data.degradations.registry import register as register_degradation  # noqa: F401

__all__ = [
    "add_rain",
    "add_haze",
    "add_heavy_rain",
    "add_real_rain",
    "add_real_heavy_rain",
    "real_streak_layers",
    "load_streaks",
    "StreakBank",
    "add_gaussian_noise",
    "add_poisson_gaussian_noise",
    "DEGRADATIONS",
    "make_degradation",
    "check_params",
    "required_params",
    "register_degradation",
    "procedural_images",
    "derive_seed",
    "synthesize_folder",
]
