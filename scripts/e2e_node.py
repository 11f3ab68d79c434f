"""The node of scripts/e2e-cluster, run inside its private network, mount and PID
namespaces: the control plane, containerd, locally built images, the kubelet, moto, and
helm installing our chart with the driver's. scripts/e2e_walkthrough.py then replays the
README's walk-through on it.

Every process started here dies with the namespace (its init is this script's parent);
every mount is the namespace's own.
"""
import json
import os
import pathlib
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request

import e2e_cluster as E2E

ROOT = E2E.ROOT
TOOLS = E2E.TOOLS
NODE_TOOLS = E2E.NODE_TOOLS
IMAGE_TAG = "e2e"
IMAGES = {
    "pause": "localhost/e2e/pause",
    "busybox": "localhost/e2e/busybox",
    "provider": "localhost/e2e/provider",
    "driver": "localhost/e2e/driver",
    "registrar": "localhost/e2e/registrar",
    "livenessprobe": "localhost/e2e/livenessprobe",
    "existing": "localhost/e2e/existing-provider",
}
# The EKS Pod Identity agent's address, where both providers ask for a pod's credentials.
AGENT_IP = "169.254.170.23"
# A stand-in for the agent: any pod's token gets moto's test credentials (the existing
# provider's STS client for IRSA ignores AWS_ENDPOINT_URL, so only Pod Identity brings it
# to moto).
AGENT = """
import http.server, json
class Agent(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if not self.headers.get("Authorization"):
            self.send_response(400); self.end_headers(); return
        body = json.dumps({"AccessKeyId": "test", "SecretAccessKey": "test", "Token": "test",
                           "AccountId": "123456789012", "Expiration": "2099-01-01T00:00:00Z"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("%s", 80), Agent).serve_forever()
""" % AGENT_IP


def log(message):
    E2E.log(message)


def sh(*args, **kwargs):
    return E2E.run(*args, **kwargs)


