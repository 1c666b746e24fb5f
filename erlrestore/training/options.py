"""Training settings declared once: a dataclass field that carries its flag.

Every setting of :class:`~erlrestore.training.settings.TrainSettings`,
of the model families' settings groups (its base classes) and of its
``data`` group (:class:`~erlrestore.training.inputs.DataSettings`) is one
field declaration made with a helper of this module::

    depth: int = options.integer(4, "U-Net levels (down-samplings).", lower=1, identity=True, family="erl")

The declaration holds the default, the ``--help`` text, the bounds or the
choices, the model family that reads the setting (``family``, its name in
:mod:`erlrestore.training.families`; the other families ignore it), and
whether it is part of a run's identity
(``identity``: it changes what is trained, so a resumed run must keep it;
``run_config.json`` records it). Everything else is made from it:

* :func:`define_flags`: one absl flag per setting, named as the field, with
  its default, bounds or choices and help;
* :func:`from_flags` / :func:`from_argv`: the settings from parsed flags or
  from a command line;
* :func:`identity` / :func:`absent_values`: what ``run_config.json`` holds
  and compares on a restart;
* :func:`declared`: every declaration of a settings class, groups flattened.

Flags are flat: a group's fields (``data``) become top-level flags, so
field names must be unique across the groups (absl refuses a second flag
of the same name).
"""

import dataclasses

from absl import flags

_ABSENT = object()  # no absent_means given


@dataclasses.dataclass(frozen=True)
class Flag:
    """How one setting appears on the command line and in a run's identity."""

    kind: str  # integer, number, boolean, text, choice or values
    help: str
    lower: object = None
    upper: object = None
    choices: object = ()  # a tuple, or a function returning the choices when the flag is defined
    item: type = str  # the type of each comma-separated item of a "values" setting
    convert: object = None  # turns a choice's flag string into the setting's value
    required: bool = False
    identity: bool = False
    family: str = ""
    # The value a run recorded before this identity setting existed: a
    # run_config.json without it was trained with this value.
    absent_means: object = _ABSENT

    def choice_list(self):
        """The choices of a ``choice`` setting, in order (a function's, as it returns them now)."""
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def value(self, name, flag_value):
        """The setting's value for the parsed flag value; ValueError for a bad list item."""
        if self.kind == "values":
            try:
                return tuple(self.item(v) for v in flag_value)
            except ValueError:
                raise ValueError(f"--{name} takes comma-separated {self.item.__name__}s, "
                                 f"got {','.join(flag_value)}") from None
        if self.convert is not None:
            return self.convert(flag_value)
        return flag_value


def _declare(default, flag):
    if flag.absent_means is not _ABSENT and not flag.identity:
        raise ValueError("absent_means is the value of an identity setting in runs recorded without it; "
                         "this setting has identity=False")
    metadata = {"flag": flag}
    if flag.required:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def integer(default, help, *, lower=None, upper=None, identity=False, family="", absent_means=_ABSENT):
    """An int setting, ``--name=N`` within [lower, upper] (either may be None)."""
    return _declare(default, Flag("integer", help, lower=lower, upper=upper, identity=identity, family=family,
                                  absent_means=absent_means))


def number(default, help, *, lower=None, upper=None, identity=False, family="", absent_means=_ABSENT):
    """A float setting, ``--name=x`` within [lower, upper] (either may be None)."""
    return _declare(default, Flag("number", help, lower=lower, upper=upper, identity=identity, family=family,
                                  absent_means=absent_means))


def boolean(default, help, *, identity=False, family="", absent_means=_ABSENT):
    """A bool setting, ``--name`` / ``--noname``."""
    return _declare(default, Flag("boolean", help, identity=identity, family=family, absent_means=absent_means))


def text(default, help, *, required=False, identity=False, family="", absent_means=_ABSENT):
    """A str setting; ``required``: no default, the flag must be given (its default is None)."""
    return _declare(default, Flag("text", help, required=required, identity=identity, family=family,
                                  absent_means=absent_means))


def choice(default, choices, help, *, convert=None, identity=False, family="", absent_means=_ABSENT):
    """One of ``choices`` (strings, listed in this order by ``--help`` and errors); ``convert`` maps it.

    ``choices`` may be a function returning them: it is called when the flag
    is defined (:func:`define_flags`), so choices registered after the
    declaration (``--model`` of a model family, see
    :mod:`erlrestore.training.families`) are offered too.
    """
    choices = choices if callable(choices) else tuple(choices)
    return _declare(default, Flag("choice", help, choices=choices, convert=convert, identity=identity,
                                  family=family, absent_means=absent_means))


