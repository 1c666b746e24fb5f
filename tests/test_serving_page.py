"""Tests of the page of erlrestore-serve (erlrestore.serving.page): its files and listing, and in headless Chromium.

The browser test drives a real Chromium through Selenium and chromium-driver
(``apt-get install -y chromium chromium-driver`` on Debian/Ubuntu, ``pip
install selenium``, in the test extra); without them it skips, saying so.
``.ci/run`` installs them where apt-get can. Its screenshots are written
under the test's tmp folder, and copied to ``$ERLRESTORE_TEST_ARTIFACTS``
when that is set.
"""

import http.client
import os
import pathlib
import re
import shutil

import cv2
import numpy as np
import pytest

import erlrestore
from erlrestore.serving import page, tiling
from serving_testing import (
    MODEL_NAME,
    WAIT_SECONDS,
    ServeProcess,
    call,
    exported_models,
    loaded_repository,
    start_server,
    stop_server,
    wait_for,
)

MAX_REQUEST_BYTES = 256 * 1024
TILE, OVERLAP = 64, 8  # small tiles, so that the test photo is restored in several
ARTIFACTS_ENV = "ERLRESTORE_TEST_ARTIFACTS"
BROWSER_INSTALL_HINT = (
    "install Chromium and its driver (Debian/Ubuntu: apt-get install -y chromium chromium-driver) and Selenium "
    "(pip install selenium, or pip install -e '.[test]')"
)

models = pytest.fixture(exported_models, scope="module", name="models")  # (base, {version: keras model})
repository = pytest.fixture(loaded_repository, scope="module", name="repository")


@pytest.fixture(scope="module")
def server(repository):
    server, thread = start_server(repository, max_request_bytes=MAX_REQUEST_BYTES, request_timeout=5.0)
    yield server
    stop_server(server, thread)


def fetch(server, method, path):
    """``(status, headers dict, body bytes)`` of one request to the in-process ``server``."""
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


# --------------------------------------------------------------------------
# The page's files and its listing, without a browser.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("path, content_type, marker", [
    ("/", "text/html", b'<script src="/ui/page.js" defer></script>'),
    ("/ui", "text/html", b'<input type="file" id="file"'),
    ("/ui/", "text/html", b'id="result-image"'),
    ("/ui/page.js", "text/javascript", b'"/ui/config.json"'),
    ("/ui/page.css", "text/css", b".panels"),
])
def test_page_files_are_served_with_a_strict_policy(server, path, content_type, marker):
    status, headers, body = fetch(server, "GET", path)
    assert status == 200
    assert headers["Content-Type"].startswith(content_type)
    assert int(headers["Content-Length"]) == len(body) and marker in body
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self';" in policy and "connect-src 'self';" in policy
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
    head_status, head_headers, head_body = fetch(server, "HEAD", path)
    assert (head_status, head_body, head_headers["Content-Length"]) == (200, b"", str(len(body)))


def test_page_loads_nothing_from_elsewhere():
    html = (pathlib.Path(page.__file__).parent / "static" / "index.html").read_text(encoding="utf-8")
    script = (pathlib.Path(page.__file__).parent / "static" / "page.js").read_text(encoding="utf-8")
    references = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert references and all(ref.startswith(("/ui/", "data:", "#")) for ref in references), references
    assert "<script>" not in html and " style=" not in html  # nothing inline: the policy allows only files
    assert not re.search(r"https?://", html + script)


@pytest.mark.parametrize("method, path, status, message", [
    ("POST", "/", 405, r"method POST is not allowed here \(use GET, HEAD\)"),
    ("PUT", "/ui/page.js", 405, r"method PUT is not allowed"),
    ("GET", "/ui/missing.js", 404, r"unknown path '/ui/missing.js'"),
    ("GET", "/ui/../setup.py", 404, r"unknown path"),
    ("GET", "/ui/static/index.html", 404, r"unknown path"),
])
def test_other_methods_and_paths_are_refused(server, method, path, status, message):
    got, answer = call(server, method, path)
    assert got == status and re.search(message, answer["error"]), answer


