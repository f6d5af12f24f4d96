"""JupyterLab in a real browser: Debian's chromium, driven by Playwright, opens the walkthrough
(notebook 03), runs every cell, finds no error, moves a slider and sees the figure and the
"masks differ" line change. The notebook is a copy, so the tracked one is never touched.

The browser is the system's (`apt-get install chromium`; `.ci/run` installs it): Playwright's own
browser download cannot reach its servers from here.
"""

from __future__ import annotations

import json
import platform
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NOTEBOOK = "03_walk_through_one_layer.ipynb"
# Flags for a headless browser in a closed network (no background fetches, no sandbox as root).
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server over a folder holding a copy of the walkthrough; yields its URL."""
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine: install it with `apt-get install chromium` (.ci/run does)")
    pytest.importorskip("playwright", reason="install the dev extra: make setup")
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, tmp_path / NOTEBOOK)
    port, token = free_port(), "mwanda-test"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp_path}",
            "--allow-root",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start within a minute")
        yield f"{url}/lab/tree/{NOTEBOOK}?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def declared_python() -> str:
    """The Python version the notebooks' metadata names (what JupyterLab's kernel reports)."""
    nb = json.loads((ROOT / "notebooks" / NOTEBOOK).read_text())
    return nb["metadata"]["language_info"]["version"]


def masks_line(page) -> str:
    return page.locator(".jp-OutputArea-output pre", has_text="masks differ on").last.text_content()


def test_the_walkthrough_runs_in_jupyterlab_and_its_sliders_redraw(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(lab)
        page.locator(".jp-Notebook").first.wait_for(timeout=120_000)
        page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').wait_for(timeout=120_000)
        page.locator(".jp-Toolbar-kernelName", has_text="Python 3").first.wait_for(timeout=120_000)
        if platform.python_version() == declared_python():  # the kernel rewrites nothing on open
            page.wait_for_function(  # a modified mark while the kernel connects may clear; it must
                "() => !document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')",
                timeout=15_000,
            )
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        # every cell has run when no prompt shows [*] and the sliders are drawn
        page.locator(".widget-slider").first.wait_for(timeout=600_000)
        page.wait_for_function(
            "() => ![...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'))",
            timeout=600_000,
        )
        errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
        assert errors.count() == 0, errors.first.inner_text()
        before_line = masks_line(page)
        before_img = page.locator(".jp-OutputArea-output img").last.get_attribute("src")
        handle = page.locator(".widget-slider .noUi-handle").first  # alpha
        handle.focus()
        for _ in range(8):
            handle.press("ArrowRight")
        changed = page.wait_for_function(  # the redrawn line, once it says something new
            "(old) => { const t = [...document.querySelectorAll('.jp-OutputArea-output pre')]"
            ".map(e => e.textContent).filter(t => /masks differ on [0-9.]+%/.test(t)); "
            "return t.length && t[t.length - 1] !== old ? t[t.length - 1] : null; }",
            arg=before_line,
            timeout=120_000,
        ).json_value()
        assert "masks differ on" in changed and changed != before_line
        assert page.locator(".jp-OutputArea-output img").last.get_attribute("src") != before_img
        browser.close()
