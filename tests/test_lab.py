"""`make lab` serves: the command line the Makefile runs (read from `make lab-command`, so this test
cannot drift from `make lab`) starts a JupyterLab that answers /api/status — as root too, where the
Makefile adds --allow-root (JupyterLab refuses root without it). Loopback only, a fresh token."""

import json
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_command() -> list[str]:
    """`make lab`'s recipe, with VENV pointed at the environment running the tests."""
    out = subprocess.run(["make", "-s", "--no-print-directory", "lab-command", f"VENV={sys.prefix}"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return shlex.split(out.stdout.strip())


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_lab_command_adds_allow_root_only_as_root():
    cmd = lab_command()
    assert cmd[:3] == [f"{sys.prefix}/bin/jupyter", "lab", "notebooks"]
    assert ("--allow-root" in cmd) == (os.geteuid() == 0)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_lab_serves(tmp_path):
    port, token = _free_port(), secrets.token_hex(16)
    cmd = lab_command() + ["--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
                           f"--IdentityProvider.token={token}"]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    log = open(tmp_path / "lab.log", "wb")
    # its own session: whatever the server signals on shutdown stays in its process group, away from pytest
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"token {token}"})
    try:
        deadline, status, body = time.monotonic() + 40, None, b""
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    status, body = response.status, response.read()
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.25)
        assert status == 200, f"no answer within 40 s (exit {server.poll()}):\n" + \
            (tmp_path / "lab.log").read_text(errors="replace")[-2000:]
        assert "started" in json.loads(body)  # /api/status: {"started": ..., "last_activity": ..., ...}
    finally:
        server.terminate()  # the server itself (SIGTERM), by its id
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
