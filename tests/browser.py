"""Headless Debian Chromium driven by Playwright, for the dashboard tests."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

SHOTS = Path(__file__).resolve().parent.parent / "evals" / "out"
CHROMIUM = next(
    (p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None
)


VIEWPORT = {"viewport": {"width": 1400, "height": 900}}


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed: apt-get install -y chromium (.ci/run does it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(browser: Any, url: str) -> tuple[Any, list[str]]:
    """A page at ``url`` (1400 px wide) and the list its console errors are collected into.
    ``browser`` may be a browser context: its pages share a cache (plotly.js is parsed once)."""
    page = await browser.new_page(**({} if hasattr(browser, "browser") else VIEWPORT))
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(url)
    await page.wait_for_load_state("load")
    return page, errors


async def kpis(page: Any) -> dict[str, str]:
    """Headline figure -> its exact value (``data-value``)."""
    return await page.eval_on_selector_all(
        "[data-kpi]", "els => Object.fromEntries(els.map(e => [e.dataset.kpi, e.dataset.value]))"
    )


async def gantt_bars(page: Any, div: str = "gantt") -> dict[str, Any]:
    """What the Gantt chart drew: per panel, bars (label, lane, start, end) from the figure's
    data, and the number of bar shapes and text labels in the rendered SVG."""
    return await page.evaluate(
        """div => {
          const gd = document.getElementById(div);
          const bars = {planned: [], actual: []};
          for (const t of gd.data) {
            const panel = t.yaxis === 'y2' ? 'actual' : 'planned';
            t.y.forEach((lane, i) => bars[panel].push(
              {label: t.text[i], lane, start: t.base[i], end: t.base[i] + t.x[i], name: t.name}));
          }
          return {bars, points: gd.querySelectorAll('.barlayer .point').length,
                  texts: [...gd.querySelectorAll('.barlayer .bartext')].map(e => e.textContent)};
        }""",
        div,
    )