class Node:
    def __init__(self, work, provider_bin, existing=None):
        self.work = work
        self.provider_bin = provider_bin
        # (binary, source) of the existing provider 3.1.1, or None.
        self.existing = existing
        self.processes = []
        self.pki = work / "pki"
        self.kubelet_dir = work / "kubelet"
        self.providers_dir = work / "providers"
        self.admin_kubeconfig = work / "admin.kubeconfig"
        self.containerd_sock = work / "containerd.sock"

    # ------------------------------------------------------------ processes
    def start(self, name, *args, env=None):
        logfile = open(self.work / f"{name}.log", "w")
        process = subprocess.Popen([str(a) for a in args], stdout=logfile, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env)
        self.processes.append((name, process))
        return process

    def check_alive(self):
        for name, process in self.processes:
            if process.poll() is not None:
                raise SystemExit(f"e2e-cluster: {name} exited with {process.returncode}:\n{self.tail(name)}")

    def tail(self, name, lines=40):
        text = (self.work / f"{name}.log").read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def wait(self, what, check, timeout=180):
        start = time.monotonic()
        while True:
            self.check_alive()
            try:
                if check():
                    return time.monotonic() - start
            except Exception:  # noqa: BLE001  (not up yet: connection refused, 5xx, ...)
                pass
            if time.monotonic() - start > timeout:
                raise SystemExit(f"e2e-cluster: timed out waiting for {what}")
            time.sleep(0.5)

    def kubectl(self, *args, check=True, input=None):
        return sh(NODE_TOOLS / "kubectl", f"--kubeconfig={self.admin_kubeconfig}", *args,
                  check=check, capture=True, input=input)

    def helm(self, *args, check=True):
        return sh(TOOLS / "helm", f"--kubeconfig={self.admin_kubeconfig}", *args, check=check, capture=True,
                  timeout=900)

    # ------------------------------------------------------------ the node
    def network(self):
        """Loopback, the pods' bridge, and the API server's Service address DNAT'ed to it."""
        sh("ip", "link", "set", "lo", "up")
        sh("ip", "link", "add", E2E.BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{E2E.BRIDGE_IP}/16", "dev", E2E.BRIDGE)
        sh("ip", "link", "set", E2E.BRIDGE, "up")
        for chain in ["PREROUTING", "OUTPUT"]:
            sh("iptables", "-t", "nat", "-A", chain, "-d", f"{E2E.SERVICE_IP}/32", "-p", "tcp", "--dport", "443",
               "-j", "DNAT", "--to-destination", f"{E2E.BRIDGE_IP}:{E2E.APISERVER_PORT}")

    def mounts(self):
        """Mount events propagate inside the namespace (the kubelet's Bidirectional and
        HostToContainer volumes need shared mounts); /run is the namespace's own tmpfs, and
        /var/lib a directory of the work directory: the kubelet's device-plugin socket and
        the CNI plugins' results have fixed places there, which would otherwise stay on the
        host."""
        sh("mount", "--make-rshared", "/")
        sh("mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run")
        var_lib = self.work / "var-lib"
        var_lib.mkdir()
        sh("mount", "--bind", var_lib, "/var/lib")
        for d in [self.kubelet_dir, self.providers_dir, self.work / "cni", self.work / "pod-logs"]:
            d.mkdir(parents=True, exist_ok=True)

    def control_plane(self):
        sh(TOOLS / "kubeserver", "pki", self.pki, E2E.BRIDGE_IP, E2E.SERVICE_IP)
        self.start("etcd", TOOLS / "kubeserver", "etcd", self.work / "etcd", "http://127.0.0.1:2379",
                   "http://127.0.0.1:2380")
        p = lambda f: self.pki / f  # noqa: E731
        self.start("apiserver", TOOLS / "kubeserver", "apiserver",
                   "--etcd-servers=http://127.0.0.1:2379",
                   "--bind-address=0.0.0.0", f"--advertise-address={E2E.BRIDGE_IP}",
                   f"--secure-port={E2E.APISERVER_PORT}", f"--cert-dir={self.work / 'apiserver-certs'}",
                   f"--tls-cert-file={p('server.crt')}", f"--tls-private-key-file={p('server.key')}",
                   f"--client-ca-file={p('ca.crt')}",
                   f"--token-auth-file={p('tokens.csv')}", "--authorization-mode=Node,RBAC",
                   "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                   f"--service-account-key-file={p('sa.pub')}",
                   f"--service-account-signing-key-file={p('sa.key')}",
                   f"--service-cluster-ip-range={E2E.SERVICE_CIDR}", "--allow-privileged=true",
                   # exec and logs dial the kubelet at its address: the node name has no DNS here.
                   "--kubelet-preferred-address-types=InternalIP", "--v=0")
        token = (self.pki / "admin.token").read_text().strip()
        self.admin_kubeconfig.write_text(kubeconfig(f"https://{E2E.BRIDGE_IP}:{E2E.APISERVER_PORT}",
                                                    self.pki / "ca.crt", token))
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))

        def ready():
            request = urllib.request.Request(f"https://{E2E.BRIDGE_IP}:{E2E.APISERVER_PORT}/readyz",
                                             headers={"Authorization": f"Bearer {token}"})
            return urllib.request.urlopen(request, context=context, timeout=5).status == 200

        took = self.wait("the API server", ready)
        log(f"API server ready in {took:.1f} s")
        self.start("controller-manager", NODE_TOOLS / "kube-controller-manager",
                   f"--kubeconfig={self.admin_kubeconfig}", "--leader-elect=false",
                   f"--root-ca-file={p('ca.crt')}", f"--service-account-private-key-file={p('sa.key')}",
                   "--use-service-account-credentials=false", "--secure-port=0",
                   # Its default is the host's /usr/libexec/kubernetes/…, which it creates.
                   f"--flex-volume-plugin-dir={self.work / 'volume-plugins'}", "--v=1")
        self.start("scheduler", NODE_TOOLS / "kube-scheduler", f"--kubeconfig={self.admin_kubeconfig}",
                   "--leader-elect=false", "--secure-port=0", "--v=1")

    def containerd(self):
        config = self.work / "containerd.toml"
        config.write_text(f"""version = 2
root = "{self.work / 'containerd'}"
state = "/run/containerd"
[grpc]
  address = "{self.containerd_sock}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{IMAGES['pause']}:{IMAGE_TAG}"
  # This VM lacks CAP_SYS_RESOURCE: without this every sandbox fails to start.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{self.work / 'cni'}"
""")
        (self.work / "cni" / "10-e2e.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0",
            "name": "e2e",
            "plugins": [
                {"type": "bridge", "bridge": E2E.BRIDGE, "isGateway": True, "ipMasq": False,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": E2E.POD_CIDR, "gateway": E2E.BRIDGE_IP}]],
                          "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self.work / "cni-ipam")}},
                {"type": "loopback"},
            ],
        }))
        self.start("containerd", "containerd", "--config", config)
        self.wait("containerd", lambda: self.ctr("version").returncode == 0)

    def ctr(self, *args, check=False):
        return sh("ctr", "--address", self.containerd_sock, "--namespace", "k8s.io", *args,
                  check=check, capture=True)

    def images(self):
        build = self.work / "images"
        build.mkdir()
        busybox = {f"bin/{link}": "busybox" for link in
                   ["sh", "cat", "ls", "sleep", "env", "echo", "test", "wc", "grep"]}
        self.image(build, "pause", {"pause": NODE_TOOLS / "pause"}, "/pause")
        self.image(build, "busybox", {"bin/busybox": pathlib.Path("/bin/busybox")}, "/bin/sh", links=busybox)
        provider = "secrets-store-csi-driver-provider-aws"
        # As the shipped image (distroless cc: glibc and the CA certificates).
        certificates = "etc/ssl/certs/ca-certificates.crt"
        self.image(build, "provider", {provider: self.provider_bin,
                                       certificates: pathlib.Path("/") / certificates}, f"/{provider}")
        driver = "secrets-store-csi-driver"
        # The driver mounts a tmpfs per volume with mount(8), as in its own image.
        tools = {f"bin/{t}": pathlib.Path(shutil.which(t)) for t in ["mount", "umount", "findmnt"]}
        self.image(build, "driver", {driver: TOOLS / driver, **tools}, f"/{driver}")
        if self.existing:
            existing = "bin/secrets-store-csi-driver-provider-aws"
            self.image(build, "existing", {existing: self.existing[0],
                                           certificates: pathlib.Path("/") / certificates}, f"/{existing}")
        self.image(build, "registrar", {"registrar": NODE_TOOLS / "registrar"}, "/registrar")
        self.image(build, "livenessprobe", {"livenessprobe": NODE_TOOLS / "livenessprobe"}, "/livenessprobe")

    def image(self, build, name, files, entrypoint, links=None):
        """An OCI image of `files` (path in the image: binary; each with the shared
        libraries it loads) and `links` (path: target), built by umoci, imported into
        containerd as IMAGES[name]:IMAGE_TAG."""
        layout = build / name
        bundle = build / f"{name}-bundle"
        sh("umoci", "init", "--layout", layout)
        sh("umoci", "new", "--image", f"{layout}:{IMAGE_TAG}")
        sh("umoci", "unpack", "--image", f"{layout}:{IMAGE_TAG}", bundle)
        rootfs = bundle / "rootfs"
        for path, binary in files.items():
            for source, dest in [(binary, rootfs / path)] + [
                    (lib, rootfs / lib.relative_to("/")) for lib in shared_libraries(binary)]:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest)
        for path, target in (links or {}).items():
            (rootfs / path).symlink_to(target)
        (rootfs / "tmp").mkdir(mode=0o1777, exist_ok=True)
        sh("umoci", "repack", "--image", f"{layout}:{IMAGE_TAG}", bundle)
        sh("umoci", "config", "--image", f"{layout}:{IMAGE_TAG}", f"--config.entrypoint={entrypoint}")
        archive = build / f"{name}.tar"
        sh("tar", "-C", layout, "-cf", archive, ".")
        self.ctr("images", "import", "--base-name", IMAGES[name], "--digests", archive, check=True)
        listed = self.ctr("images", "list", "-q", check=True).stdout.split()
        if f"{IMAGES[name]}:{IMAGE_TAG}" not in listed:
            raise SystemExit(f"e2e-cluster: {IMAGES[name]}:{IMAGE_TAG} not among the imported images: {listed}")

    def kubelet(self):
        config = self.work / "kubelet.yaml"
        config.write_text(f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://{self.containerd_sock}
address: {E2E.BRIDGE_IP}
port: 10250
readOnlyPort: 0
authentication:
  anonymous: {{enabled: true}}
  webhook: {{enabled: false}}
authorization: {{mode: AlwaysAllow}}
failSwapOn: false
enforceNodeAllocatable: []
evictionHard: {{}}
syncFrequency: 10s
podLogsDir: {self.work / 'pod-logs'}
staticPodPath: ""
# Not /usr/libexec/kubernetes (the host's): the kubelet creates it.
volumePluginDir: {self.work / 'volume-plugins'}
clusterDomain: cluster.local
""")
        self.start("kubelet", NODE_TOOLS / "kubelet", f"--config={config}",
                   f"--kubeconfig={self.admin_kubeconfig}", f"--root-dir={self.kubelet_dir}",
                   f"--cert-dir={self.work / 'kubelet-pki'}", f"--hostname-override={E2E.NODE}",
                   f"--node-ip={E2E.BRIDGE_IP}", f"--volume-plugin-dir={self.work / 'volume-plugins'}", "--v=1")

        def ready():
            got = self.kubectl("get", "node", E2E.NODE, "-o", "json", check=False)
            if got.returncode != 0:
                return False
            node = json.loads(got.stdout)
            return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])

        took = self.wait("the node to be Ready", ready)
        log(f"node {E2E.NODE} Ready in {took:.1f} s")

    def moto(self):
        self.start("moto", ROOT / ".venv/bin/moto_server", "-H", E2E.BRIDGE_IP, "-p", str(E2E.MOTO_PORT))
        self.wait("moto", lambda: urllib.request.urlopen(
            f"http://{E2E.BRIDGE_IP}:{E2E.MOTO_PORT}/moto-api/", timeout=5).status == 200)

    def pod_identity_agent(self):
        sh("ip", "addr", "add", f"{AGENT_IP}/32", "dev", E2E.BRIDGE)
        self.start("agent", sys.executable, "-c", AGENT)
        self.wait("the Pod Identity stand-in", lambda: urllib.request.urlopen(urllib.request.Request(
            f"http://{AGENT_IP}/v1/credentials", headers={"Authorization": "x"}), timeout=5).status == 200)

    def up(self):
        self.mounts()
        self.network()
        self.control_plane()
        self.containerd()
        self.images()
        self.kubelet()
        self.moto()
        self.pod_identity_agent()

    def run(self):
        try:
            self.up()
            import e2e_walkthrough  # noqa: E402
            return e2e_walkthrough.Walkthrough(self).run()
        except SystemExit as e:
            print(e, file=sys.stderr, flush=True)
            for name, _ in self.processes:
                if name in ("kubelet", "containerd", "apiserver"):
                    print(f"--- {name} log (tail):\n{self.tail(name, 25)}", file=sys.stderr)
            return 1
        finally:
            # Stop the kubelet before containerd, so that no pod is restarted meanwhile.
            for _, process in reversed(self.processes):
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()


def kubeconfig(server, ca, token):
    return f"""apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {{server: "{server}", certificate-authority: "{ca}"}}
users:
- name: admin
  user: {{token: "{token}"}}
contexts:
- name: admin
  context: {{cluster: e2e, user: admin}}
current-context: admin
"""


def shared_libraries(binary):
    """The shared libraries `binary` loads (none for a static one), from ldd."""
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    libraries = []
    for line in result.stdout.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else (parts[0] if parts and parts[0].startswith("/") else None)
        if path and path.startswith("/"):
            libraries.append(pathlib.Path(path))
    return libraries
