"""Take a screenshot of the Temporal Web UI showing a finished demo session.

    .venv/bin/python scripts/ui_screenshot.py [--out docs/ui-session.png]

Runs the demo with the scripted model against its own state dir and ports (nothing of yours is
touched), then points headless Chromium (Debian's `chromium` package: `apt-get install
chromium`) at the session's page and at the list of sessions, and stops the server it started.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1600,1000",
    "--virtual-time-budget=20000",  # let the single-page app fetch and render
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def screenshot(chromium: str, url: str, out: Path, profile: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}", url],
        check=True,
        capture_output=True,
        timeout=120,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "ui-session.png")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("ui_screenshot: Chromium is not installed; run: apt-get install chromium")
        return 2
    sys.path.insert(0, str(ROOT))
    from autopilot.infra import load_settings, stop_embedded_server

    with tempfile.TemporaryDirectory(prefix="autopilot-screenshot-") as scratch:
        env = {
            **os.environ,
            "AUTOPILOT_STATE_DIR": f"{scratch}/state",
            "AUTOPILOT_TEMPORAL_PORT": str(free_port()),
            "AUTOPILOT_TEMPORAL_UI_PORT": str(free_port()),
        }
        try:
            demo = subprocess.run(
                [sys.executable, "-m", "autopilot.operate.demo", "--scripted"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            found = re.search(r"Started session (\S+)", demo.stdout)
            if demo.returncode != 0 or found is None:
                print(demo.stdout + demo.stderr)
                return 1
            ui = f"http://127.0.0.1:{env['AUTOPILOT_TEMPORAL_UI_PORT']}/namespaces/default"
            session_page = f"{ui}/workflows/{found.group(1)}"
            screenshot(chromium, session_page, args.out, Path(scratch) / "chromium")
            listing = args.out.with_name(args.out.stem + "-list" + args.out.suffix)
            screenshot(chromium, f"{ui}/workflows", listing, Path(scratch) / "chromium")
            print(f"wrote {args.out} and {listing}")
        finally:
            stop_embedded_server(load_settings(env))
    return 0


if __name__ == "__main__":
    sys.exit(main())
