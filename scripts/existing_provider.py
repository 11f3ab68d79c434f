#!/usr/bin/env python3
"""The existing Go provider (secrets-store-csi-driver-provider-aws 3.1.1), from its source.

The comparisons with the existing provider (its chart in deploy/compare_existing_chart.py,
its binary in the benchmark) need its release 3.1.1. The module proxy refuses that module,
so it comes from a source tree:

- by default ../shared/peer/secrets-store-csi-driver-provider-aws-3.1.1.tar.gz beside the
  repository (a `git archive` of the v3.1.1 tag), whose sha256 is checked;
- or EXISTING_PROVIDER_SOURCE: another copy of that tarball, or a directory holding the
  source, e.g. `git clone --branch v3.1.1 https://github.com/aws/secrets-store-csi-driver-provider-aws`.

A tarball is unpacked once per sha256 into the git-ignored target/existing-provider/<sha256>/;
a directory is used where it is. The binary is built as the upstream Makefile builds it
(static, with the version in its ldflags) into the git-ignored .tools/, named by the
source's digest, so a second run only checks the digest.

    existing_provider.py source      print the source tree's directory (unpacking if needed)
    existing_provider.py build       build the binary if needed and print its path

Both exit 2 when there is no source (the message says how to give one).
"""
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
VERSION = "3.1.1"
NAME = "secrets-store-csi-driver-provider-aws"
TARBALL_NAME = f"{NAME}-{VERSION}.tar.gz"
TARBALL_SHA256 = "58ebe06059b130e81e97978a8f33a5dcd72c456e2a6db7eff274967f0dcc0bba"
DEFAULT_SOURCE = ROOT.parent / "shared" / "peer" / TARBALL_NAME
WORK = ROOT / "target" / "existing-provider"
TOOLS = ROOT / ".tools"
MODULE = "github.com/aws/secrets-store-csi-driver-provider-aws"
HOW = (f"set EXISTING_PROVIDER_SOURCE to the {VERSION} tarball or to a clone of the v{VERSION} tag "
       f"(git clone --branch v{VERSION} https://{MODULE})")


class NoSource(Exception):
    """No source of the existing provider where it was looked for."""


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def given_source():
    """The source named by EXISTING_PROVIDER_SOURCE, else the default tarball."""
    named = os.environ.get("EXISTING_PROVIDER_SOURCE")
    return pathlib.Path(named) if named else DEFAULT_SOURCE


def source_dir(source=None):
    """The source tree's directory: a directory as given, a tarball unpacked once.

    Raises NoSource when the source does not exist; exits on a tarball of the expected
    name whose sha256 is not the release's, and on unsafe paths inside a tarball.
    """
    source = pathlib.Path(source) if source is not None else given_source()
    if not source.exists():
        raise NoSource(f"no {source}: {HOW}")
    if source.is_dir():
        return source
    digest = sha256_of(source)
    if source.name == TARBALL_NAME and digest != TARBALL_SHA256:
        sys.exit(f"{source}: sha256 {digest}, want {TARBALL_SHA256}")
    dest = WORK / digest
    if (dest / ".complete").is_file():
        return dest / "src"
    if dest.exists():
        shutil.rmtree(dest)
    with tarfile.open(source) as tar:
        for member in tar.getmembers():
            # The archive's top directory is stripped: src/ is the repository's root.
            parts = pathlib.PurePosixPath(member.name).parts[1:]
            if not parts or not (member.isfile() or member.isdir()):
                continue
            if ".." in parts or member.name.startswith("/"):
                sys.exit(f"{source}: unsafe path {member.name}")
            target = dest / "src" / pathlib.PurePosixPath(*parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    (dest / ".complete").write_text(f"{source}\n")
    return dest / "src"


def tree_digest(directory):
    """A digest of the Go sources and module files: the cache key of the binary."""
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file() and (path.suffix == ".go" or path.name in ("go.mod", "go.sum")):
            digest.update(str(path.relative_to(directory)).encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def build(source=None):
    """The existing provider's binary, built once per source digest; its path."""
    directory = source_dir(source)
    if not (directory / "go.mod").is_file() or MODULE not in (directory / "go.mod").read_text():
        sys.exit(f"{directory}: not the source of {MODULE} (no go.mod naming it)")
    binary = TOOLS / f"existing-provider-{VERSION}-{tree_digest(directory)[:16]}"
    if binary.is_file():
        return binary
    TOOLS.mkdir(exist_ok=True)
    # As the upstream Makefile: the version in the server package, a static binary.
    version = f"{MODULE}/server"
    ldflags = f"-X {version}.Version={VERSION} -X {version}.ProviderVersion={VERSION}"
    partial = binary.with_suffix(".partial")
    subprocess.run(["go", "build", "-ldflags", ldflags, "-o", str(partial), "."],
                   cwd=directory, env=dict(os.environ, CGO_ENABLED="0"), check=True)
    partial.rename(binary)
    return binary


def main(argv):
    if len(argv) != 2 or argv[1] not in ("source", "build"):
        sys.exit(__doc__)
    try:
        print(source_dir() if argv[1] == "source" else build())
    except NoSource as e:
        print(f"existing provider: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
