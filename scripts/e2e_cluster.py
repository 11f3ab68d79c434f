#!/usr/bin/env python3
"""A single-node Kubernetes cluster built from source, our chart installed by helm, and the
existing provider's README walk-through replayed on it, then the existing chart (3.1.1)
upgraded to ours and back (docs/driver.md, "Tested on a real node").

    sudo scripts/e2e-cluster [--provider-bin PATH] [--keep]     (runs this file)

Everything runs as root inside private namespaces this script creates (network, mount,
PID): a bridge with private addresses, containerd and the kubelet's directories, and
every process, are gone when it ends. What it cannot keep private it restores on success,
failure and interrupt: the kubelet's sysctls (vm.overcommit_memory, kernel.panic,
kernel.panic_on_oops), the cgroups it and containerd create at the root of each
hierarchy, and any of HOST_PATHS a program creates by default. It prints each host change
it made and undid.

Built from source and cached in .tools/ (Go module proxy, pins in tests/kubenode/go.mod and
tests/kubeserver/go.mod): kube-apiserver and etcd (kubeserver), kube-controller-manager,
kube-scheduler, kubelet and kubectl v1.37.2, the driver v1.6.0, and stand-ins for the
driver chart's node-driver-registrar and livenessprobe sidecars (their modules are not
served here). Debian's containerd, runc, CNI plugins, umoci and busybox-static run the
pods; images are built locally with umoci and imported into containerd (no registry).
AWS is moto, reached through the chart's `env` value (AWS_ENDPOINT_URL); a stand-in for
the EKS Pod Identity agent answers at 169.254.170.23. The existing provider is built from
its source by scripts/peers.py (skipped without it, unless REQUIRE_PEER=1).

Exit status 0 when every step of the walk-through held; 77 when it cannot run here (not
root, no Go); 1 otherwise.
"""
import argparse
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools"
NODE_TOOLS = TOOLS / "node"
KUBE_VERSION = "v1.37.2"
DRIVER_VERSION = "v1.6.0"
PACKAGES = ["containerd", "runc", "containernetworking-plugins", "umoci", "busybox-static", "iptables",
            "ca-certificates"]
# The node's private network (in its own namespace): pods on a bridge, the control plane
# and moto on the bridge's address, the API server's Service address DNAT'ed to it.
BRIDGE = "cni0"
BRIDGE_IP = "10.88.0.1"
POD_CIDR = "10.88.0.0/16"
SERVICE_CIDR = "10.96.0.0/24"
SERVICE_IP = "10.96.0.1"
APISERVER_PORT = 6443
MOTO_PORT = 5000
NODE = "node-1"
REGION = "us-east-1"
# moto keeps each account apart: the role is in the account that boto3's test keys use,
# where the walk-through creates the secret.
ROLE = "arn:aws:iam::123456789012:role/nginx-deployment-role"
# As ./scripts/test builds it (the version it reports: helm's charts compare it).
KUBESERVER_LDFLAGS = ("-s -w -X k8s.io/component-base/version.gitVersion=v1.37.2"
                      " -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37")
SYSCTLS = ["vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"]
CGROUP_ROOT = pathlib.Path("/sys/fs/cgroup")
CHART = ROOT / "deploy/helm/secrets-store-csi-driver-provider-aws"
DRIVER_CHART_NAME = "secrets-store-csi-driver"


def log(message):
    print(f"e2e-cluster: {message}", flush=True)


def run(*args, check=True, capture=False, env=None, timeout=600, input=None):
    result = subprocess.run([str(a) for a in args], check=False, text=True, env=env, timeout=timeout,
                            input=input, capture_output=capture)
    if check and result.returncode != 0:
        detail = f"\n{result.stdout}{result.stderr}" if capture else ""
        raise SystemExit(f"e2e-cluster: {' '.join(map(str, args))} failed with {result.returncode}{detail}")
    return result


