"""TF Serving's JSON for ``:predict``: request bodies to NumPy arrays, and output arrays back to JSON.

The rules follow ``tensorflow_serving/util/json_tensor.cc``; the module
docstring of :mod:`erlrestore.serving` lists them, and where this server
differs.
"""

import base64
import binascii
import json

import numpy as np
import tensorflow as tf

from erlrestore.serving.errors import ServingError

BYTES_SUFFIX = "_bytes"  # a string output named like this is answered as {"b64": ...}
_BLOCK_VALUES = 1 << 16  # numbers turned into Python floats at a time when encoding a numeric output


def _is_b64_object(value):
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _decode_b64(text, what):
    compact = "".join(text.split())  # tolerate the line breaks of `base64` tools
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ServingError(400, f"{what}: could not decode base64 data: {error}") from None


def json_kind(value):
    """The JSON type of ``value`` as error messages name it ("null", "a number", "an object", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    return "a list"


def _string_leaves(value, what):
    if isinstance(value, list):
        return [_string_leaves(item, what) for item in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    if _is_b64_object(value):
        return _decode_b64(value["b64"], what)
    raise ServingError(
        400, f"{what}: expected strings or {{\"b64\": ...}} objects for a string input, got {json_kind(value)}"
    )


def _string_array(value, what):
    nested = _string_leaves(value, what)
    try:
        array = np.array(nested, dtype=object)
    except ValueError as error:
        raise ServingError(400, f"{what} is not a dense (rectangular) array: {error}") from None
    if any(not isinstance(item, bytes) for item in array.flat):
        raise ServingError(400, f"{what} is not a dense (rectangular) array: its lists have different lengths")
    return array


def json_to_array(value, spec, what):
    """The JSON ``value`` as a NumPy array of ``spec``'s dtype (shape not checked); ServingError 400 if it cannot be."""
    dtype = tf.as_dtype(spec.dtype)
    if dtype == tf.string:
        return _string_array(value, what)
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, RecursionError) as error:
        raise ServingError(400, f"{what} is not a dense (rectangular) array: {error}") from None
    kind = array.dtype.kind
    found = {"U": "strings", "S": "strings", "b": "booleans", "O": "objects, nulls or mixed types"}.get(kind, "numbers")
    if dtype.is_floating:
        if kind not in "fiu":
            raise ServingError(400, f"{what}: expected numbers for a {dtype.name} input, got {found}")
        # Converted first and checked after (a finite value that became infinite did not fit), without
        # temporary float64 copies of the whole input.
        with np.errstate(over="ignore", invalid="ignore"):
            converted = array.astype(dtype.as_numpy_dtype, copy=False)
        if converted is not array:
            overflow = np.isinf(converted)
            if overflow.any() and (kind != "f" or np.isfinite(array[overflow]).any()):
                raise ServingError(400, f"{what}: a value does not fit in {dtype.name}")
        return converted
    if dtype.is_integer:
        if kind not in "iu":
            raise ServingError(400, f"{what}: expected integers for a {dtype.name} input, got {found}")
        info = np.iinfo(dtype.as_numpy_dtype)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise ServingError(400, f"{what}: a value does not fit in {dtype.name}")
    elif dtype == tf.bool:
        if kind != "b":
            raise ServingError(400, f"{what}: expected true/false for a bool input, got {found}")
    else:
        raise ServingError(400, f"{what}: inputs of type {dtype.name} cannot be sent as JSON by this server")
    return array.astype(dtype.as_numpy_dtype, copy=False)


def parse_predict_body(body, signature):
    """Decodes a ``:predict`` JSON body into ``({input: array}, "row" | "columnar")`` for ``signature``.

    ``body`` is the already-parsed JSON object. Raises ServingError 400 for
    every malformed request (see the module docstring for the rules).
    """
    has_instances, has_inputs = "instances" in body, "inputs" in body
    if has_instances and has_inputs:
        raise ServingError(
            400, "the request has both 'instances' (row format) and 'inputs' (columnar format); send one"
        )
    if not (has_instances or has_inputs):
        raise ServingError(400, "the request has neither 'instances' (row format) nor 'inputs' (columnar format)")
    specs = signature.inputs
    if not specs:
        raise ServingError(400, f"signature {signature.name!r} takes no inputs")
    names = sorted(specs)
    if has_instances:
        instances = body["instances"]
        if not isinstance(instances, list):
            raise ServingError(400, f"'instances' must be a list, got {json_kind(instances)}")
        if not instances:
            raise ServingError(400, "'instances' is an empty list")

        def named(item):
            return isinstance(item, dict) and not _is_b64_object(item)

        if named(instances[0]):
            columns = {name: [] for name in names}
            for index, instance in enumerate(instances):
                if not named(instance):
                    raise ServingError(
                        400, f"instance {index} is {json_kind(instance)}; expected an object like instance 0"
                    )
                if set(instance) != set(names):
                    raise ServingError(
                        400,
                        f"instance {index} has keys {sorted(instance)}; signature {signature.name!r} needs "
                        f"exactly {names}",
                    )
                for name in names:
                    columns[name].append(instance[name])
        else:
            if len(names) > 1:
                raise ServingError(
                    400, f"'instances' holds bare values but signature {signature.name!r} has several inputs {names}; "
                    "send objects keyed by input name",
                )
            for index, instance in enumerate(instances):
                if named(instance):
                    raise ServingError(400, f"instance {index} is an object but instance 0 is a bare value")
            columns = {names[0]: instances}
        arrays = {name: json_to_array(columns[name], specs[name], f"input {name!r} of 'instances'") for name in names}
        return arrays, "row"
    value = body["inputs"]
    if isinstance(value, dict) and not _is_b64_object(value):
        missing = [name for name in names if name not in value]
        unknown = sorted(set(value) - set(names))
        if missing or unknown:
            raise ServingError(
                400,
                f"'inputs' has keys {sorted(value)}; signature {signature.name!r} needs exactly {names}",
            )
        arrays = {name: json_to_array(value[name], specs[name], f"input {name!r} of 'inputs'") for name in names}
    else:
        if len(names) > 1:
            raise ServingError(
                400, f"'inputs' is a bare value but signature {signature.name!r} has several inputs {names}; "
                "send an object keyed by input name",
            )
        arrays = {names[0]: json_to_array(value, specs[names[0]], f"input {names[0]!r} of 'inputs'")}
    return arrays, "columnar"


