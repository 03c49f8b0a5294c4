"""PHP's json_encode and serialize, byte for byte (spec iem-webhooks.md, "The request" and "The log row").

The expected bytes follow PHP 8.2's own output (checked by hand with php-cli while writing them);
the tests do not need PHP.
"""

import pytest
from pmtabounce.common.php import json_encode, php_key, serialize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", b'""'),
        ("plain ascii 123", b'"plain ascii 123"'),
        ("http://crm.example/hook", b'"http:\\/\\/crm.example\\/hook"'),  # `/` is always escaped
        ('say "hi"', b'"say \\"hi\\""'),
        ("back\\slash", b'"back\\\\slash"'),
        ("\b\f\n\r\t", b'"\\b\\f\\n\\r\\t"'),
        ("\x00\x01\x0b\x1f", b'"\\u0000\\u0001\\u000b\\u001f"'),  # other controls: \u00XX, lower-case hex
        ("\x7f", b'"\x7f"'),  # DEL is left as it is
        ("caf\u00e9", b'"caf\\u00e9"'),
        ("\u00c9T\u00c9", b'"\\u00c9T\\u00c9"'),  # lower-case hex digits, whatever the letter's case
        ("\u20ac \uffff", b'"\\u20ac \\uffff"'),
        ("\u0416\u4e2d", b'"\\u0416\\u4e2d"'),
        ("\U0001f600", b'"\\ud83d\\ude00"'),  # beyond the BMP: a UTF-16 surrogate pair
        ("\U0010ffff", b'"\\udbff\\udfff"'),
        ("\U00010000a", b'"\\ud800\\udc00a"'),
        ("a\u2028b", b'"a\\u2028b"'),
    ],
)
def test_json_encode_strings(text, expected):
    assert json_encode(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, b"0"),
        (1, b"1"),
        (-5, b"-5"),
        (1700000000, b"1700000000"),
        (2**63 - 1, b"9223372036854775807"),
        (None, b"null"),
        (True, b"true"),
        (False, b"false"),
        ({}, b"[]"),  # an empty PHP array is a list
        ([], b"[]"),
        (["a", 1], b'["a",1]'),
        ({"a": 1, "b": "x"}, b'{"a":1,"b":"x"}'),
        ({"b": 1, "a": 2}, b'{"b":1,"a":2}'),  # insertion order, as PHP's arrays
        ({"0": "a", "1": "b"}, b'["a","b"]'),  # keys "0".."n-1" in order: PHP makes it a list
        ({"1": "a", "0": "b"}, b'{"1":"a","0":"b"}'),  # out of order: an object
        ({"1": "a"}, b'{"1":"a"}'),
        ({"0": "a", "x": "b"}, b'{"0":"a","x":"b"}'),
        ({"x": {}}, b'{"x":[]}'),
        ({"x": {"y": {"z": "/"}}}, b'{"x":{"y":{"z":"\\/"}}}'),
        ({"caf\u00e9": "\u00e9"}, b'{"caf\\u00e9":"\\u00e9"}'),  # keys are escaped like values
    ],
)
def test_json_encode_values(value, expected):
    assert json_encode(value) == expected


def test_json_encode_webhook_payloads():
    bounce = {"event": "Bounce", "listname": "Kunden/M\u00fcnchen", "emailaddress": "j\u00f6rg@example.com",
              "bounced": 1, "bouncedate": 1700000000}
    assert json_encode(bounce) == (
        b'{"event":"Bounce","listname":"Kunden\\/M\\u00fcnchen","emailaddress":"j\\u00f6rg@example.com",'
        b'"bounced":1,"bouncedate":1700000000}'
    )
    subscribe = {"event": "Subscribe", "listname": "L", "emailaddress": "a@b.c", "confirmed": "1",
                 "confirmdate": "0", "customfields": {"City": "K\u00f6ln", "Tel": ""}}
    assert json_encode(subscribe) == (
        b'{"event":"Subscribe","listname":"L","emailaddress":"a@b.c","confirmed":"1","confirmdate":"0",'
        b'"customfields":{"City":"K\\u00f6ln","Tel":""}}'
    )


@pytest.mark.parametrize("value", [1.5, {1, 2}, b"bytes", object()])
def test_json_encode_refuses_what_php_arrays_we_send_never_hold(value):
    with pytest.raises(TypeError):
        json_encode(value)


def test_json_encode_refuses_a_lone_surrogate():
    with pytest.raises(ValueError, match="surrogate"):
        json_encode("a\ud800b")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", b's:0:"";'),
        ("abc", b's:3:"abc";'),
        ("a/b", b's:3:"a/b";'),  # nothing escaped
        ('q"b\\s;}', b's:7:"q"b\\s;}";'),
        ("caf\u00e9", 's:5:"caf\u00e9";'.encode()),  # length in UTF-8 bytes, not characters
        ("\u20ac", 's:3:"\u20ac";'.encode()),
        ("\U0001f600x", 's:5:"\U0001f600x";'.encode()),
        ("a\nb\x00", b's:4:"a\nb\x00";'),
        (0, b"i:0;"),
        (-3, b"i:-3;"),
        (1700000000, b"i:1700000000;"),
        (None, b"N;"),
        (True, b"b:1;"),
        (False, b"b:0;"),
        ({}, b"a:0:{}"),
        (["x", 2], b'a:2:{i:0;s:1:"x";i:1;i:2;}'),
        ({"0": "a", "17": "b", "-3": "c"}, b'a:3:{i:0;s:1:"a";i:17;s:1:"b";i:-3;s:1:"c";}'),
        ({"01": "a", "-0": "b", "+1": "c", "1.0": "d", " 1": "e"},
         b'a:5:{s:2:"01";s:1:"a";s:2:"-0";s:1:"b";s:2:"+1";s:1:"c";s:3:"1.0";s:1:"d";s:2:" 1";s:1:"e";}'),
        ({"x": {"y": 1}}, b'a:1:{s:1:"x";a:1:{s:1:"y";i:1;}}'),  # no `;` after a nested array
    ],
)
def test_serialize(value, expected):
    assert serialize(value) == expected


def test_serialize_the_log_array():
    payload = {"event": "Unsubscribe", "listname": "Gr\u00fc\u00dfe", "emailaddress": "x@y.z",
               "unsubscribed": 1, "unsubscribedate": 1700000001}
    assert serialize({"url": "https://crm.example/h?a=1", "payload": payload}) == (
        'a:2:{s:3:"url";s:25:"https://crm.example/h?a=1";s:7:"payload";a:5:{s:5:"event";s:11:"Unsubscribe";'
        's:8:"listname";s:7:"Gr\u00fc\u00dfe";s:12:"emailaddress";s:5:"x@y.z";s:12:"unsubscribed";i:1;'
        's:15:"unsubscribedate";i:1700000001;}}'
    ).encode()


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("-42", -42),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        ("9223372036854775808", "9223372036854775808"),  # beyond PHP_INT_MAX: stays a string
        ("007", "007"),
        ("-0", "-0"),
        ("+1", "+1"),
        ("1e3", "1e3"),
        ("\u0661", "\u0661"),  # an Arabic-Indic digit is a digit to Python, not to PHP
        ("", ""),
        (5, 5),
    ],
)
def test_php_key(key, expected):
    assert php_key(key) == expected
    assert type(php_key(key)) is type(expected)


@pytest.mark.parametrize("value", [1.5, {1}, b"x"])
def test_serialize_refuses_other_types(value):
    with pytest.raises(TypeError):
        serialize(value)