def test_config_lists_the_models_and_the_limits(server):
    status, answer = call(server, "GET", page.CONFIG_PATH)
    assert status == 200
    versions = [{"version": v, "signatures": ["restore_bytes", "serving_default"], "restores_files": True}
                for v in ("2", "1")]
    assert answer["models"] == [{"name": MODEL_NAME, "default_version": "2", "versions": versions,
                                 "restores_files": True}]
    assert answer["signature_name"] == "restore_bytes" and answer["output_key"] == "restored_bytes"
    assert answer["progress_path"] == "/v1/progress/" and answer["request_id_header"] == "X-Request-Id"
    assert answer["max_request_bytes"] == MAX_REQUEST_BYTES
    assert answer["max_image_pixels"] == server.repository.max_image_pixels
    assert answer["tile"] == server.repository.tiling.tile


# --------------------------------------------------------------------------
# In a real headless Chromium, against erlrestore-serve.
# --------------------------------------------------------------------------


def browser_paths():
    """``(Chromium binary, chromedriver)``, each None when not found (``$ERLRESTORE_CHROMIUM`` names a binary)."""
    binary = os.environ.get("ERLRESTORE_CHROMIUM") or next(
        (found for found in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if found), None)
    driver = shutil.which("chromedriver") or next(
        (path for path in ("/usr/lib/chromium/chromedriver",) if os.path.exists(path)), None)
    return binary, driver


def browser_missing():
    """Why the browser test cannot run here (a message saying how to install what is missing), or None."""
    try:
        import selenium  # pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        return f"the page's browser test needs Selenium: {BROWSER_INSTALL_HINT}"
    if None in browser_paths():
        return f"the page's browser test needs Chromium and chromedriver on PATH: {BROWSER_INSTALL_HINT}"
    return None


BROWSER_MISSING = browser_missing()


def chromium(download_dir):
    """A Selenium driver of a headless Chromium, viewport 1280x800, downloading into ``download_dir``."""
    from selenium import webdriver  # pylint: disable=import-outside-toplevel
    from selenium.webdriver.chrome.service import Service  # pylint: disable=import-outside-toplevel

    binary, driver_path = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,800", "--no-proxy-server", "--no-first-run", "--disable-extensions",
                     "--disable-background-networking", "--disable-sync", "--disable-default-apps"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    # The page's viewport itself 1280x800 (--window-size counts the window, and screenshots show the viewport).
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver


def keep_artifact(path):
    """Copies ``path`` to ``$ERLRESTORE_TEST_ARTIFACTS`` when it is set."""
    folder = os.environ.get(ARTIFACTS_ENV)
    if folder:
        os.makedirs(folder, exist_ok=True)
        shutil.copy(path, os.path.join(folder, os.path.basename(path)))


