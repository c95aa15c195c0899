"""A headless Chromium for pictures of the explorer page (and for the tests that read its DOM).

Needs Selenium (``pip install 'tinygrad-seq[browser]'``) and a Chromium with
its driver: Debian and Ubuntu ``sudo apt-get install chromium chromium-driver``;
elsewhere any Chrome or Chromium with the matching chromedriver on PATH.
Nothing is downloaded: Selenium is given the driver found here.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
# Flags for a machine without a display or network: no sandbox as root, no GPU, no background fetches.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")


class BrowserNotFound(RuntimeError):
    """No Selenium, Chromium or chromedriver here: the message says what to install."""


def find_chromium() -> tuple[str, str]:
    """(browser, driver) paths; raises BrowserNotFound saying what is missing and how to install it."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        raise BrowserNotFound("pictures of the explorer need Selenium: pip install 'tinygrad-seq[browser]'") from None
    browser = os.environ.get("CHROMIUM") or next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = " and ".join(n for n, p in (("Chromium", browser), ("chromedriver", driver)) if p is None)
        raise BrowserNotFound(f"no {missing} found: install them (Debian, Ubuntu: sudo apt-get install chromium "
                              "chromium-driver), or set CHROMIUM and CHROMEDRIVER to their paths")
    return browser, driver


def open_chromium(width: int = 1400, height: int = 900) -> Any:
    """A headless Chromium driven by Selenium (a ``selenium.webdriver.Chrome``), logging the console; quit() it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = find_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def screenshot(page: str | os.PathLike, png: str | os.PathLike, step: int | None = None, width: int = 1400,
               height: int = 900) -> Path:
    """A PNG of an explorer page (at backward step ``step``, from 1), as Chromium shows it."""
    if not Path(page).is_file():
        raise FileNotFoundError(f"screenshot: no page at {str(page)!r} ({'a folder' if Path(page).is_dir() else 'no such file'}); "
                                "give the HTML file viz.explore wrote (explorer.path)")
    url = Path(page).resolve().as_uri() + (f"#step={step}" if step is not None else "")
    driver = open_chromium(width, height)
    try:
        driver.get(url)
        driver.find_element("id", "step")  # the page has run its script
        png = Path(png)
        png.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(png))
    finally:
        driver.quit()
    return png


__all__ = ["BrowserNotFound", "find_chromium", "open_chromium", "screenshot"]