def _string_to_json(item, as_bytes):
    if not as_bytes:
        try:
            return item.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return {"b64": base64.b64encode(item).decode("ascii")}


class NumericJson:
    """A numeric output array that :func:`encode_json` writes a block at a time (never one nested list).

    Indexing gives the sub-array (a row of the batch), as a list would.
    """

    def __init__(self, array):
        self.array = array

    def __getitem__(self, index):
        return NumericJson(self.array[index])

    def tolist(self):
        return self.array.tolist()


def _array_to_json(name, array, lazy=False):
    if lazy and array.dtype.kind in "biuf" and array.ndim:
        return NumericJson(array)
    if array.dtype.kind in "OS":
        as_bytes = name.endswith(BYTES_SUFFIX)

        def convert(value):
            if isinstance(value, list):
                return [convert(item) for item in value]
            return _string_to_json(value, as_bytes)

        return convert(array.tolist())
    return array.tolist()


def format_predict_response(outputs, request_format, lazy=False):
    """The JSON response (a dict) for ``outputs`` (``{name: array}``) in ``"row"`` or ``"columnar"`` format.

    With ``lazy``, numeric arrays stay :class:`NumericJson` for
    :func:`encode_json` (which writes the same text as ``json.dumps`` of the
    plain answer, without making all the numbers Python floats at once).
    """
    names = sorted(outputs)
    if request_format == "columnar":
        if len(names) == 1:
            return {"outputs": _array_to_json(names[0], outputs[names[0]], lazy)}
        return {"outputs": {name: _array_to_json(name, outputs[name], lazy) for name in names}}
    batch = None
    for name in names:
        shape = outputs[name].shape
        if not shape:
            raise ServingError(400, f"output {name!r} is a scalar; use the columnar format ('inputs')")
        if batch is not None and shape[0] != batch:
            raise ServingError(
                400, f"outputs have different batch sizes ({name!r}: {shape[0]}, others: {batch}); "
                "use the columnar format ('inputs')",
            )
        batch = shape[0]
    converted = {name: _array_to_json(name, outputs[name], lazy) for name in names}
    if len(names) == 1:
        return {"predictions": converted[names[0]]}
    return {"predictions": [{name: converted[name][row] for name in names} for row in range(batch)]}


def encode_json(value):
    """``value`` as compact JSON, a list of UTF-8 byte strings whose concatenation is the document.

    The text equals ``json.dumps(value, separators=(",", ":"))`` with every
    :class:`NumericJson` replaced by its ``tolist()``; a numeric array is
    written ``_BLOCK_VALUES`` numbers at a time (a whole-image answer would
    otherwise be tens of millions of Python floats at once).
    """
    chunks = []
    _encode(value, chunks)
    return chunks


def _encode(value, chunks):
    if isinstance(value, NumericJson):
        _encode_array(value.array, chunks)
    elif isinstance(value, dict):
        chunks.append(b"{")
        for index, (key, item) in enumerate(value.items()):
            chunks.append((b"," if index else b"") + json.dumps(str(key)).encode("utf-8") + b":")
            _encode(item, chunks)
        chunks.append(b"}")
    elif isinstance(value, (list, tuple)):
        chunks.append(b"[")
        for index, item in enumerate(value):
            if index:
                chunks.append(b",")
            _encode(item, chunks)
        chunks.append(b"]")
    else:
        chunks.append(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def _encode_array(array, chunks):
    if array.ndim == 0 or array.size <= _BLOCK_VALUES:
        chunks.append(json.dumps(array.tolist(), separators=(",", ":")).encode("utf-8"))
        return
    row = array.size // array.shape[0]  # values per item of the first axis
    chunks.append(b"[")
    if row > _BLOCK_VALUES:
        for index, item in enumerate(array):
            if index:
                chunks.append(b",")
            _encode_array(item, chunks)
    else:
        step = max(1, _BLOCK_VALUES // max(row, 1))
        for start in range(0, array.shape[0], step):
            text = json.dumps(array[start : start + step].tolist(), separators=(",", ":"))
            chunks.append((b"," if start else b"") + text[1:-1].encode("utf-8"))
    chunks.append(b"]")
