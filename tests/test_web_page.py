"""The web page in a real browser: Debian's chromium, headless, driven by Selenium through Debian's
chromium-driver, against ``trackprint serve`` over a library fingerprinted by ``trackprint up``.

Both packages are installed here with apt-get when missing (the tests run as root on Debian, as
tests/fixtures_pg.py does for PostgreSQL); Selenium is pointed at /usr/bin/chromedriver, so its own driver
download (Selenium Manager) never runs. A screenshot of each page lands in the test's tmp_path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from urllib.parse import quote

import pytest

from tests.web_library import real_library, served, served_tagged, tagged_library  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT_S = 30


def ensure_chromium() -> None:
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail("chromium and chromium-driver are missing and cannot be installed here (not root on Debian): "
                    "apt-get install chromium chromium-driver")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium",
                                        "chromium-driver"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


@pytest.fixture(scope="module")
def browser():
    ensure_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1400"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, condition, message: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.2).until(condition, message)


def texts(driver, css: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def test_the_page_shows_counts_failures_the_map_and_similar_tracks(browser, served, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, library, twins = served
    browser.get(base + "/")
    wait_for(browser, lambda d: d.find_element(By.ID, "count-persisted").text == "6", "the fingerprinted count")
    assert browser.find_element(By.ID, "count-discovered").text == "7"
    assert browser.find_element(By.ID, "count-failed").text == "1"
    assert browser.find_element(By.ID, "count-eta").text == "done"
    assert browser.find_element(By.ID, "failed-by").text == "unsupported_format 1"
    browser.find_element(By.CSS_SELECTOR, "#failures-box summary").click()
    rows = browser.find_elements(By.CSS_SELECTOR, "#failures tr.failure")
    assert len(rows) == 1 and str(library / "tones" / "broken.flac") in rows[0].text
    assert "unsupported_format" in rows[0].text

    # the map: one point per fingerprinted track, coloured by folder, with a legend
    points = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#map svg circle.point"), "the map")
    assert len(points) == 6
    assert {p.get_attribute("data-path") for p in points} == set(twins)
    assert {p.get_attribute("data-group") for p in points} == {"tones", "noise", "clicks"}
    assert len({p.get_attribute("fill") for p in points}) == 3
    assert sorted(texts(browser, "#legend li")) == ["clicks (2)", "noise (2)", "tones (2)"]
    browser.save_screenshot(str(tmp_path / "overview.png"))

    # a click on a point opens its track page: 25 percentile bars and its similar tracks, the twin first
    # (twins overlap on the map: the one drawn last, -b, is on top)
    target = str(library / "noise" / "noise-b.flac")
    next(p for p in points if p.get_attribute("data-path") == target).click()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#similar li.similar")) == 5,
             "the similar-tracks list")
    assert browser.find_element(By.ID, "track-title").text == target
    similar = texts(browser, "#similar li.similar a")
    assert similar[0] == twins[target] and target not in similar and len(set(similar)) == 5
    bars = browser.find_elements(By.CSS_SELECTOR, "#bars .bar")
    assert len(bars) == 25
    percentiles = [float(b.get_attribute("data-percentile")) for b in bars]
    assert all(0 < p < 100 for p in percentiles)
    widths = [b.find_element(By.CSS_SELECTOR, ".fill").get_attribute("style") for b in bars]
    assert all(f"width: {p:g}%" in w for p, w in zip(percentiles, widths))
    assert browser.find_elements(By.CSS_SELECTOR, "#map circle.point.current")[0].get_attribute("data-path") == target
    browser.save_screenshot(str(tmp_path / "track.png"))

    # following a similar track's link opens that track
    browser.find_element(By.CSS_SELECTOR, "#similar li.similar a").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "track-title").text == twins[target], "the twin's page")
    wait_for(browser, lambda d: texts(d, "#similar li.similar a")[:1] == [target], "the twin's similar tracks")

    # the search box
    box = browser.find_element(By.ID, "q")
    box.clear()
    box.send_keys("clicks", Keys.ENTER)
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results tr.result")) == 2, "two results")
    assert sorted(texts(browser, "#results tr.result a")) == sorted(p for p in twins if "/clicks/" in p)
    assert browser.current_url.endswith("#/find/clicks")
    browser.save_screenshot(str(tmp_path / "search.png"))


def test_a_track_page_by_its_address_and_an_unknown_track(browser, served):
    from selenium.webdriver.common.by import By

    base, library, twins = served
    target = str(library / "tones" / "tones-b.flac")
    browser.get(f"{base}/#/track/{quote(target, safe='')}")
    wait_for(browser, lambda d: texts(d, "#similar li.similar a")[:1] == [twins[target]], "the twin first")
    browser.get(f"{base}/#/track/{quote('/nowhere/x.flac', safe='')}")
    error = wait_for(browser, lambda d: d.find_element(By.ID, "track-error").text, "the error line")
    assert error.startswith("not_found:")


def test_the_map_of_a_tagged_library_is_coloured_by_genre(browser, served_tagged, tmp_path):
    """FLAC, MP3 and M4A files tagged by mutagen, stored by `trackprint up`: the legend lists their genres."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, library, tracks = served_tagged
    genre = {str(t.path): t.tags.get("genre", "(no genre)") for t in tracks}
    browser.get(base + "/")
    points = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#map svg circle.point"), "the map")
    assert len(points) == 6
    assert {p.get_attribute("data-path"): p.get_attribute("data-group") for p in points} == genre
    assert len({p.get_attribute("fill") for p in points}) == 4
    wait_for(browser, lambda d: len(texts(d, "#legend li")) == 4, "the legend")
    assert sorted(texts(browser, "#legend li")) == ["(no genre) (1)", "Electronic (1)", "Jazz (2)", "Rock (2)"]
    browser.save_screenshot(str(tmp_path / "genres.png"))

    box = browser.find_element(By.ID, "q")
    box.clear()
    box.send_keys("genre:jazz", Keys.ENTER)
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results tr.result")) == 2, "two results")
    assert sorted(texts(browser, "#results tr.result a")) == sorted(p for p, g in genre.items() if g == "Jazz")
