"""Starts `sluice serve` on a loopback port for the server tests and stops it after them.

Environment (set by native-cli/tests/serve_api.rs, which runs this suite under `cargo test`):
  SLUICE_BIN    the sluice binary under test
  SLUICE_MODEL  the GGUF to serve (the real SmolLM2-135M-Instruct from its package)
"""

import json
import os
import signal
import subprocess
import threading
import time

import httpx
import pytest

API_KEY = "test-key-123"
THREADS = "2"


def sluice_bin():
    return os.environ["SLUICE_BIN"]


def model_path():
    return os.environ["SLUICE_MODEL"]


class Server:
    """A running `sluice serve`: its URL, process, and the lines it printed."""

    def __init__(self, *extra, api_key=API_KEY, wait=True):
        args = [sluice_bin(), "serve", "--model", model_path(), "--port", "0",
                "--threads", THREADS, "--ctx", "2048", *extra]
        env = dict(os.environ)
        env.pop("SLUICE_API_KEY", None)
        if api_key:
            env["SLUICE_API_KEY"] = api_key
        self.api_key = api_key
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.stderr = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        first = self.proc.stdout.readline()
        assert "listening on http://" in first, f"unexpected first line: {first!r}; {self.stderr}"
        self.url = first.split("listening on ")[1].split()[0]
        self.curl_example = self.proc.stdout.readline() + self.proc.stdout.readline()
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        if wait:
            self.wait_ready()

    def _drain_stderr(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def headers(self):
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def wait_ready(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, f"server exited: {''.join(self.stderr)}"
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("server not ready in time")

    def post(self, path, body, **kw):
        headers = {**self.headers(), **kw.pop("headers", {})}
        return httpx.post(self.url + path, json=body, headers=headers, timeout=120, **kw)

    def metrics_text(self):
        return httpx.get(self.url + "/metrics", timeout=10).text

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


@pytest.fixture(scope="session")
def server():
    s = Server("--parallel", "4", "--queue", "8", "--max-body", "1MiB")
    yield s
    assert s.stop() == 0, "".join(s.stderr)


def report(name, value):
    """Prints a measurement as one JSON line (the closing note copies these)."""
    print(json.dumps({name: value}), flush=True)