def test_photo(height, width, seed):
    """A photo-like uint8 RGB image: smooth colour ramps with a little noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([x / width, y / height, 0.5 + 0.4 * np.sin((x + y) / 9.0)], axis=-1)
    image += np.random.default_rng(seed).normal(0.0, 0.04, image.shape)
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


test_photo.__test__ = False  # a helper, not a test


def write_png(path, image):
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


@pytest.mark.slow
@pytest.mark.skipif(BROWSER_MISSING is not None, reason=str(BROWSER_MISSING))
def test_page_restores_a_photo_in_headless_chromium(tmp_path, models):
    from selenium.common.exceptions import TimeoutException  # pylint: disable=import-outside-toplevel
    from selenium.webdriver.common.by import By  # pylint: disable=import-outside-toplevel
    from selenium.webdriver.support.ui import WebDriverWait  # pylint: disable=import-outside-toplevel

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = chromium(downloads)
    photo = test_photo(100, 150, seed=3)
    photo_path = write_png(tmp_path / "street.png", photo)
    base = models[0]
    process = ServeProcess(base, f"--tile={TILE}", f"--overlap={OVERLAP}", f"--max_request_bytes={MAX_REQUEST_BYTES}")
    try:
        assert f"page in a browser: http://127.0.0.1:{process.port}/" in process.text()
        driver.get(f"http://127.0.0.1:{process.port}/")

        def state(wanted):
            def reached(_):
                return driver.find_element(By.TAG_NAME, "body").get_attribute("data-state") in wanted
            try:
                WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.1).until(reached)
            except TimeoutException:
                raise AssertionError(f"the page did not reach {wanted}: {text('body')!r}\nserver log:\n"
                                     f"{process.text()}") from None
            return driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")

        def text(selector):
            return driver.find_element(By.CSS_SELECTOR, selector).text

        def upload(path):
            driver.find_element(By.ID, "file").send_keys(str(path))

        def message():
            box = driver.find_element(By.ID, "message")
            return box.get_attribute("data-kind"), text("#message-title"), text("#message-detail")

        assert state(("ready",)) == "ready"
        options = driver.find_elements(By.CSS_SELECTOR, "#model option")
        assert [option.text for option in options] == [MODEL_NAME]
        assert [o.text for o in driver.find_elements(By.CSS_SELECTOR, "#version option")] == ["latest (2)", "2", "1"]

        # A photo: restored through the server, shown beside the input, downloaded as a PNG.
        upload(photo_path)
        assert state(("done", "error")) == "done", message()
        tiles = tiling.TileSettings(TILE, OVERLAP).count(100, 150)
        assert tiles > 1
        assert re.fullmatch(rf"{MODEL_NAME} version 2, [0-9.]+ s, {tiles} tiles", text("#result-info"))
        assert text("#input-info").startswith("150 \u00d7 100, PNG")
        sizes = driver.execute_script(
            "const i = document.getElementById('input-image'), r = document.getElementById('result-image');"
            "return [i.naturalWidth, i.naturalHeight, r.naturalWidth, r.naturalHeight, r.complete];")
        assert sizes == [150, 100, 150, 100, True]
        screenshot = tmp_path / "page.png"
        assert driver.save_screenshot(str(screenshot))
        keep_artifact(screenshot)

        driver.find_element(By.ID, "download").click()
        downloaded = downloads / "street-restored.png"
        wait_for(lambda: downloaded.is_file() and not list(downloads.glob("*.crdownload")), WAIT_SECONDS,
                 "the browser to download the result")
        restored = cv2.cvtColor(cv2.imread(str(downloaded), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
        direct = erlrestore.restore(photo, model=str(base / MODEL_NAME / "2"), tile=TILE, overlap=OVERLAP)
        assert restored.dtype == np.uint8 and restored.shape == photo.shape
        assert np.abs(restored.astype(int) - direct.astype(int)).max() <= 1  # within 1/255
        assert np.abs(restored.astype(int) - photo.astype(int)).max() > 5  # the model did something

        # A model the server does not serve: the server's own 404 text is shown.
        driver.execute_script("const s = document.getElementById('model'); s.add(new Option('nope', 'nope'));"
                              "s.value = 'nope'; s.dispatchEvent(new Event('change'));")
        driver.find_element(By.ID, "again").click()
        assert state(("error",)) == "error"
        kind, title, detail = message()
        assert (kind, title) == ("unknown-model", "Model \u201cnope\u201d is not served here")
        assert f"The server said: model 'nope' is not served here (models: {MODEL_NAME})" in detail
        error_shot = tmp_path / "page-error.png"
        assert driver.save_screenshot(str(error_shot))
        keep_artifact(error_shot)

        # Not an image.
        notes = tmp_path / "notes.txt"
        notes.write_text("not a photo\n", encoding="utf-8")
        upload(notes)
        wait_for(lambda: message()[0] == "not-image", WAIT_SECONDS, "the not-an-image message")
        assert message()[1] == "\u201cnotes.txt\u201d is not an image"

        # Larger than the server's --max_request_bytes: refused by the page, naming the limit.
        driver.execute_script("const s = document.getElementById('model'); s.value = 'memd';"
                              "s.dispatchEvent(new Event('change'));")
        big = write_png(tmp_path / "big.png", np.random.default_rng(0).integers(0, 256, (320, 400, 3), np.uint8))
        upload(big)
        wait_for(lambda: message()[0] == "too-large", WAIT_SECONDS, "the too-large message")
        assert message()[1] == "The photo is too large for this server"
        assert "--max_request_bytes" in message()[2] and "262 kB this server takes" in message()[2]
        # No script error; the only failed loads are the unknown model's 404 and progress polls that came
        # before their request (404 until the server has it).
        logs = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert all("/v1/models/nope:predict" in line or "/v1/progress/page-" in line for line in logs), logs
    finally:
        driver.quit()
        process.stop()
