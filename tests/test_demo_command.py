"""`cityops demo` (what `make demo` runs) migrates, seeds and serves on a fresh SQLite database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cityops import devserver
from tests.conftest import BACKEND


@pytest.mark.skipif(BACKEND != "sqlite", reason="make demo runs on the embedded SQLite database")
def test_demo_serves_streets_and_locate(tmp_path: Path):
    port = devserver.free_ports(1)[0]
    env = {**os.environ, "CITYOPS_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}", "CITYOPS_PORT": str(port)}
    exe = Path(sys.executable).parent / "cityops"
    proc = subprocess.Popen([str(exe), "demo", "--small", "--no-feed", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else "demo exited"
            assert time.monotonic() < deadline, "demo did not come up"
            time.sleep(0.3)
        streets = httpx.get(base + "/api/v1/areas", params={"level": "street"}).json()
        codes = {i["code"] for i in streets["items"]}
        assert len(codes) == 17 and "310117001" in codes and "310117121" in codes
        hit = httpx.get(base + "/api/v1/grids/locate", params={"lat": 31.03, "lon": 121.22}).json()
        assert re.fullmatch(r"310117\d{9}", hit["grid_code"])
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert "127.0.0.1" in out  # it printed the URL