def values(default, item, help, *, identity=False, family="", absent_means=_ABSENT):
    """A tuple of ``item`` (int, float or str), given as ``--name=a,b,c`` (empty: ``--name=``)."""
    return _declare(tuple(default), Flag("values", help, item=item, identity=identity, family=family,
                                         absent_means=absent_means))


def group(settings_class):
    """A nested settings dataclass whose declared fields are flags too (``TrainSettings.data``)."""
    return dataclasses.field(default_factory=settings_class, metadata={"group": settings_class})


def declared(settings_class):
    """(field, Flag) of every declared setting of the class and its groups, flattened."""
    for field in dataclasses.fields(settings_class):
        if "group" in field.metadata:
            yield from declared(field.metadata["group"])
        elif "flag" in field.metadata:
            yield field, field.metadata["flag"]


def define_flags(settings_class, flag_values, module_name):
    """Defines one absl flag per declared setting of ``settings_class`` (groups included).

    ``module_name`` is the module the flags belong to, the one whose flags
    ``--help`` lists (e.g. the command's ``__name__``).
    """
    common = dict(flag_values=flag_values, module_name=module_name)
    for field, flag in declared(settings_class):
        name = field.name
        default = None if flag.required else field.default
        if flag.kind == "integer":
            flags.DEFINE_integer(name, default, flag.help, lower_bound=flag.lower, upper_bound=flag.upper, **common)
        elif flag.kind == "number":
            flags.DEFINE_float(name, default, flag.help, lower_bound=flag.lower, upper_bound=flag.upper, **common)
        elif flag.kind == "boolean":
            flags.DEFINE_boolean(name, default, flag.help, **common)
        elif flag.kind == "text":
            flags.DEFINE_string(name, default, flag.help, required=flag.required, **common)
        elif flag.kind == "choice":
            flags.DEFINE_enum(name, default, list(flag.choice_list()), flag.help, **common)
        elif flag.kind == "values":
            flags.DEFINE_list(name, [str(v) for v in default], flag.help, **common)
        else:
            raise ValueError(f"setting {name} has an unknown kind {flag.kind!r}")


def from_flags(settings_class, flag_values=flags.FLAGS):
    """An instance of ``settings_class`` from parsed flags defined by :func:`define_flags`.

    Raises ValueError for a list item of the wrong type (``--stage_steps=x``).
    """
    arguments = {}
    for field in dataclasses.fields(settings_class):
        if "group" in field.metadata:
            arguments[field.name] = from_flags(field.metadata["group"], flag_values)
        elif "flag" in field.metadata:
            arguments[field.name] = field.metadata["flag"].value(field.name, flag_values[field.name].value)
    return settings_class(**arguments)


def from_argv(settings_class, argv, program="erlrestore-train"):
    """An instance of ``settings_class`` from command-line arguments (no program name), in this process.

    The flags live in a private ``FlagValues``, so the process's own flags
    (a tool's) neither clash nor change. ``--flagfile=`` works as on the
    command line (paths relative to the working directory). Raises absl's
    ``flags.Error`` (e.g. ``IllegalFlagValueError``) for a flag the command
    line would refuse, ValueError for a bad list item.
    """
    flag_values = flags.FlagValues()
    define_flags(settings_class, flag_values, module_name=__name__)
    flag_values([program, *argv])
    return from_flags(settings_class, flag_values)


def _values(settings):
    """(name, Flag, value) of every declared setting of an instance, groups flattened."""
    for field in dataclasses.fields(settings):
        if "group" in field.metadata:
            yield from _values(getattr(settings, field.name))
        elif "flag" in field.metadata:
            yield field.name, field.metadata["flag"], getattr(settings, field.name)


def identity(settings, family):
    """{name: value} of the identity settings that a run of ``family`` reads (family-less ones included)."""
    return {name: value for name, flag, value in _values(settings)
            if flag.identity and flag.family in ("", family)}


def absent_values(settings_class):
    """{name: absent_means} of the identity settings added after runs were recorded without them."""
    return {field.name: flag.absent_means for field, flag in declared(settings_class)
            if flag.identity and flag.absent_means is not _ABSENT}