# ---------------------------------------------------------------- outside: tools, host state
def ensure_packages():
    missing = [p for p in PACKAGES
               if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]
    if missing:
        log(f"installing Debian packages: {' '.join(missing)}")
        run("apt-get", "update", "-qq")
        run("apt-get", "install", "-y", "-qq", *missing,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def go_build(module, out, package, ldflags="", cgo=True):
    env = dict(os.environ)
    if not cgo:
        env["CGO_ENABLED"] = "0"
    run("go", "-C", ROOT / module, "build", f"-ldflags={ldflags}", "-o", out, package, env=env)


def ensure_tools():
    """Builds what is missing; Go's caches make a rebuild of an unchanged tool seconds."""
    if shutil.which("go") is None:
        log("SKIPPED: Go 1.26 is needed to build the cluster's programs")
        sys.exit(77)
    NODE_TOOLS.mkdir(parents=True, exist_ok=True)
    version = f"-s -w -X k8s.io/component-base/version.gitVersion={KUBE_VERSION}"
    version += f" -X k8s.io/client-go/pkg/version.gitVersion={KUBE_VERSION}"
    for tool in ["kubelet", "kube-controller-manager", "kube-scheduler", "kubectl"]:
        log(f"go build {tool} {KUBE_VERSION} -> .tools/node/{tool}")
        go_build("tests/kubenode", NODE_TOOLS / tool, f"k8s.io/kubernetes/cmd/{tool}", version)
    for tool in ["registrar", "livenessprobe", "pause"]:
        go_build("tests/kubenode", NODE_TOOLS / tool, f"./{tool}", cgo=False)
    log("go build tests/kubeserver -> .tools/kubeserver")
    go_build("tests/kubeserver", TOOLS / "kubeserver", ".", KUBESERVER_LDFLAGS)
    log(f"go build the driver {DRIVER_VERSION} -> .tools/secrets-store-csi-driver")
    go_build("tests/csidriver", TOOLS / "secrets-store-csi-driver",
             "sigs.k8s.io/secrets-store-csi-driver/cmd/secrets-store-csi-driver",
             f"-X sigs.k8s.io/secrets-store-csi-driver/pkg/version.BuildVersion={DRIVER_VERSION}")
    if not (TOOLS / "helm").is_file():
        raise SystemExit("e2e-cluster: no .tools/helm: run ./scripts/test once (it installs helm v3.22.0)")
    if not (ROOT / ".venv/bin/moto_server").is_file():
        raise SystemExit("e2e-cluster: no .venv/bin/moto_server: run ./scripts/test once (it installs moto)")


def read_sysctls():
    return {name: (pathlib.Path("/proc/sys") / name).read_text().strip() for name in SYSCTLS}


def restore_sysctls(saved):
    for name, value in saved.items():
        path = pathlib.Path("/proc/sys") / name
        now = path.read_text().strip()
        if now != value:
            path.write_text(value)
            log(f"host: restored {name.replace('/', '.')} = {value} (the kubelet had set {now})")


def cgroup_dirs():
    """The directories at the root of each cgroup hierarchy."""
    found = set()
    for hierarchy in CGROUP_ROOT.iterdir():
        if hierarchy.is_dir() and not hierarchy.is_symlink():
            found.update(d for d in hierarchy.iterdir() if d.is_dir())
    return found


def remove_cgroups(before):
    for top in sorted(cgroup_dirs() - before):
        # Deepest first: a cgroup goes only once it has no children (and no tasks).
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            try:
                directory.rmdir()
            except OSError:
                pass
        try:
            top.rmdir()
            log(f"host: removed cgroup {top}")
        except OSError as e:
            log(f"host: could not remove cgroup {top}: {e}")


# Host directories the cluster's programs create when a setting is missed (each is
# pointed into the work directory): any that appears is removed and reported.
HOST_PATHS = ["/usr/libexec/kubernetes", "/var/lib/kubelet", "/var/log/pods", "/var/log/containers",
              "/etc/kubernetes", "/etc/cni/net.d", "/var/lib/cni", "/var/lib/containerd",
              "/run/containerd", "/run/secrets-store-csi-providers"]


def remove_new_host_paths(before):
    for path in map(pathlib.Path, HOST_PATHS):
        if path.exists() and path not in before:
            shutil.rmtree(path, ignore_errors=True)
            log(f"host: removed {path}, which a program of the cluster created")


def existing_provider():
    """The existing provider 3.1.1 (its binary and its source, which holds its chart) from
    scripts/peers.py, for the walk from its chart to ours and back; skipped without its
    source unless REQUIRE_PEER=1."""
    import peers  # (scripts/, beside this file)
    try:
        source = peers.source_dir(peers.PEERS["existing-provider"])
    except peers.NoSource as e:
        if os.environ.get("REQUIRE_PEER") == "1":
            raise SystemExit(f"e2e-cluster: the existing provider's source is required: {e}")
        log(f"SKIPPED: the existing chart to ours and back ({e})")
        return None
    log("the existing provider 3.1.1 from its source (scripts/peers.py)")
    return peers.build(peers.PEERS["existing-provider"]), source


def outside(args):
    if os.geteuid() != 0:
        log("SKIPPED: the cluster needs root (containerd, the kubelet's mounts, namespaces)")
        return 77
    ensure_packages()
    ensure_tools()
    provider = pathlib.Path(args.provider_bin) if args.provider_bin else (
        ROOT / "target/debug/secrets-store-csi-driver-provider-aws")
    if not args.provider_bin:
        run("cargo", "build", "--locked", "--bin", "secrets-store-csi-driver-provider-aws", timeout=3600)
    existing = existing_provider()
    work = pathlib.Path(tempfile.mkdtemp(prefix="e2e-", dir=ROOT / "target"))
    saved = read_sysctls()
    cgroups_before = cgroup_dirs()
    paths_before = {p for p in map(pathlib.Path, HOST_PATHS) if p.exists()}
    log(f"host: saved {', '.join(f'{k.replace(chr(47), chr(46))}={v}' for k, v in saved.items())}; work in {work}")
    inner = subprocess.Popen(
        ["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child",
         sys.executable, __file__, "--inside", str(work), "--provider-bin", str(provider)]
        + (["--existing-bin", str(existing[0]), "--existing-source", str(existing[1])] if existing else []))

    def forward(signum, _frame):
        inner.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        code = inner.wait()
    finally:
        # The namespace's init is gone, so every process of it is too; then the host.
        if inner.poll() is None:
            inner.kill()
            inner.wait()
        restore_sysctls(saved)
        remove_cgroups(cgroups_before)
        remove_new_host_paths(paths_before)
        left = [p for p in cgroup_dirs() - cgroups_before]
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        log(f"host: every change undone{'' if not left else f' except cgroups {left}'}")
    return code


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--provider-bin", help="the provider binary (default: cargo build's debug binary)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) afterwards")
    parser.add_argument("--inside", help=argparse.SUPPRESS)
    parser.add_argument("--existing-bin", help=argparse.SUPPRESS)
    parser.add_argument("--existing-source", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        import e2e_node  # (scripts/, beside this file)
        existing = (pathlib.Path(args.existing_bin), pathlib.Path(args.existing_source)) \
            if args.existing_bin else None
        return e2e_node.Node(pathlib.Path(args.inside), pathlib.Path(args.provider_bin), existing).run()
    return outside(args)


if __name__ == "__main__":
    sys.exit(main())
