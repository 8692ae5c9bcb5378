"""The Dagster UI over the demo's result, checked in a real headless Chromium (Debian's package)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import missing_tool

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a closed network: without the background-networking ones Chromium keeps dialling out.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
COLLECT = """() => ({
  nodes: [...document.querySelectorAll('foreignObject')].map(fo => ({
    x: +fo.getAttribute('x'), y: +fo.getAttribute('y'), w: +fo.getAttribute('width'),
    h: +fo.getAttribute('height'),
    name: ((fo.firstElementChild && fo.firstElementChild.innerText) || '').trim().split('\\n')[0].trim()})),
  edges: [...document.querySelectorAll('path')]
    .filter(p => (p.getAttribute('stroke') || '').includes('lineage-edge')).map(p => p.getAttribute('d')),
})"""


EXPECTED_EDGES = {("events", "stg_demo__events"), ("users", "stg_demo__users")}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _edges(graph: dict[str, list[dict[str, object]]]) -> set[tuple[str, str]]:
    """Match each drawn edge's end points to the node boxes they touch."""
    found = set()
    for d in graph["edges"]:
        numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", str(d))]
        (x1, y1), (x2, y2) = numbers[:2], numbers[-2:]
        source = [n for n in graph["nodes"] if abs(n["x"] + n["w"] - x1) < 15 and n["y"] <= y1 <= n["y"] + n["h"]]
        target = [n for n in graph["nodes"] if abs(n["x"] - x2) < 15 and n["y"] <= y2 <= n["y"] + n["h"]]
        if source and target:
            found.add((source[0]["name"], target[0]["name"]))
    return found


def test_asset_graph_shows_replication_staging_and_the_edge(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    # the tools first: without them, skip (or fail in CI) before building the demo, which takes a minute
    try:
        from playwright import sync_api
    except ImportError:
        missing_tool("playwright is not installed (it is in the [test] extra)")
    if not Path(CHROMIUM).exists():
        missing_tool(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium); .ci/run installs it")
    demo_result: dict[str, object] = request.getfixturevalue("demo_result")
    root = Path(demo_result["root"])
    env = dict(demo_result["env"], OSO_HOME=str(root / "oso_home"), DAGSTER_HOME=str(root / "dagster_home"))
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-m", "oso_dagster.definitions",
         "-h", "127.0.0.1", "-p", str(port)],
        env=env, cwd=demo_result["cwd"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "dagster-webserver did not start"
                time.sleep(1)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/asset-groups", wait_until="networkidle")
            skip = page.get_by_role("button", name="Skip")
            if skip.count():
                skip.first.click()
            page.locator("foreignObject", has_text="stg_demo__events").first.wait_for(timeout=60_000)
            # edges are drawn (and nodes settle) after the boxes appear: read the graph until it holds still
            graph, settle = page.evaluate(COLLECT), time.monotonic() + 30
            while not _edges(graph) >= EXPECTED_EDGES and time.monotonic() < settle:
                page.wait_for_timeout(500)
                graph = page.evaluate(COLLECT)
            page.screenshot(path=str(tmp_path / "asset-graph.png"))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    names = {n["name"] for n in graph["nodes"]}
    assert {"events", "products", "users", "stg_demo__events", "stg_demo__products", "stg_demo__users"} <= names
    edges = _edges(graph)
    assert edges >= EXPECTED_EDGES, edges
    assert (tmp_path / "asset-graph.png").stat().st_size > 10_000
