"""PHP's own encodings, byte for byte: json_encode (no flags) and serialize (iem-webhooks.md "The request",
"The log row"). Stand-in written against EVENTS-INTERFACE.md until the php helper's module lands."""

from __future__ import annotations

_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        elif ord(ch) < 0x7F or ord(ch) == 0x7F:
            out.append(ch)
        elif ord(ch) > 0xFFFF:
            code = ord(ch) - 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return '"' + "".join(out) + '"'


def _json(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_string(str(k))}:{_json(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"json_encode: {type(value).__name__} is not handled")


def json_encode(value) -> bytes:
    """PHP 7/8 json_encode($value) with no flags: str, int and ordered dicts."""
    return _json(value).encode("ascii")


def _serialize(value) -> str:
    if isinstance(value, int):
        return f"i:{value};"
    if isinstance(value, str):
        return f's:{len(value.encode())}:"{value}";'
    if isinstance(value, dict):
        return f"a:{len(value)}:{{" + "".join(_serialize(k) + _serialize(v) for k, v in value.items()) + "}"
    raise TypeError(f"serialize: {type(value).__name__} is not handled")


def serialize(value) -> bytes:
    """PHP serialize($value): string lengths in UTF-8 bytes, ints as i:, arrays a:N:{...}."""
    return _serialize(value).encode()
