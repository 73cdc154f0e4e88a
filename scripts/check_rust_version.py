#!/usr/bin/env python3
"""Fails when a compiler hookline is built with is older than a dependency needs.

Compares three numbers:
  - the highest `rust-version` in the resolved dependency tree (`cargo metadata`, Linux
    targets, dev-dependencies included since tests and benches are built too);
  - `rust-version` in Cargo.toml, which must be at least that;
  - the toolchain of every `FROM rust:<version>...` in deploy/Dockerfile, which must be at
    least Cargo.toml's (and be an exact x.y.z tag, so the image is reproducible).

Usage: scripts/check_rust_version.py [--dockerfile deploy/Dockerfile]
"""

import argparse
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def version(text):
    """'1.91' or '1.91.1' -> (1, 91, 1); missing parts count as 0."""
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def shown(v):
    return ".".join(str(p) for p in v)


def highest_dependency_requirement():
    out = subprocess.run(
        [
            "cargo", "metadata", "--format-version", "1", "--locked",
            "--filter-platform", "x86_64-unknown-linux-gnu",
        ],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    meta = json.loads(out)
    resolved = {node["id"] for node in meta["resolve"]["nodes"]}
    root = meta["resolve"]["root"]
    needs = [
        (version(p["rust_version"]), f'{p["name"]} {p["version"]}')
        for p in meta["packages"]
        if p["id"] in resolved and p["id"] != root and p.get("rust_version")
    ]
    return max(needs)


def dockerfile_toolchains(path):
    found = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        m = re.match(r"\s*FROM\s+(?:--platform=\S+\s+)?rust:(\S+)", line, re.IGNORECASE)
        if m:
            tag = m.group(1).split("@")[0]
            exact = re.match(r"(\d+\.\d+\.\d+)(?:-|$)", tag)
            found.append((n, tag, version(exact.group(1)) if exact else None))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dockerfile", default=str(ROOT / "deploy" / "Dockerfile"))
    args = parser.parse_args()
    problems = []

    need, crate = highest_dependency_requirement()
    manifest = tomllib.loads((ROOT / "Cargo.toml").read_text())
    declared_text = manifest["package"].get("rust-version")
    if declared_text is None:
        problems.append("Cargo.toml: [package] rust-version is not set")
        declared = need
    else:
        declared = version(declared_text)
        if declared < need:
            problems.append(
                f"Cargo.toml: rust-version = {declared_text!r}, but {crate} needs {shown(need)}"
            )

    dockerfile = Path(args.dockerfile)
    toolchains = dockerfile_toolchains(dockerfile)
    if not toolchains:
        problems.append(f"{dockerfile}: no `FROM rust:<version>` stage")
    for line, tag, v in toolchains:
        where = f"{dockerfile}:{line}: rust:{tag}"
        if v is None:
            problems.append(f"{where} is not an exact x.y.z version tag")
        elif v < need:
            problems.append(f"{where} is older than {shown(need)}, which {crate} needs")
        elif v < declared:
            problems.append(f"{where} is older than Cargo.toml's rust-version {declared_text}")

    print(f"highest rust-version among dependencies: {shown(need)} ({crate})")
    print(f"Cargo.toml rust-version: {declared_text}")
    for line, tag, _ in toolchains:
        print(f"{dockerfile.name}:{line}: rust:{tag}")
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
