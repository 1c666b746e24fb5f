"""Synthetic degradations (rain, real-streak rain, dense rain, haze, noise) in TensorFlow, one module per kind.

One implementation serves tests, demos, the ``erlrestore-synth`` tool and
training on your own clean photos (``pipeline.synthetic_source``): every
degradation is a pure TensorFlow function ::

    degraded = add_rain(clean, seed, density=0.05, ...)

* ``clean``: float32 ``[H, W, 3]`` or ``[B, H, W, 3]`` in [0, 1] (the rank
  must be known when the function is traced; height and width may be
  dynamic, as in a ``tf.data`` pipeline of decoded files).
* ``seed``: a shape-[2] integer tensor, list or array, the seed of
  TensorFlow's *stateless* random ops. The same ``(clean, seed, params)``
  always gives the same result, and the functions keep no Python state, so
  they run eagerly, under ``tf.function`` and inside ``tf.data.Dataset.map``.
  A single image and a batch of one with the same seed give the same result.
* The result has the input's shape, is float32 and is clipped to [0, 1].

Parameters are Python numbers or ``(low, high)`` pairs. A pair is sampled
uniformly from the seed: *per image* for photometric quantities (density,
brightness, beta, airlight, sigma, peak) and *per call* for the streak
geometry (length, angle, width), so all images of one batch share a rain
direction, as one scene does. In a ``tf.data`` pipeline each element is its
own call, so every image gets its own geometry.

Where things live:

* :mod:`.common`: the shared argument handling (images, seeds, ranges, sampling);
* :mod:`.rain`: procedural streaks, ``rain`` and ``heavy_rain``;
* :mod:`.haze`: ``haze`` and the depth proxies and transmission the veils share;
* :mod:`.real_streaks`: :class:`~.real_streaks.StreakBank`, ``load_streaks``,
  ``real_rain`` and ``real_heavy_rain``;
* :mod:`.dense_rain`: ``dense_rain``, ``real_dense_rain``, ``rain_haze``,
  ``rain_cityscapes`` (rain at the image's scale, density levels, depth);
* :mod:`.noise`: ``gaussian_noise``, ``poisson_gaussian_noise``, ``camera_noise``;
* :mod:`.registry`: ``DEGRADATIONS`` (name -> function) and the parameter
  checks, parsing and defaults; each module above declares the validators of
  the parameters it owns (``PARAM_CHECKS``) and the registry collects them;
* :mod:`.procedural`: procedural clean "photos";
* :mod:`.folder`: ``synthesize_folder`` (the ``erlrestore-synth`` tool).

:mod:`erlrestore.data.synthetic` re-exports the public names of all of them.
"""
