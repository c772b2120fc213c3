import json

import pytest

from core.client_json import MAX_DEPTH, ClientJSONError, loads


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (b'{"data": "\\ud800"}', "lone surrogate"),
        (b'{"\\udfff": 1}', "lone surrogate"),
        (b'"a\\u0000b"', "NUL"),
        (b'{"k\\u0000": 1}', "NUL"),
        (b"[" * 5000 + b"]" * 5000, "nested deeper"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested deeper"),
        (b'{"a": NaN}', "NaN is not JSON"),
        (b"[Infinity]", "Infinity is not JSON"),
        (b"-Infinity", "-Infinity is not JSON"),
        (b"1e400", "out of range"),
        (b"9223372036854775808", "out of range"),
        (b"-9223372036854775809", "out of range"),
        (b"1" + b"0" * 5000, "out of range"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{'a': 1}", "not JSON"),
        (b"", "not JSON"),
    ],
)
def test_unusable_json_is_a_client_error(document, problem):
    with pytest.raises(ClientJSONError, match=problem):
        loads(document)


def test_the_error_is_a_value_error_for_callers_that_catch_those():
    assert issubclass(ClientJSONError, ValueError)


@pytest.mark.parametrize(
    "value",
    [
        {"event": "order.paid", "data": {"id": 9223372036854775807, "total": 1.5e300}},
        [-9223372036854775808, "Zoë's café ☕ 😀", None, True, {"nested": [[[]]]}],
        "a string",
    ],
)
def test_usable_json_decodes_as_json_loads_does(value):
    text = json.dumps(value)
    assert loads(text) == loads(text.encode()) == json.loads(text)


def test_nesting_up_to_the_limit_is_accepted():
    depth = MAX_DEPTH
    assert loads("[" * depth + "]" * depth) is not None
