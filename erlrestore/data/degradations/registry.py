"""The degradations by name, and their parameters: checks, parsing, defaults.

``DEGRADATIONS`` maps each name (the ``--degradation`` of erlrestore-synth and
erlrestore-train) to its function. Each degradation module declares the
validators of the parameters it owns in its ``PARAM_CHECKS``; ``_PARAM_CHECKS``
here collects them (a name declared by two modules is an error), so a
parameter name means the same in every degradation that takes it.

:func:`register` adds a degradation from outside the package (with the
validators of any parameter names it is the first to use); it becomes a
``--degradation`` choice of ``erlrestore-synth`` when registered before the
tool defines its flags. ``DEGRADATIONS`` and ``_PARAM_CHECKS`` are updated in
place, so every reference to them sees it.
"""

import inspect

from erlrestore.data.degradations import dense_rain, haze, noise, rain, real_streaks
from erlrestore.data.degradations.common import collect_checks

# One validator per parameter name, from the module that declares it.
_PARAM_CHECKS = collect_checks(
    rain.PARAM_CHECKS,
    haze.PARAM_CHECKS,
    noise.PARAM_CHECKS,
    real_streaks.PARAM_CHECKS,
    dense_rain.PARAM_CHECKS,
)


def parse_params(text):
    """Degradation parameters from text: ``"name=value;name=low,high;..."`` -> dict.

    Values are numbers, ``low,high`` pairs (a range) or words (``depth=gradient``);
    the training command's ``--degradation_params`` uses this. Whether the
    names and values suit a degradation is :func:`check_params`' job.
    """
    params = {}
    for item in filter(None, (part.strip() for part in (text or "").split(";"))):
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ValueError(f"degradation parameters look like name=value;name=low,high, got {item!r}")
        parts = [_number(v.strip()) for v in value.split(",")]
        if len(parts) > 2:
            raise ValueError(f"{name}: a value or a low,high pair, got {value!r}")
        params[name] = parts[0] if len(parts) == 1 else tuple(parts)
    return params


