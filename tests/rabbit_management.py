"""The RabbitMQ management plugin, for the tests that read what only its HTTP API tells (unacked counts).

It is part of the real broker, not a stand-in: `ensure_management_api` enables
it on the local node when it is off (rabbitmq-plugins works as root here) and
waits until the API answers.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request

API_URL = os.environ.get("PMTABOUNCE_TEST_RABBITMQ_API_URL", "http://guest:guest@127.0.0.1:15672")


def _answers() -> bool:
    request = urllib.request.Request("http://127.0.0.1:15672/api/overview")
    request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return "management_version" in json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def ensure_management_api(timeout: float = 60.0) -> str:
    """The API URL, once the management plugin answers; enables the plugin first if needed."""
    if os.environ.get("PMTABOUNCE_TEST_RABBITMQ_API_URL") or _answers():
        return API_URL
    tool = shutil.which("rabbitmq-plugins") or "/usr/sbin/rabbitmq-plugins"
    subprocess.run([tool, "-q", "enable", "rabbitmq_management"], check=True, capture_output=True, timeout=120)
    deadline = time.monotonic() + timeout
    while not _answers():
        if time.monotonic() > deadline:
            raise AssertionError("the RabbitMQ management API did not come up on :15672")
        time.sleep(0.5)
    return API_URL
