"""Screenshots of the HTML report in a real headless browser (Chromium), to look at the MathML and the figures.

    python benchmarks/screenshot_report.py                       # builds `pgverify report --quick --html`, shoots it
    python benchmarks/screenshot_report.py --html report.html    # shoots an existing report
    python benchmarks/screenshot_report.py --out-dir /tmp/shots --width 1100

Writes one PNG per part of the page (the top, the reward-to-go derivation, the errata, the figures) and prints
their paths. Needs Chromium (Debian: ``apt-get install -y chromium``); as root it runs with --no-sandbox. Nothing
is fetched: the report is self-contained and the browser runs with background networking disabled.

This is a script to rerun and look at, not a test: whether maths *looks* right needs eyes. The HTML's validity and
content are tested in tests/test_html_report.py.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PARTS = (("top", ""), ("reward-to-go", "#d-reward_to_go"), ("errata", "#errata"), ("figures", "#figures"))


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("no Chromium on PATH (Debian: apt-get install -y chromium)")


def build_html(path: Path) -> None:
    """`pgverify report --quick --html PATH` (its exit status says whether the checks passed; the page is
    written either way)."""
    proc = subprocess.run([sys.executable, "-m", "verify", "report", "--quick", "--no-color", "--html", str(path),
                           "--force"], capture_output=True, text=True)
    if not path.exists():
        sys.exit(f"pgverify report --html failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")


def _from(html: Path, anchor: str, tmp: Path) -> Path:
    """A copy of the page that starts at the element with id ``anchor``: headless Chromium's --screenshot does not
    scroll to a #fragment, so everything before the anchor is hidden instead (CSS only; the maths is untouched)."""
    css = (f"<style>body > * {{display:none}} body > #{anchor}, body > :has(#{anchor}) {{display:revert}} "
           f":has(> #{anchor}) > * {{display:none}} :has(> #{anchor}) > #{anchor}, #{anchor} ~ * "
           "{display:revert}</style>")
    page = tmp / f"{anchor}.html"
    page.write_text(html.read_text(encoding="utf-8").replace("</head>", css + "</head>", 1), encoding="utf-8")
    return page


def shoot(html: Path, out: Path, fragment: str, width: int, height: int) -> Path:
    with tempfile.TemporaryDirectory() as profile:
        page = _from(html, fragment.lstrip("#"), Path(profile)) if fragment else html
        cmd = [chromium(), "--headless", "--disable-gpu", "--disable-background-networking", "--no-first-run",
               "--hide-scrollbars", f"--user-data-dir={profile}/p", f"--window-size={width},{height}",
               f"--screenshot={out}", page.resolve().as_uri()]
        if os.geteuid() == 0:
            cmd.insert(1, "--no-sandbox")
        subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--html", help="an existing report (default: build one with pgverify report --quick --html)")
    ap.add_argument("--out-dir", default=None, help="where to write the PNGs (default: a new temporary directory)")
    ap.add_argument("--width", type=int, default=1100)
    ap.add_argument("--height", type=int, default=1400)
    args = ap.parse_args()
    out_dir = Path(args.out_dir or tempfile.mkdtemp(prefix="pgverify-shots-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    html = Path(args.html) if args.html else out_dir / "report.html"
    if not args.html:
        build_html(html)
    for name, fragment in PARTS:
        print(shoot(html, out_dir / f"report-{name}.png", fragment, args.width, args.height))


if __name__ == "__main__":
    main()
