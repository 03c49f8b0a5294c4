"""What log lines never show: a URL's password, an email address; what they keep: where to look."""

import pytest
from pmtabounce.common.logs import redact


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("amqp://pmtabounce:s3cret@mq.example:5672/v", "amqp://pmtabounce:****@mq.example:5672/v"),
        ("mysql://iem:p%40ss@db/iem and http://u:pw@mq:15672", "mysql://iem:****@db/iem and http://u:****@mq:15672"),
        ("no rows for ann.smith+x@example.co.uk on list 3", "no rows for <address> on list 3"),
        ("RCPT <bob@mail.example.org> refused", "RCPT <<address>> refused"),
        ("{'email': 'ann@example.com'}", "{'email': '<address>'}"),  # the quoting of the line stays whole
        ('{"email": "o\'brien@example.com"}', '{"email": "<address>"}'),
        # where to look stays: a URL's user and host, MySQL's 'user'@'host', an IP address
        ("mysql://iem@db.example.com:3306/iem", "mysql://iem@db.example.com:3306/iem"),
        ("Access denied for user 'iem'@'10.0.0.7'", "Access denied for user 'iem'@'10.0.0.7'"),
        ("worker root@127.0.0.1", "worker root@127.0.0.1"),
        ("amqp://guest:****@127.0.0.1:5672/%2F", "amqp://guest:****@127.0.0.1:5672/%2F"),
    ],
)
def test_redact(text, shown):
    assert redact(text) == shown
