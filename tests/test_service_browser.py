"""The web page in a real headless browser (Chromium from the system, driven by Playwright).

Skipped when Playwright or a Chromium executable is not installed (``apt-get install chromium`` and
``pip install playwright``; Playwright's own browser download is never used).  The server runs in a
thread of this process on 127.0.0.1.
"""

import os
import shutil
import warnings

import numpy as np
import pytest
import soundfile
import torch

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("REDIMNET_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no Chromium executable (apt-get install chromium)", allow_module_level=True)

import redimnet  # noqa: E402
from redimnet.models.fingerprint import model_fingerprint  # noqa: E402
from redimnet.service import Service, ServiceSettings, create_app  # noqa: E402
from redimnet.service.background import BackgroundServer  # noqa: E402
from redimnet.testing.synth import synthesize, voice_for  # noqa: E402

TOKEN = "browser-token-0123456789abcdef"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # a synthetic microphone (Chromium's test tone) that needs no permission prompt
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]


def write_clip(path, speaker, seed):
    soundfile.write(path, synthesize(voice_for(0, speaker), 2.0, np.random.default_rng(seed)), 16000)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, one_thread):
    torch.manual_seed(0)
    embedder = redimnet.Embedder(redimnet.build("b0").eval(), device="cpu", max_seconds=4.0, overlap_seconds=1.0)
    folder = tmp_path_factory.mktemp("browser")
    settings = ServiceSettings(db=folder / "speakers.db", token=TOKEN, model_name="b0-test", max_wait=0.002)
    app = create_app(Service(embedder, settings, model_fingerprint(embedder.model)))
    with BackgroundServer(app) as running:
        running.service = app.state.service
        yield running


@pytest.fixture(scope="module")
def page():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                yield browser.new_page(viewport={"width": 1100, "height": 900})
            finally:
                browser.close()


@pytest.mark.slow
def test_upload_verify_enroll_identify_and_errors(server, page, tmp_path):
    a1, a2 = write_clip(tmp_path / "alice-1.wav", 1, 1), write_clip(tmp_path / "alice-2.wav", 1, 2)
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"these are notes, not audio\n" * 10)
    problems = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    page.goto(server.url + "/")
    sync_api.expect(page.locator("#model")).to_contain_text("b0-test")

    page.set_input_files("#file-a", str(a1))
    page.set_input_files("#file-b", str(a2))
    page.click("#verify")
    sync_api.expect(page.locator("#result")).to_contain_text("score")
    shown = float(page.locator("#result .bar .value").inner_text())
    with open(a1, "rb") as first, open(a2, "rb") as second:  # the API's own answer is the oracle
        import httpx

        expected = httpx.post(server.url + "/v1/verify", files=[("audio", first), ("audio2", second)]).json()["score"]
    assert shown == pytest.approx(expected, abs=1e-4)
    assert page.locator("#error").is_hidden()

    page.set_input_files("#file-a", str(bad))
    page.click("#verify")
    sync_api.expect(page.locator("#error")).to_be_visible()
    sync_api.expect(page.locator("#error")).to_contain_text("notes.wav")
    sync_api.expect(page.locator("#error")).to_contain_text("not a readable audio file")

    page.set_input_files("#file-a", str(a1))
    page.fill("#enroll-name", "Alice <b>")
    page.click("#enroll")
    sync_api.expect(page.locator("#error")).to_contain_text("Bearer")  # no token typed yet
    page.fill("#token", TOKEN)
    page.click("#enroll")
    sync_api.expect(page.locator("#speakers")).to_contain_text("Alice <b>")  # shown as text, not markup
    assert page.locator("#speakers b").count() == 0

    page.set_input_files("#file-a", str(a2))
    page.click("#identify")
    sync_api.expect(page.locator("#result .bar .name")).to_have_text(["Alice <b>"])
    page.select_option("#verify-speaker", "Alice <b>")
    page.click("#verify")
    sync_api.expect(page.locator("#result")).to_contain_text("A against Alice <b>")

    from redimnet.testing.synth import generate_conversation

    generate_conversation(tmp_path / "meeting.wav", speakers=2, seconds=12.0, seed=2)
    page.set_input_files("#file-a", str(tmp_path / "meeting.wav"))
    page.click("#diarize")
    sync_api.expect(page.locator("#result")).to_contain_text("Diarize:")
    assert page.locator("#result .timeline .segment").count() >= 1
    assert page.locator("#result .legend > span").count() >= 1

    # record from the (fake) microphone: MediaRecorder -> decoded -> WAV -> verified against file B
    page.click("button.record[data-slot='a']")
    sync_api.expect(page.locator("button.record[data-slot='a']")).to_have_text("Stop")
    page.wait_for_timeout(1500)
    page.click("button.record[data-slot='a']")
    sync_api.expect(page.locator("#file-a")).to_have_value("")  # the recording replaced the chosen file
    sync_api.expect(page.locator("#play-a")).to_be_visible()
    service, uploads = server.service, []
    prepare_upload = service.prepare

    def recording_prepare(upload):
        uploads.append((upload.filename, upload.read()[:4]))
        return prepare_upload(upload)

    service.prepare = recording_prepare
    try:
        page.select_option("#verify-speaker", "")
        page.click("#verify")
        sync_api.expect(page.locator("#result")).to_contain_text("A against B")
    finally:
        del service.prepare
    assert uploads == [("recording-a.wav", b"RIFF"), ("alice-2.wav", b"RIFF")]
    sync_api.expect(page.locator("#result")).to_contain_text("A against B")
    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()

    screenshot = tmp_path / "service.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert problems == []