def _number(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


DEGRADATIONS = {
    "rain": rain.add_rain,
    "heavy_rain": rain.add_heavy_rain,
    "haze": haze.add_haze,
    "gaussian_noise": noise.add_gaussian_noise,
    "poisson_gaussian_noise": noise.add_poisson_gaussian_noise,
    "real_rain": real_streaks.add_real_rain,
    "real_heavy_rain": real_streaks.add_real_heavy_rain,
    "camera_noise": noise.add_camera_noise,
    "dense_rain": dense_rain.add_dense_rain,
    "real_dense_rain": dense_rain.add_real_dense_rain,
    "rain_haze": dense_rain.add_rain_haze,
    "rain_cityscapes": dense_rain.add_rain_cityscapes,
}

# How to give a required parameter, for the error when it is missing.
_REQUIRED_HELP = {
    "streaks": "a folder of rain-streak images (erlrestore-synth / erlrestore-train: --streak_dir) or a StreakBank",
}


def register(name, function, param_checks=None):
    """Adds degradation ``name``: ``function(clean, seed, **params)`` keeping the package's contract; returns it.

    The contract (:mod:`erlrestore.data.degradations`): ``clean`` float32
    ``[H, W, 3]`` or ``[B, H, W, 3]`` in [0, 1], ``seed`` a shape-[2]
    integer tensor for stateless random ops, every parameter keyword-only
    with a default (``inspect.Parameter.empty`` for a required one), the
    result of the input's shape, float32, clipped to [0, 1], traceable by
    ``tf.function``. ``param_checks`` maps each parameter name no registered
    degradation uses yet to its validator (``value -> None``, ValueError
    for a bad value); a name already in use keeps its validator and meaning.

    Raises:
      ValueError for a name already registered or that is not a lower-case
      identifier, a parameter that is not keyword-only, a new parameter
      without a validator, or a validator for a name already declared.
      TypeError when ``function`` or a validator is not callable.
    """
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise ValueError(f"a degradation's name is a lower-case identifier, got {name!r}")
    if name in DEGRADATIONS:
        raise ValueError(f"degradation {name!r} is already registered")
    if not callable(function):
        raise TypeError(f"degradation {name!r}: expected a function, got {type(function).__name__}")
    checks = dict(param_checks or {})
    parameters = list(inspect.signature(function).parameters.values())
    positional = [p.name for p in parameters[:2] if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    others = [p.name for p in parameters[len(positional):] if p.kind is not p.KEYWORD_ONLY]
    if len(positional) != 2 or others:
        raise ValueError(f"degradation {name!r} must take (clean, seed, *, parameters...); "
                         f"{function.__name__} takes ({', '.join(p.name for p in parameters)})")
    keywords = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY]
    redeclared = sorted(set(checks) & set(_PARAM_CHECKS))
    if redeclared:
        raise ValueError(f"degradation {name!r}: parameter(s) {', '.join(redeclared)} are already declared "
                         "(a parameter name means the same in every degradation); drop their validators")
    unchecked = [key for key in keywords if key not in checks and key not in _PARAM_CHECKS]
    if unchecked:
        raise ValueError(f"degradation {name!r}: give a validator in param_checks for {', '.join(unchecked)}")
    unused = sorted(set(checks) - set(keywords))
    if unused:
        raise ValueError(f"degradation {name!r} takes no parameter(s) {', '.join(unused)}")
    for key, check in checks.items():
        if not callable(check):
            raise TypeError(f"degradation {name!r}: the validator of {key!r} is not callable")
    _PARAM_CHECKS.update(checks)
    DEGRADATIONS[name] = function
    return function


def degradation_params(name):
    """The keyword parameters of degradation ``name`` and their defaults, as a dict.

    A required parameter (``streaks`` of the real-streak degradations) has
    the default ``inspect.Parameter.empty``; see :func:`required_params`.
    """
    fn = _lookup(name)
    return {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _lookup(name):
    if name not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {name!r}; valid names: {', '.join(DEGRADATIONS)}")
    return DEGRADATIONS[name]


def required_params(name):
    """The parameters degradation ``name`` cannot do without (``("streaks",)`` for real_rain), a tuple."""
    return tuple(k for k, v in degradation_params(name).items() if v is inspect.Parameter.empty)


def check_params(name, **params):
    """Raises ValueError for an unknown degradation, unknown parameters or bad values.

    Loads nothing (a ``streaks`` folder is only checked to be a path) and
    does not require the required parameters: it validates flags one at a
    time.
    """
    _lookup(name)
    valid = degradation_params(name)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for degradation {name!r}; "
            f"valid parameters: {', '.join(valid)}"
        )
    for key, value in params.items():
        _PARAM_CHECKS[key](value)


def make_degradation(name, **params):
    """``degrade(clean, seed)`` applying degradation ``name`` with ``params``.

    Unknown names and parameters raise ValueError listing the valid ones;
    parameter values are checked here too, so mistakes surface before a
    pipeline starts, and so is a missing required parameter. A ``streaks``
    folder is loaded here, once (:func:`load_streaks`; DataError naming the
    folder or file for a bad one), and the loaded :class:`StreakBank` is
    what ``degrade`` uses and ``degrade.params`` holds.
    """
    fn = _lookup(name)
    check_params(name, **params)  # check values now, not at the first batch
    missing = [key for key in required_params(name) if key not in params]
    if missing:
        raise ValueError(f"degradation {name!r} needs " + "; ".join(
            f"{key}= ({_REQUIRED_HELP.get(key, 'no default')})" for key in missing))
    if "streaks" in params:
        params["streaks"] = real_streaks.as_streak_bank(params["streaks"])

    def degrade(clean, seed):
        return fn(clean, seed, **params)

    degrade.__name__ = f"{name}_degradation"
    degrade.__doc__ = f"{fn.__name__}(clean, seed, **{params!r})"
    degrade.name = name
    degrade.params = dict(params)
    return degrade
