"""Write docs/service.png: the service's web page after enrolling the demo speakers and identifying one.

    python scripts/service_screenshot.py [--model b2 | --checkpoint PATH] [--random-init] [-o docs/service.png]

Needs the ``serve`` extra, Playwright (``pip install playwright``) and a Chromium executable
(``apt-get install chromium``; Playwright's own browser download is not used).  The server runs in a
thread of this process on 127.0.0.1 with a database in a temporary folder; the audio is the shipped
demo (``redimnet/examples``).  With ``--random-init`` the model has random weights: the page looks the
same, the scores mean nothing.
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOKEN = "screenshot-token-0123456789abcdef"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def main() -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="b2")
    parser.add_argument("--checkpoint")
    parser.add_argument("--random-init", action="store_true")
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "service.png"))
    args = parser.parse_args()
    if not args.chromium:
        parser.error("no Chromium executable found; apt-get install chromium, or give --chromium PATH")

    from playwright.sync_api import expect, sync_playwright

    from redimnet.cli.models import model_from_arguments
    from redimnet.embedding.embedder import Embedder
    from redimnet.models.fingerprint import model_fingerprint
    from redimnet.service import Service, ServiceSettings, create_app
    from redimnet.service.background import BackgroundServer

    examples = ROOT / "redimnet" / "examples"
    embedder = Embedder(model_from_arguments(args), device="cpu")
    name = Path(args.checkpoint).name if args.checkpoint else args.model
    if args.random_init and not args.checkpoint:
        name += " (random weights)"
    with tempfile.TemporaryDirectory() as folder:
        settings = ServiceSettings(db=Path(folder) / "speakers.db", token=TOKEN, model_name=name)
        app = create_app(Service(embedder, settings, model_fingerprint(embedder.model)))
        with BackgroundServer(app) as server, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            page.goto(server.url + "/")
            page.fill("#token", TOKEN)
            for speaker, clip in (("Speaker A", "speaker_a_1.flac"), ("Speaker B", "speaker_b_1.flac")):
                page.set_input_files("#file-a", str(examples / clip))
                page.fill("#enroll-name", speaker)
                page.click("#enroll")
                expect(page.locator("#speakers")).to_contain_text(speaker)
            page.set_input_files("#file-a", str(examples / "speaker_a_2.flac"))
            page.click("#identify")
            expect(page.locator("#result .bar")).to_have_count(2)
            page.fill("#token", "")
            page.screenshot(path=args.output, full_page=True)
            browser.close()
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
