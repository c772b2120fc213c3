"""JSON from clients, decoded and checked once for every entry point that reads it.

`json.loads` accepts more than any handler here can use: lone UTF-16
surrogates (`"\\ud800"`, which cannot be encoded back to UTF-8), `NaN` and
`Infinity` (not JSON, RFC 8259 section 6), integers and floats beyond what a
database column or another JSON parser holds, NUL characters (PostgreSQL
refuses them in text), and nesting deep enough to raise RecursionError,
which is not a ValueError. Each of those used to surface as a 500, a 1011 or
a database error. `loads` turns every one of them into ClientJSONError, a
ValueError whose message says what is wrong and where, for a 400 answer or an
`{"error": ...}` frame.
"""

import json
import math
from typing import Any

# Deep enough for any document a person writes; far below Python's recursion limit.
MAX_DEPTH = 64
# A signed 64-bit integer: what a bigint column, a JavaScript client (as a
# BigInt) or another service's parser can hold.
MAX_INTEGER = 2**63 - 1
MIN_INTEGER = -(2**63)
# Longer digit strings are refused before int() spends time on them.
MAX_INTEGER_DIGITS = 20


class ClientJSONError(ValueError):
    """The client's JSON cannot be used; str() is a message meant for the client."""


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise ClientJSONError(f"integer {text[:24]}... is out of range")
    value = int(text)
    if not MIN_INTEGER <= value <= MAX_INTEGER:
        raise ClientJSONError(f"integer {text} is out of range (a signed 64-bit integer)")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ClientJSONError(f"number {text[:24]} is out of range")
    return value


def _refuse_constant(name: str):
    raise ClientJSONError(f"{name} is not JSON")


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (an unpaired \\ud800-\\udfff escape)"
    return None


def _check(document: Any) -> None:
    """Walk the decoded document without recursion: depth, strings and keys."""
    pending: list[tuple[Any, str, int]] = [(document, "$", 0)]
    while pending:
        value, where, depth = pending.pop()
        if isinstance(value, str):
            if problem := _string_problem(value):
                raise ClientJSONError(f"the string at {where} {problem}")
        elif isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise ClientJSONError(f"nested deeper than {MAX_DEPTH} levels at {where}")
            if isinstance(value, list):
                pending.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))
                continue
            for key, item in value.items():
                if problem := _string_problem(key):
                    raise ClientJSONError(f"a key in the object at {where} {problem}")
                pending.append((item, f"{where}.{key}", depth + 1))


def loads(data: bytes | str) -> Any:
    """Decode a client's JSON document (bytes must be UTF-8) and check that it is usable.

    Returns what `json.loads` returns. Raises ClientJSONError (a ValueError)
    for text that is not UTF-8 or not JSON, NaN or Infinity, an integer
    outside the signed 64-bit range, a float that overflows, a string or key
    holding NUL or a lone surrogate, and nesting deeper than MAX_DEPTH.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise ClientJSONError("the body is not UTF-8 text") from None
    try:
        document = json.loads(
            data,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
        )
    except ClientJSONError:
        raise
    except RecursionError:
        raise ClientJSONError(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # json.JSONDecodeError, int()'s digit limit
        raise ClientJSONError(f"not JSON: {exc}") from None
    _check(document)
    return document
