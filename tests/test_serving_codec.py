"""Tests of erlrestore.serving.codec: TF Serving's JSON for ``:predict``, without a server or a model."""

import json
import types

import numpy as np
import pytest
import tensorflow as tf

from erlrestore import serving

IMAGES = types.SimpleNamespace(
    name="serving_default", inputs={"images": tf.TensorSpec([None, None, None, 3], tf.float32)})
PAIR = types.SimpleNamespace(
    name="pair", inputs={"count": tf.TensorSpec([None], tf.int32), "text": tf.TensorSpec([None], tf.string)})
PIXEL = [[[0.25, 0.5, 0.75]]]


@pytest.mark.parametrize("body, request_format", [
    ({"instances": [PIXEL, PIXEL]}, "row"),
    ({"instances": [{"images": PIXEL}, {"images": PIXEL}]}, "row"),
    ({"inputs": [PIXEL, PIXEL]}, "columnar"),
    ({"inputs": {"images": [PIXEL, PIXEL]}}, "columnar"),
])
def test_row_and_columnar_bodies_give_the_same_arrays(body, request_format):
    arrays, found_format = serving.parse_predict_body(body, IMAGES)
    assert found_format == request_format
    assert list(arrays) == ["images"] and arrays["images"].dtype == np.float32
    np.testing.assert_array_equal(arrays["images"], np.array([PIXEL, PIXEL], np.float32))


def test_several_inputs_are_named_and_strings_are_utf8_or_b64():
    arrays, found_format = serving.parse_predict_body(
        {"instances": [{"count": 1, "text": {"b64": "aGk="}}, {"count": 2, "text": "caf\u00e9"}]}, PAIR)
    assert found_format == "row"
    np.testing.assert_array_equal(arrays["count"], np.array([1, 2], np.int32))
    assert list(arrays["text"]) == [b"hi", "caf\u00e9".encode("utf-8")]


@pytest.mark.parametrize("body, message", [
    ({"instances": [1, 2]}, r"'instances' holds bare values but signature 'pair' has several inputs"),
    ({"inputs": {"count": [1]}}, r"'inputs' has keys \['count'\]; signature 'pair' needs exactly \['count', 'text'\]"),
    ({"inputs": {"count": [2**40], "text": ["x"]}}, r"input 'count' of 'inputs': a value does not fit in int32"),
    ({"inputs": {"count": [1.5], "text": ["x"]}}, r"expected integers for a int32 input, got numbers"),
    ({"inputs": {"count": [1], "text": [{"b64": "%%%"}]}}, r"input 'text' of 'inputs': could not decode base64"),
    ({"inputs": {"count": [1], "text": [7]}}, r"expected strings or \{\"b64\": \.\.\.\} objects .* got a number"),
])
def test_malformed_bodies_are_refused_with_400(body, message):
    with pytest.raises(serving.ServingError, match=message) as raised:
        serving.parse_predict_body(body, PAIR)
    assert raised.value.status == 400


def test_responses_in_row_and_columnar_format():
    outputs = {
        "label": np.array([b"caf\xc3\xa9", b"\xff"], dtype=object),  # UTF-8 text as a string, other bytes as b64
        "restored": np.array([[0.5], [0.1]], np.float32),
        "restored_bytes": np.array([b"\x89PNG", b"ok"], dtype=object),  # named *_bytes: always b64
    }
    labels = ["caf\u00e9", {"b64": "/w=="}]
    restored = [[0.5], [0.10000000149011612]]  # float32 values, written exactly as float64
    encoded = [{"b64": "iVBORw=="}, {"b64": "b2s="}]
    assert serving.format_predict_response(outputs, "row") == {"predictions": [
        {"label": labels[0], "restored": restored[0], "restored_bytes": encoded[0]},
        {"label": labels[1], "restored": restored[1], "restored_bytes": encoded[1]},
    ]}
    assert serving.format_predict_response(outputs, "columnar") == {
        "outputs": {"label": labels, "restored": restored, "restored_bytes": encoded}}
    single = {"restored": outputs["restored"]}
    assert serving.format_predict_response(single, "row") == {"predictions": restored}
    assert serving.format_predict_response(single, "columnar") == {"outputs": restored}


@pytest.mark.parametrize("outputs, message", [
    ({"total": np.float32(3.0)}, r"output 'total' is a scalar; use the columnar format"),
    ({"a": np.zeros([2, 1]), "b": np.zeros([3, 1])}, r"outputs have different batch sizes \('b': 3, others: 2\)"),
])
def test_row_format_needs_one_batch_size(outputs, message):
    with pytest.raises(serving.ServingError, match=message):
        serving.format_predict_response(outputs, "row")
    serving.format_predict_response(outputs, "columnar")  # the columnar format takes them


@pytest.mark.parametrize("shape", [(3,), (20,), (2, 5, 4, 3), (1, 9, 9, 3), (40, 2), (0, 3), (5, 0), (2, 3, 50)])
def test_encode_json_writes_what_json_dumps_writes_a_block_at_a_time(shape, monkeypatch):
    monkeypatch.setattr(serving.codec, "_BLOCK_VALUES", 7)  # so that every array is cut into blocks
    array = np.random.default_rng(0).random(shape, dtype=np.float32)
    outputs = {"restored": array, "label": np.array([b"x"] * (shape[0] or 1), dtype=object)[: shape[0]]}
    for request_format in ("row", "columnar"):
        for chosen in (["restored"], ["restored", "label"]):
            selected = {name: outputs[name] for name in chosen}
            expected = json.dumps(serving.format_predict_response(selected, request_format), separators=(",", ":"))
            chunks = serving.encode_json(serving.format_predict_response(selected, request_format, lazy=True))
            assert b"".join(chunks).decode() == expected
    special = {"restored": np.array([np.nan, np.inf, -0.5], np.float32)}
    assert b"".join(serving.encode_json(serving.format_predict_response(special, "columnar", lazy=True))) == (
        b'{"outputs":[NaN,Infinity,-0.5]}')
