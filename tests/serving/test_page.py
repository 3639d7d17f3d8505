"""The web page at / in a real headless Chromium: pick a photo, see it, its label, its bars.

Needs Debian's `chromium` and `chromium-driver` (`make test` installs them when missing).
Selenium is pointed at /usr/bin/chromedriver, so it never tries to download a driver.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from serving_support import run_server

from catdog.serving.smoke import SAMPLE_LABEL, sample_photo

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = Path("/tmp/catdog-page.png")


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), (
        "the page test needs Debian's chromium and chromium-driver: run `make browser`"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1000,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_page_classifies_a_photo_in_a_real_browser(
    tmp_path: Path, reference_model: Path, browser: WebDriver
) -> None:
    photo = tmp_path / "cat.jpg"
    photo.write_bytes(sample_photo())
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    driver = browser
    with run_server(tmp_path, env={"CATDOG_MODEL": str(reference_model)}) as server:
        driver.get(server.url + "/")
        wait = WebDriverWait(driver, 20)
        wait.until(ec.text_to_be_present_in_element((By.ID, "model"), "model: "))
        driver.find_element(By.ID, "file").send_keys(str(photo))
        wait.until(ec.text_to_be_present_in_element((By.ID, "confidence"), "sure"))
        label = driver.find_element(By.ID, "label").text
        bars = [bar.text.split()[0] for bar in driver.find_elements(By.CSS_SELECTOR, "#bars .bar")]
        preview = driver.find_element(By.ID, "preview")
        shown = driver.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", preview
        )
        driver.save_screenshot(str(SCREENSHOT))
        driver.find_element(By.ID, "file").send_keys(str(notes))
        wait.until(ec.text_to_be_present_in_element((By.ID, "label"), "Not classified"))
        refusal = driver.find_element(By.ID, "confidence").text
    assert label.lower() == SAMPLE_LABEL
    assert bars == ["cat", "dog"]
    assert shown, "the photo preview did not render"
    assert "not_an_image" in refusal
