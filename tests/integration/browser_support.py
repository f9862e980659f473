"""Driving the console in real headless Chromium (Debian's /usr/bin/chromium through Playwright).

Playwright's own browser download cannot reach the internet here, so the browser is
the system's. Every request a page makes is checked: one that would leave the
machine is refused and recorded, as are console errors and uncaught exceptions.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from support import REPO

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "tmp" / "artifacts" / "console"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


@dataclass
class Watched:
    """What the pages of one browser context did that a user should never see."""

    external: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # HTTP statuses the test provokes on purpose (a refused upload, a 400, a 401): the browser logs each.
    expected_statuses: tuple[int, ...] = ()

    def unexpected_errors(self) -> list[str]:
        expected = [f"status of {code}" for code in self.expected_statuses]
        return [e for e in self.errors if not any(x in e for x in expected)]


def chromium_path() -> str:
    found = CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")
    assert found, "Debian's chromium is not installed (`make test` installs it: apt-get install chromium)"
    return str(found)


@contextmanager
def browser_context(browser: Any, viewport: dict[str, int] = DESKTOP, **options: Any) -> Iterator[tuple[Any, Watched]]:
    """A fresh context (its own sessionStorage) whose every non-local request is refused and recorded."""
    watched = Watched()
    context = browser.new_context(viewport=viewport, accept_downloads=True, **options)

    def guard(route: Any) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            watched.external.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    context.on("page", lambda page: _watch(page, watched))
    try:
        yield context, watched
    finally:
        context.close()


def _watch(page: Any, watched: Watched) -> None:
    page.on("console", lambda message: message.type == "error" and watched.errors.append(message.text))
    page.on("pageerror", lambda error: watched.errors.append(f"uncaught: {error}"))


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sample_until(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 180,
                 every: float = 0.05) -> list[Any]:
    """Read the page repeatedly until `done(reading)`; every reading, in order."""
    readings = [read()]
    deadline = time.monotonic() + timeout
    while not done(readings[-1]):
        assert time.monotonic() < deadline, f"not done within {timeout}s; last reading {readings[-1]}"
        time.sleep(every)
        readings.append(read())
    return readings


def fits_width(page: Any) -> bool:
    """No horizontal scrolling of the page itself (wide tables scroll inside their own box)."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
