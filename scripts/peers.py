#!/usr/bin/env python3
"""The peers measured and run beside our provider, built from their sources.

Two public Go projects that the Go module proxy here refuses, so they come from source
trees (their Go dependencies come from the module proxy as usual):

- existing-provider: the existing AWS provider, secrets-store-csi-driver-provider-aws
  3.1.1, compared with ours by the benchmark (its binary) and deploy/compare_existing_chart.py
  (its chart);
- sync-controller: the Secrets Store Sync Controller v0.0.4, which runs our provider as its
  sidecar in tests/it/sync_controller_e2e.rs.

Each comes from, by default, its tarball in ../shared/peer/ beside the repository (a
`git archive` of the tagged commit; its sha256 is checked), or from EXISTING_PROVIDER_SOURCE
or SYNC_CONTROLLER_SOURCE: another copy of that tarball, or a directory holding the source,
such as a `git clone` of the tag.

A tarball is unpacked once per sha256 into the git-ignored target/peers/<sha256>/; a
directory is used where it is. The binary is built as the upstream Makefile builds it
(static, with the version in its ldflags) into the git-ignored .tools/, named by a digest
of the source's Go files, so a second run only checks the digest.

    peers.py PEER source     print the source tree's directory (unpacking if needed)
    peers.py PEER build      build the binary if needed and print its path

PEER is existing-provider or sync-controller. Both exit 2 when there is no source (the
message says how to give one).
"""
import dataclasses
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
PEER_DIR = ROOT.parent / "shared" / "peer"
WORK = ROOT / "target" / "peers"
TOOLS = ROOT / ".tools"


@dataclasses.dataclass(frozen=True)
class Peer:
    """A peer: where its source is, how to check it, how its Makefile builds it."""
    name: str
    version: str
    module: str
    repository: str
    tag: str
    tarball_sha256: str
    source_env: str
    package: str
    ldflags: str

    @property
    def tarball_name(self):
        return f"{self.name}-{self.version}.tar.gz"

    @property
    def how(self):
        return (f"set {self.source_env} to the {self.version} tarball or to a clone of the {self.tag} tag "
                f"(git clone --branch {self.tag} https://{self.repository})")


PEERS = {
    "existing-provider": Peer(
        name="secrets-store-csi-driver-provider-aws",
        version="3.1.1",
        module="github.com/aws/secrets-store-csi-driver-provider-aws",
        repository="github.com/aws/secrets-store-csi-driver-provider-aws",
        tag="v3.1.1",
        tarball_sha256="58ebe06059b130e81e97978a8f33a5dcd72c456e2a6db7eff274967f0dcc0bba",
        source_env="EXISTING_PROVIDER_SOURCE",
        package=".",
        # Its Makefile: the version in the server package.
        ldflags=("-X github.com/aws/secrets-store-csi-driver-provider-aws/server.Version=3.1.1"
                 " -X github.com/aws/secrets-store-csi-driver-provider-aws/server.ProviderVersion=3.1.1"),
    ),
    "sync-controller": Peer(
        name="secrets-store-sync-controller",
        version="0.0.4",
        module="sigs.k8s.io/secrets-store-sync-controller",
        repository="github.com/kubernetes-sigs/secrets-store-sync-controller",
        tag="v0.0.4",
        tarball_sha256="444dbafe4f2a87b625d9d2c1c1b44399356732da106b5a1790a947dd52166258",
        source_env="SYNC_CONTROLLER_SOURCE",
        package="./cmd",
        # Its Makefile: the version in pkg/version (it reports it in its user agent).
        ldflags="-X sigs.k8s.io/secrets-store-sync-controller/pkg/version.BuildVersion=v0.0.4",
    ),
}


class NoSource(Exception):
    """No source of a peer where it was looked for."""


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def given_source(peer):
    """The source named by the peer's environment variable, else its default tarball."""
    named = os.environ.get(peer.source_env)
    return pathlib.Path(named) if named else PEER_DIR / peer.tarball_name


def source_dir(peer, source=None):
    """The source tree's directory: a directory as given, a tarball unpacked once.

    Raises NoSource when the source does not exist; exits on a tarball of the expected
    name whose sha256 is not the release's, and on unsafe paths inside a tarball.
    """
    source = pathlib.Path(source) if source is not None else given_source(peer)
    if not source.exists():
        raise NoSource(f"no {source}: {peer.how}")
    if source.is_dir():
        return source
    digest = sha256_of(source)
    if source.name == peer.tarball_name and digest != peer.tarball_sha256:
        sys.exit(f"{source}: sha256 {digest}, want {peer.tarball_sha256}")
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


def build(peer, source=None):
    """The peer's binary, built once per source digest; its path."""
    directory = source_dir(peer, source)
    go_mod = directory / "go.mod"
    if not go_mod.is_file() or f"module {peer.module}\n" not in go_mod.read_text():
        sys.exit(f"{directory}: not the source of {peer.module} (no go.mod naming it)")
    binary = TOOLS / f"{peer.name}-{peer.version}-{tree_digest(directory)[:16]}"
    if binary.is_file():
        return binary
    TOOLS.mkdir(exist_ok=True)
    partial = binary.with_suffix(".partial")
    subprocess.run(["go", "build", "-ldflags", peer.ldflags, "-o", str(partial), peer.package],
                   cwd=directory, env=dict(os.environ, CGO_ENABLED="0"), check=True)
    partial.rename(binary)
    return binary


def main(argv):
    if len(argv) != 3 or argv[1] not in PEERS or argv[2] not in ("source", "build"):
        sys.exit(__doc__)
    peer = PEERS[argv[1]]
    try:
        print(source_dir(peer) if argv[2] == "source" else build(peer))
    except NoSource as e:
        print(f"{argv[1]}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
