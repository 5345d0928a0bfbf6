"""Fixtures: live `infer` servers for the OpenAI-SDK tests.

Env: ARLE_INFER_BIN (default target/release/infer), ARLE_TEST_MODEL (default
.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf; run scripts/fetch-test-assets.sh),
ARLE_INFER_ARGS (extra flags for every server, split on whitespace: `--backend cuda` runs the
same tests on the GPU).
Each server gets a free port, is ready when /readyz answers 200, and must exit 0 on SIGTERM.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import openai
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 300
API_KEY = "test-key-123"


def _path_from_env(var: str, default: str) -> Path:
    p = Path(os.environ.get(var, default))
    return p if p.is_absolute() else ROOT / p


def infer_bin() -> Path:
    p = _path_from_env("ARLE_INFER_BIN", "target/release/infer")
    if not p.exists():
        pytest.fail(f"{p} not found: build it with `cargo build --release --bin infer` (or set ARLE_INFER_BIN)")
    return p


def model_path() -> Path:
    p = _path_from_env("ARLE_TEST_MODEL", ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    if not p.exists():
        pytest.fail(f"{p} not found: run scripts/fetch-test-assets.sh (or set ARLE_TEST_MODEL)")
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, extra_args=(), api_key=None, model=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.api_key = api_key
        args = [str(infer_bin()), "--model", str(model or model_path()), "--host", "127.0.0.1", "--port", str(self.port)]
        if api_key:
            args += ["--api-key", api_key]
        args += os.environ.get("ARLE_INFER_ARGS", "").split()
        args += list(extra_args)
        env = dict(os.environ)
        env.pop("ARLE_API_KEY", None)
        self.proc = subprocess.Popen(args, env=env)
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.time() + READY_TIMEOUT_S
        while time.time() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"infer exited with {self.proc.returncode} before becoming ready")
            try:
                if requests.get(self.base + "/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        self.proc.kill()
        pytest.fail("infer did not become ready in time")

    def headers(self):
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base + "/v1", api_key=self.api_key or "unused", max_retries=0, timeout=300)

    def stats(self) -> dict:
        r = requests.get(self.base + "/v1/stats", headers=self.headers(), timeout=10)
        r.raise_for_status()
        return r.json()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail("infer did not exit within 30 s of SIGTERM")
        return self.proc.returncode


@pytest.fixture(scope="session")
def server():
    s = Server()
    yield s
    assert s.stop() == 0, "infer must exit 0 on SIGTERM"


@pytest.fixture(scope="session")
def client(server) -> openai.OpenAI:
    return server.client()


@pytest.fixture(scope="session")
def model_id(server) -> str:
    return requests.get(server.base + "/v1/models", timeout=10).json()["data"][0]["id"]


@pytest.fixture(scope="session")
def auth_server():
    s = Server(api_key=API_KEY)
    yield s
    assert s.stop() == 0


@pytest.fixture()
def make_server():
    """Starts extra servers with custom flags; stops them after the test."""
    started = []

    def make(extra_args=(), api_key=None, model=None):
        s = Server(extra_args, api_key, model)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()
