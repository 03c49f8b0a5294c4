"""What setup says when the management API refuses the policy: a 401 hints at the password, a 403 at the tag."""

from __future__ import annotations

import pytest

from pmtabounce.queue_policy import refusal_hint


@pytest.mark.parametrize("error, says, not_said", [
    ("the management API at http://mq:15672/ answered 401 Unauthorized", "check the password", None),
    ("the management API at http://mq:15672/ answered 403 Forbidden", "needs the policymaker tag", "password"),
])
def test_a_refusal_names_its_likely_cause(error, says, not_said):
    hint = refusal_hint(error)
    assert says in hint
    assert not_said is None or not_said not in hint
