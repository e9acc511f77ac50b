"""The API docs page renders in a real headless Chromium with every host but loopback unreachable.

The app is served over real HTTP (uvicorn on loopback); Chromium resolves every other host
to nothing, so a page that still needed a CDN, a font or an icon from the internet would
render no operation. Skipped only where no Chromium is installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import httpx
import msgspec
import pytest
import uvicorn

from invite.app import create_app
from invite.kernel.settings import Settings
from invite.openapi import DOCS_PATH

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


async def _dump_dom(url: str, profile: Path) -> str:
    assert BROWSER is not None
    browser = await asyncio.create_subprocess_exec(
        BROWSER,
        "--headless",
        "--no-sandbox",  # the suite runs as root in CI
        "--disable-gpu",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--virtual-time-budget=20000",  # lets the page's scripts run to completion
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(browser.communicate(), timeout=90)
    assert browser.returncode == 0
    return out.decode()


@pytest.mark.skipif(BROWSER is None, reason="no Chromium on this machine")
async def test_docs_page_lists_the_operations_without_the_internet(
    settings: Settings, tmp_path: Path
) -> None:
    app = create_app(msgspec.structs.replace(settings, engine_enabled=False))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:  # uvicorn has no "started" event to wait on
            assert not serving.done(), "the server did not start"
            await asyncio.sleep(0.01)
        base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        async with httpx.AsyncClient(base_url=base) as client:
            page = (await client.get(DOCS_PATH)).text
            document = (await client.get(f"{DOCS_PATH}/openapi.json")).json()
        dom = await _dump_dom(base + DOCS_PATH, tmp_path / "profile")
    finally:
        server.should_exit = True
        await serving

    linked = re.findall(r"""(?:src|href)=["']([^"']+)""", page)
    assert linked, page[:500]
    assert all(url.startswith(f"{DOCS_PATH}/assets/") for url in linked), linked
    # Swagger UI renders one block per operation, its path in a data-path attribute
    rendered = set(re.findall(r'data-path="([^"]+)"', dom))
    assert rendered == set(document["paths"]), dom[:2000]
    assert "Invite Service" in dom
