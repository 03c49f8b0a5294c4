"""PHP's json_encode and serialize, byte for byte: what IEM 6.5.1 sends to a webhook and writes to its log.

A Python value stands for a PHP value: str (a PHP string, written as UTF-8), int, bool, None (null),
dict (an ordered PHP array, keys kept in insertion order), list (a PHP array keyed 0..n-1).
Spec: iem-webhooks.md, "The request" and "The log row".

Two PHP rules about arrays shape the bytes and are reproduced here:
- A string key that is a canonical decimal integer ("0", "17", "-3"; not "01", "+3", "1.0") becomes an
  integer key in PHP: serialize writes it `i:17;`.
- json_encode writes an array as a JSON list when its keys are exactly 0, 1, ... n-1 in that order, and
  as an object otherwise; an empty array is `[]`. A custom field named "0" can therefore turn IEM's
  `customfields` into a list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PHP_INT_MAX = 2**63 - 1
PHP_INT_MIN = -(2**63)
# PHP's ZEND_HANDLE_NUMERIC_STR: an optional minus, then 0 alone or digits without a leading zero ("-0" is not).
_INTEGER_KEY = re.compile(r"0|-?[1-9][0-9]*")

_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                 "\t": "\\t"}
# Everything json_encode rewrites: the escapes above, other controls, and every non-ASCII character.
_JSON_SPECIAL = re.compile(r'["\\/\x00-\x1f\u0080-\U0010ffff]')


def json_encode(value: object) -> bytes:
    """PHP 7/8 `json_encode($value)` with no flags, as bytes (ASCII only).

    `/` is `\\/`, every non-ASCII character `\\uXXXX` in lower-case hex (UTF-16 surrogate pairs beyond
    the BMP), `"` and `\\` escaped, controls as `\\b \\f \\n \\r \\t` or `\\u00XX`, DEL (0x7f) kept, no spaces.
    Raises TypeError for a value PHP's arrays of strings and integers cannot hold (a float, a set, ...),
    ValueError for a lone surrogate (PHP's json_encode fails on invalid UTF-8).
    """
    return _json(value).encode("ascii")


def serialize(value: object) -> bytes:
    """PHP's `serialize($value)` as bytes: strings `s:<length in UTF-8 bytes>:"...";`, integers `i:N;`,
    null `N;`, booleans `b:0;`/`b:1;`, arrays `a:<count>:{key value ...}` (no `;` after `}`).

    Raises TypeError for a value of another type, UnicodeEncodeError for a lone surrogate.
    """
    out: list[bytes] = []
    _serialize(value, out)
    return b"".join(out)


def php_key(key: object) -> int | str:
    """The key PHP stores for an array key: a canonical decimal integer string becomes an int.

    PHP converts only strings that fit its 64-bit integer; "007", "+1", "1.5", " 1" and "-0" stay strings.
    Raises TypeError for a key that is neither str nor int (PHP arrays have no other).
    """
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise TypeError(f"a PHP array key is a string or an integer, not {type(key).__name__}")
    if isinstance(key, str) and _INTEGER_KEY.fullmatch(key):
        number = int(key)
        if PHP_INT_MIN <= number <= PHP_INT_MAX:
            return number
    return key


def _json(value: object) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_json(item) for item in value) + "]"
    if isinstance(value, Mapping):
        keys = [php_key(key) for key in value]
        if keys == list(range(len(keys))):  # a PHP "list" (empty included) is a JSON array
            return "[" + ",".join(_json(item) for item in value.values()) + "]"
        return "{" + ",".join(
            _json_string(str(key)) + ":" + _json(item) for key, item in zip(keys, value.values(), strict=True)
        ) + "}"
    raise TypeError(f"json_encode: {type(value).__name__} is not one of the PHP values we send")


def _json_string(text: str) -> str:
    return '"' + _JSON_SPECIAL.sub(_json_escape, text) + '"'


def _json_escape(match: re.Match) -> str:
    char = match.group()
    escape = _JSON_ESCAPES.get(char)
    if escape is not None:
        return escape
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        raise ValueError(f"json_encode: a lone surrogate U+{code:04X} is not UTF-8 (PHP's json_encode fails)")
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 | code >> 10:04x}\\u{0xDC00 | code & 0x3FF:04x}"
    return f"\\u{code:04x}"


def _serialize(value: object, out: list[bytes]) -> None:
    if type(value) is str:  # the usual value first: the checks below cost more than the encoding
        raw = value.encode("utf-8")
        out.append(b's:%d:"%s";' % (len(raw), raw))
    elif value is None:
        out.append(b"N;")
    elif isinstance(value, bool):
        out.append(b"b:1;" if value else b"b:0;")
    elif isinstance(value, int):
        out.append(b"i:%d;" % value)
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        out.append(b's:%d:"%s";' % (len(raw), raw))
    elif isinstance(value, (list, tuple, Mapping)):
        items = list(value.items()) if isinstance(value, Mapping) else list(enumerate(value))
        out.append(b"a:%d:{" % len(items))
        for key, item in items:
            _serialize(php_key(key), out)
            _serialize(item, out)
        out.append(b"}")
    else:
        raise TypeError(f"serialize: {type(value).__name__} is not one of the PHP values we log")
