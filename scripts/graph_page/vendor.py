"""Vendor the graph library that `memsvc graph` pages inline, from npm into the package.

`make graph-assets` runs `npm ci` here (package.json pins the version, package-lock.json the
tarball's hash), then this script copies the minified browser build and its license into
memsvc/graph_assets/ and writes VENDORED.json (package, version, file, sha256, license).
The package ships those files, so `pip install memsvc` needs neither npm nor a network;
tests/test_graph_page.py checks that the vendored file is the version package.json pins.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parents[1] / "memsvc" / "graph_assets"
PACKAGE = "cytoscape"
BUILD = "dist/cytoscape.min.js"


def main() -> None:
    pinned = json.loads((HERE / "package.json").read_text())["dependencies"][PACKAGE]
    src = HERE / "node_modules" / PACKAGE
    meta = json.loads((src / "package.json").read_text())
    if meta["version"] != pinned:
        raise SystemExit(
            f"node_modules has {PACKAGE} {meta['version']}, package.json pins {pinned}"
        )
    body = (src / BUILD).read_bytes()
    name = Path(BUILD).name
    (OUT / name).write_bytes(body)
    shutil.copyfile(src / "LICENSE", OUT / f"LICENSE.{PACKAGE}")
    manifest = {
        "package": PACKAGE,
        "version": meta["version"],
        "file": name,
        "sha256": hashlib.sha256(body).hexdigest(),
        "license": meta["license"],
        "source": f"npm {PACKAGE}@{meta['version']} {BUILD}",
    }
    (OUT / "VENDORED.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"vendored {PACKAGE} {meta['version']} ({len(body)} bytes) into {OUT}")


if __name__ == "__main__":
    main()
