"""custom_host refusals end to end, inside a network namespace so that nothing can leave the machine."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare is installed by make test")
def test_private_and_metadata_hosts_are_refused_before_any_connection():
    # GIVEN a network namespace with only loopback up
    script = f"ip link set lo up && exec {sys.executable} -m tests.support.ssrf_probe"
    # WHEN the probe sends hostile custom hosts through the real local server
    proc = subprocess.run(["unshare", "-n", "sh", "-c", script], cwd=ROOT, capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    results = json.loads(proc.stdout)
    # THEN every hostile host is a 400, and the allowed control host did try to connect (502)
    control = results.pop("control")
    assert control == 502
    assert results and all(status == 400 for status in results.values()), results
