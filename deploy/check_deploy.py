#!/usr/bin/env python3
"""Offline checks of the Helm chart, the plain manifest and the examples, with real helm.

helm (v3.22.0, built from the Go module proxy into .tools/helm by ./scripts/test) lints
the chart (--strict) and renders it (`helm template`) with the default values, with the
driver dependency turned on, and with deploy/test-values/all-values.yaml, which sets
every key of values.yaml. The default rendering is compared with deploy/installer.yaml,
the source of truth for the defaults; the all-values rendering must show every value;
everything rendered, the installer and the examples pass `kubernetes-validate --strict`.

The chart's optional dependency (the driver's chart) is not fetched from its chart
repository: the same chart comes from the driver's Go module (sigs.k8s.io/secrets-store-
csi-driver v1.6.0, pinned by tests/driverclient/go.mod), packaged into the charts/ of a
copy of our chart, as `helm dependency build` would.

    check_deploy.py [--helm PATH] [--driver-chart DIR]

--helm defaults to $HELM, then .tools/helm; --driver-chart to $DRIVER_CHART, then the
module directory `go list -m` gives in tests/driverclient. Run by ./scripts/test; exits
non-zero on failure.
"""
import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy/helm/secrets-store-csi-driver-provider-aws"
ALL_VALUES = ROOT / "deploy/test-values/all-values.yaml"
WORK = ROOT / "target" / "deploy-check"
NAMESPACE = "kube-system"
# The Kubernetes version of the strict schemas, also given to helm as its capabilities.
KUBE_VERSION = "1.32.0"
HELM_VERSION = "v3.22.0"
DRIVER = "secrets-store-csi-driver"
# helm lint notes we have looked at and accept; any other INFO, WARNING or ERROR fails.
EXPLAINED_LINT_NOTES = {
    # Chart.yaml has no icon: optional metadata, shown by chart indexes only.
    "[INFO] Chart.yaml: icon is recommended",
}
FAILURES = []


def check(condition, message):
    if not condition:
        FAILURES.append(message)


def lookup(path, values):
    value = values
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"{path}: no key {part}")
        value = value[part]
    return value


def leaves(values, prefix=""):
    """Dotted paths of the values: scalars, lists and empty maps are leaves."""
    out = {}
    for key, value in values.items():
        path = prefix + key
        if isinstance(value, dict) and value:
            out.update(leaves(value, path + "."))
        else:
            out[path] = value
    return out


# ---------------------------------------------------------------- helm
class Helm:
    def __init__(self, binary, driver_chart):
        self.binary = str(binary)
        home = WORK / "helm-home"
        # helm's own files stay in the work directory; no kubeconfig, so no cluster.
        self.env = dict(os.environ, HELM_CACHE_HOME=str(home / "cache"), HELM_CONFIG_HOME=str(home / "config"),
                        HELM_DATA_HOME=str(home / "data"), KUBECONFIG=str(home / "no-kubeconfig"))
        self.chart = self.prepare_chart(driver_chart)

    def run(self, *args):
        result = subprocess.run([self.binary, *args], capture_output=True, text=True, env=self.env, timeout=300)
        return result.returncode, result.stdout, result.stderr

    def version(self):
        code, out, err = self.run("version", "--template", "{{.Version}}")
        return out.strip() if code == 0 else f"error: {err.strip()}"

    def prepare_chart(self, driver_chart):
        """A copy of the chart with the driver's chart packaged into its charts/."""
        dest = WORK / "chart" / CHART.name
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(CHART, dest, ignore=shutil.ignore_patterns("charts", "*.tgz", "Chart.lock"))
        code, out, err = self.run("package", str(driver_chart), "--destination", str(dest / "charts"))
        if code != 0:
            sys.exit(f"helm package {driver_chart} failed:\n{out}{err}")
        code, out, err = self.run("dependency", "list", str(dest))
        rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
        ok = code == 0 and rows and all(row[0] == DRIVER and row[-1] == "ok" for row in rows)
        check(ok, f"helm dependency list: the packaged driver chart does not satisfy Chart.yaml:\n{out}{err}")
        return dest

    def lint(self, label, *args):
        code, out, err = self.run("lint", "--strict", "--kube-version", KUBE_VERSION, str(self.chart), *args)
        notes = [line.strip() for line in out.splitlines() if re.match(r"\s*\[(INFO|WARNING|ERROR)\]", line)]
        unexplained = [n for n in notes if n not in EXPLAINED_LINT_NOTES]
        check(code == 0 and not unexplained, f"helm lint ({label}): exit {code}, notes {unexplained}\n{out}{err}")

    def template(self, label, *args):
        """[(source template, object)] of `helm template`."""
        code, out, err = self.run("template", "provider", str(self.chart), "--namespace", NAMESPACE,
                                  "--kube-version", KUBE_VERSION, *args)
        if code != 0:
            FAILURES.append(f"helm template ({label}) failed:\n{err}")
            return []
        (WORK / f"rendered-{label}.yaml").write_text(out)
        objects, source = [], ""
        for part in re.split(r"^---\s*$", out, flags=re.M):
            # A template of several documents is named once, before its first one.
            named = re.search(r"^# Source: (\S+)", part, flags=re.M)
            source = named.group(1) if named else source
            doc = yaml.safe_load(part)
            if doc:
                objects.append((source, doc))
        return objects


def ours(objects):
    """Our chart's objects by kind (one each), without the driver subchart's."""
    mine = [doc for source, doc in objects if f"/charts/{DRIVER}/" not in source]
    kinds = [d["kind"] for d in mine]
    check(len(kinds) == len(set(kinds)), f"one object per kind in our chart: {kinds}")
    return {d["kind"]: d for d in mine}


def subchart(objects):
    return [doc for source, doc in objects if f"/charts/{DRIVER}/" in source]


# ---------------------------------------------------------------- checks
def check_yaml_parses():
    for path in list(ROOT.glob("deploy/**/*.yaml")) + list(ROOT.glob("examples/**/*.yaml")):
        if "templates" in path.parts:
            continue
        try:
            list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as e:
            FAILURES.append(f"{path}: {e}")


def check_values_keys(values):
    spec_keys = [
        "image.repository", "image.tag", "image.pullPolicy", "awsRegion", "providerVolume", "kubeletPath",
        "driverWritesSecrets", "k8sThrottlingParams.qps", "k8sThrottlingParams.burst", "eksAddonVersion",
        "podIdentityHttpTimeout", "useFipsEndpoint", "resources", "securityContext.privileged",
        "securityContext.allowPrivilegeEscalation", "priorityClassName", "nodeSelector", "tolerations",
        "affinity", "podLabels", "podAnnotations", "commonLabels", "imagePullSecrets", "updateStrategy",
        "dnsConfig", "rbac.install", "secrets-store-csi-driver.install",
    ]
    for key in spec_keys:
        try:
            lookup(key, values)
        except KeyError:
            FAILURES.append(f"values.yaml lacks {key} (spec section 11)")
    check(values["resources"]["requests"] == {"cpu": "50m", "memory": "100Mi"}, "resources default is 50m/100Mi")
    audiences = [t["audience"] for t in values[DRIVER]["tokenRequests"]]
    check(audiences == ["sts.amazonaws.com", "pods.eks.amazonaws.com"], f"tokenRequests audiences: {audiences}")
    # helm renders a missing key as nothing; a template must not name one.
    refs = set()
    for template in (CHART / "templates").glob("*.yaml"):
        refs |= set(re.findall(r"\.Values\.([A-Za-z0-9_.-]+)", template.read_text()))
    for ref in sorted(refs):
        try:
            lookup(ref, values)
        except KeyError:
            FAILURES.append(f"templates reference .Values.{ref}, which values.yaml lacks")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    dep = chart["dependencies"][0]
    check(dep["name"] == DRIVER and dep["condition"] == f"{DRIVER}.install",
          "Chart.yaml: optional dependency on the driver chart")


def check_chart_matches_installer(objects):
    installer = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy/installer.yaml").read_text()) if d}
    check(not subchart(objects), "without the driver, the chart renders no driver object")
    chart = ours(objects)
    check(set(chart) == set(installer), f"kinds differ: {sorted(chart)} vs {sorted(installer)}")
    if set(chart) != set(installer):
        return
    for kind in installer:
        check(chart[kind]["metadata"]["name"] == installer[kind]["metadata"]["name"], f"{kind} name differs")
        if "namespace" in installer[kind]["metadata"]:
            check(chart[kind]["metadata"].get("namespace") == NAMESPACE, f"{kind} namespace")
    check(chart["ClusterRole"]["rules"] == installer["ClusterRole"]["rules"], "RBAC rules differ")
    check(chart["ClusterRoleBinding"]["roleRef"] == installer["ClusterRoleBinding"]["roleRef"], "roleRef differs")
    check(chart["ClusterRoleBinding"]["subjects"] == installer["ClusterRoleBinding"]["subjects"], "subjects differ")
    ds, ids = chart["DaemonSet"]["spec"], installer["DaemonSet"]["spec"]
    check(ds["selector"] == ids["selector"], "DaemonSet selector differs")
    c, ic = ds["template"]["spec"]["containers"][0], ids["template"]["spec"]["containers"][0]
    for key in ["name", "image", "imagePullPolicy", "args", "env", "ports", "livenessProbe", "readinessProbe",
                "resources", "securityContext", "volumeMounts"]:
        check(c.get(key) == ic.get(key), f"DaemonSet container {key}: chart {c.get(key)!r} != installer {ic.get(key)!r}")
    pod, ipod = ds["template"]["spec"], ids["template"]["spec"]
    for key in ["serviceAccountName", "hostNetwork", "volumes", "nodeSelector"]:
        check(pod.get(key) == ipod.get(key), f"DaemonSet pod {key}: chart {pod.get(key)!r} != installer {ipod.get(key)!r}")
    check(ds["updateStrategy"] == ids["updateStrategy"], "updateStrategy differs")
    # Documented differences: the installer tolerates every taint (as the existing one
    # does); the chart keeps the existing chart's empty default and Fargate anti-affinity.
    check(ipod.get("tolerations") == [{"operator": "Exists"}], "installer tolerates all taints")
    check("tolerations" not in pod, "chart default: no tolerations")
    check("fargate" in str(pod.get("affinity")), "chart default: not on Fargate")
    env = {e["name"] for e in c["env"]}
    check("NODE_NAME" in env, "NODE_NAME is always set")


def check_driver_dependency(objects, token_requests, provider_volume=None):
    """The driver's chart, installed with ours: its CSIDriver asks for our audiences and,
    with our default providerVolume, the driver looks for sockets where ours is."""
    drivers = [d for d in subchart(objects) if d["kind"] == "CSIDriver"]
    check(len(drivers) == 1, f"{DRIVER}.install=true renders the driver's CSIDriver: {len(drivers)}")
    if drivers:
        check(drivers[0]["spec"].get("tokenRequests") == token_requests,
              f"CSIDriver tokenRequests {drivers[0]['spec'].get('tokenRequests')!r} != {token_requests!r}")
    daemonsets = [d for d in subchart(objects) if d["kind"] == "DaemonSet"]
    check(len(daemonsets) == 1, "the driver's DaemonSet is rendered")
    if daemonsets and provider_volume:
        pod = daemonsets[0]["spec"]["template"]["spec"]
        host_paths = [v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v]
        args = " ".join(a for c in pod["containers"] for a in c.get("args", []))
        check(provider_volume in host_paths and provider_volume in args,
              f"the driver does not look in our providerVolume {provider_volume}: {host_paths}")


# Every key of values.yaml, under the longest matching prefix, and how its value from
# all-values.yaml must show in the rendered objects (k: our objects by kind, v: the value).
def _ds(k):
    return k["DaemonSet"]


def _pod(k):
    return _ds(k)["spec"]["template"]["spec"]


def _c(k):
    return _pod(k)["containers"][0]


def _env(k):
    return {e["name"]: e.get("value") for e in _c(k)["env"]}


def _volume(k, name):
    return next(v for v in _pod(k)["volumes"] if v["name"] == name)


def _mount(k, name):
    return next(m for m in _c(k)["volumeMounts"] if m["name"] == name)


def _events_rule(k):
    return any(r.get("apiGroups") == ["events.k8s.io"] and r["resources"] == ["events"]
               and sorted(r["verbs"]) == ["create", "patch"] for r in k["ClusterRole"]["rules"])


def check_events(defaults, enabled):
    """events.enabled adds the flag and the ClusterRole's rule; by default neither."""
    off, on = ours(defaults), ours(enabled)
    check(not _events_rule(off) and not any(x.startswith("--events") for x in _c(off)["args"]),
          "defaults: no pod events (no --events, no events rule)")
    check(_events_rule(on) and "--events=failures" in _c(on)["args"],
          "events.enabled=true: --events=failures and create/patch on events.k8s.io events")


EXPECT = {
    "image": lambda k, a: _c(k)["image"] == f"{a['image']['repository']}:{a['image']['tag']}",
    "image.pullPolicy": lambda k, a: _c(k)["imagePullPolicy"] == a["image"]["pullPolicy"],
    "awsRegion": lambda k, a: _env(k)["AWS_REGION"] == a["awsRegion"],
    "providerVolume": lambda k, a: _volume(k, "providervol")["hostPath"]["path"] == a["providerVolume"]
    and _mount(k, "providervol")["mountPath"] == a["providerVolume"]
    and f"--provider-volume={a['providerVolume']}" in _c(k)["args"],
    "kubeletPath": lambda k, a: _volume(k, "mountpoint-dir")["hostPath"]["path"] == a["kubeletPath"] + "/pods"
    and _mount(k, "mountpoint-dir")["mountPath"] == a["kubeletPath"] + "/pods",
    "useFipsEndpoint": lambda k, a: _env(k).get("AWS_USE_FIPS_ENDPOINT") == "true",
    "env": lambda k, a: all(_env(k).get(e["name"]) == e["value"] for e in a["env"]),
    # The flag and the RBAC rule for events come and go together (check_events: the rule
    # with our ClusterRole installed, which all-values turns off).
    "events.enabled": lambda k, a: any(x.startswith("--events=") for x in _c(k)["args"]) == a["events"]["enabled"]
    and ("ClusterRole" not in k or _events_rule(k) == a["events"]["enabled"]),
    "resources": lambda k, a: _c(k)["resources"] == a["resources"],
    "securityContext": lambda k, a: _c(k)["securityContext"] == a["securityContext"],
    "priorityClassName": lambda k, a: _pod(k)["priorityClassName"] == a["priorityClassName"],
    "nodeSelector": lambda k, a: _pod(k)["nodeSelector"] == {"kubernetes.io/os": "linux", **a["nodeSelector"]},
    "tolerations": lambda k, a: _pod(k)["tolerations"] == a["tolerations"],
    "affinity": lambda k, a: _pod(k)["affinity"] == a["affinity"],
    "podLabels": lambda k, a: a["podLabels"].items() <= _ds(k)["spec"]["template"]["metadata"]["labels"].items(),
    "podAnnotations": lambda k, a: _ds(k)["spec"]["template"]["metadata"]["annotations"] == a["podAnnotations"],
    "commonLabels": lambda k, a: all(a["commonLabels"].items() <= o["metadata"]["labels"].items() for o in k.values())
    and all(_ds(k)["spec"]["template"]["metadata"]["labels"][n] == a["podLabels"].get(n, v)
            for n, v in a["commonLabels"].items()),
    "imagePullSecrets": lambda k, a: _pod(k)["imagePullSecrets"] == a["imagePullSecrets"],
    "updateStrategy": lambda k, a: _ds(k)["spec"]["updateStrategy"] == a["updateStrategy"],
    "dnsConfig": lambda k, a: _pod(k)["dnsConfig"] == a["dnsConfig"],
    "dnsPolicy": lambda k, a: _pod(k)["dnsPolicy"] == a["dnsPolicy"],
    "rbac.install": lambda k, a: all((kind in k) == a["rbac"]["install"]
                                     for kind in ("ClusterRole", "ClusterRoleBinding", "ServiceAccount")),
    "rbac.serviceAccountName": lambda k, a: _pod(k)["serviceAccountName"] == a["rbac"]["serviceAccountName"],
    "metrics.port": lambda k, a: f"--metrics-addr=0.0.0.0:{a['metrics']['port']}" in _c(k)["args"]
    and _c(k)["ports"][0]["containerPort"] == a["metrics"]["port"],
    "probes.liveness": lambda k, a: all(_c(k)["livenessProbe"][f] == v for f, v in a["probes"]["liveness"].items()),
    "probes.readiness": lambda k, a: all(_c(k)["readinessProbe"][f] == v for f, v in a["probes"]["readiness"].items()),
    # With the driver: check_driver_dependency (its objects and tokenRequests).
    f"{DRIVER}.install": None,
    f"{DRIVER}.tokenRequests": None,
    # Passed to the driver's chart; deploy/compare_existing_chart.py compares its objects
    # with the existing chart's, field by field.
    f"{DRIVER}.fullnameOverride": None,
    f"{DRIVER}.linux": None,
}


def declared_chart_values():
    """{chart key: (flag or None, environment variable)} of the settings the chart sets,
    read from the table of docs/configuration.md, which a Rust test (src/config/docs.rs)
    keeps equal to the declaration in src/config/settings.rs."""
    text = (ROOT / "docs/configuration.md").read_text()
    table = text.split("<!-- settings:begin -->")[1].split("<!-- settings:end -->")[0]
    out = {}
    for row in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]
        _, flag, env, _, chart = cells[:5]
        key = re.match(r"`([^`]+)`", chart)
        if key:
            flag = re.match(r"`(--[a-z0-9-]+)", flag)
            out[key.group(1)] = (flag.group(1) if flag else None, env.strip("`"))
    return out


def spelled(value):
    """A value as the chart passes it (`true`, not Python's `True`)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def passed_as(key, flag, env):
    """The value of `key` reaches the provider as the setting's flag, else its variable."""
    if flag:
        return lambda k, a: f"{flag}={spelled(lookup(key, a))}" in _c(k)["args"]
    return lambda k, a: _env(k).get(env) == spelled(lookup(key, a))


# A value that sets a setting needs no line above unless it reaches the provider in
# another shape (metrics.port, kubeletPath).
for _key, (_flag, _env_var) in declared_chart_values().items():
    EXPECT.setdefault(_key, passed_as(_key, _flag, _env_var))

# Keys all-values.yaml may leave at their default (the value matters more than the test).
# The driver stays installed in all-values, so that its values show in its objects; the
# other value, false, is the without-driver rendering compared with the plain manifest.
SAME_AS_DEFAULT_OK = {"securityContext.runAsUser", f"{DRIVER}.install"}


def expectation(path):
    matches = [key for key in EXPECT if path == key or path.startswith(key + ".")]
    return max(matches, key=len) if matches else None


def check_all_values(defaults, all_values, objects):
    default_leaves, set_leaves = leaves(defaults), leaves(all_values)
    for path in sorted(default_leaves):
        try:
            value = lookup(path, all_values)
        except KeyError:
            FAILURES.append(f"{ALL_VALUES.name} does not set {path}")
            continue
        if value == default_leaves[path] and path not in SAME_AS_DEFAULT_OK:
            FAILURES.append(f"{ALL_VALUES.name} sets {path} to its default, so the test cannot see it")
        if expectation(path) is None:
            FAILURES.append(f"check_deploy.py: no expectation for values key {path}")
    for path in sorted(set_leaves):
        if not any(path == d or path.startswith(d + ".") for d in default_leaves):
            FAILURES.append(f"{ALL_VALUES.name} sets {path}, which values.yaml lacks")
    kinds = ours(objects)
    for key in sorted({expectation(p) for p in default_leaves} - {None}):
        test = EXPECT[key]
        if test is None:
            continue
        try:
            ok = test(kinds, all_values)
        except (KeyError, IndexError, StopIteration, TypeError) as e:
            ok = False
            key = f"{key} ({type(e).__name__}: {e})"
        check(ok, f"all-values: {key} does not show in the rendered objects")
    if all_values[DRIVER]["install"]:
        check_driver_dependency(objects, all_values[DRIVER]["tokenRequests"])


def check_schemas(rendered):
    """Strict schema validation of every core object (no CRD schemas offline)."""
    files = [ROOT / "deploy/installer.yaml"]
    for label, objects in rendered.items():
        out = WORK / f"validate-{label}.yaml"
        out.write_text(yaml.safe_dump_all([doc for _, doc in objects]))
        files.append(out)
    for example in ROOT.glob("examples/**/*.yaml"):
        docs = [d for d in yaml.safe_load_all(example.read_text()) if d and d.get("kind") != "SecretProviderClass"
                and "apiVersion" in d]
        if docs:
            out = WORK / ("example-" + example.name)
            out.write_text(yaml.safe_dump_all(docs))
            files.append(out)
    validator = pathlib.Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run([str(validator), "--strict", "-k", KUBE_VERSION, *map(str, files)],
                            capture_output=True, text=True)
    problems = "\n".join(line for line in (result.stdout + result.stderr).splitlines() if not line.startswith("INFO "))
    check(result.returncode == 0, f"kubernetes-validate --strict failed:\n{problems}")


def driver_chart_dir():
    go = subprocess.run(["go", "-C", str(ROOT / "tests/driverclient"), "list", "-m", "-f", "{{.Dir}}",
                         "sigs.k8s.io/secrets-store-csi-driver"], capture_output=True, text=True)
    if go.returncode != 0 or not go.stdout.strip():
        sys.exit(f"no driver chart: pass --driver-chart or DRIVER_CHART ({go.stderr.strip()})")
    return pathlib.Path(go.stdout.strip()) / "charts" / DRIVER


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--helm", default=os.environ.get("HELM") or str(ROOT / ".tools/helm"))
    parser.add_argument("--driver-chart", default=os.environ.get("DRIVER_CHART"))
    args = parser.parse_args()
    if not pathlib.Path(args.helm).is_file():
        sys.exit(f"no helm at {args.helm}: run ./scripts/test (it installs helm {HELM_VERSION} into .tools/)")
    driver_chart = pathlib.Path(args.driver_chart) if args.driver_chart else driver_chart_dir()
    if not (driver_chart / "Chart.yaml").is_file():
        sys.exit(f"no Chart.yaml in {driver_chart}")
    WORK.mkdir(parents=True, exist_ok=True)

    helm = Helm(args.helm, driver_chart)
    check(helm.version() == HELM_VERSION, f"helm version {helm.version()}, want {HELM_VERSION}")
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    all_values = yaml.safe_load(ALL_VALUES.read_text())
    check_yaml_parses()
    check_values_keys(defaults)

    # The defaults install the driver, as the existing chart's do; the plain manifest is
    # the provider alone, so it is compared with the chart told not to install it.
    check(defaults[DRIVER]["install"] is True, f"{DRIVER}.install defaults to true, as in the existing chart")
    without_driver = ("--set", f"{DRIVER}.install=false")
    helm.lint("defaults")
    helm.lint("without-driver", *without_driver)
    helm.lint("all-values", "--values", str(ALL_VALUES))
    rendered = {
        "defaults": helm.template("defaults"),
        "without-driver": helm.template("without-driver", *without_driver),
        "all-values": helm.template("all-values", "--values", str(ALL_VALUES)),
        "events": helm.template("events", *without_driver, "--set", "events.enabled=true"),
    }
    check_events(rendered["without-driver"], rendered["events"])
    check_chart_matches_installer(rendered["without-driver"])
    check_driver_dependency(rendered["defaults"], defaults[DRIVER]["tokenRequests"], defaults["providerVolume"])
    check_all_values(defaults, all_values, rendered["all-values"])
    check_schemas(rendered)
    if FAILURES:
        print("deploy checks failed:")
        for f in FAILURES:
            print(" -", f)
        sys.exit(1)
    print(f"deploy checks passed (helm {HELM_VERSION}: lint and template with defaults, with the driver "
          f"{driver_chart.parent.parent.name}, with {ALL_VALUES.relative_to(ROOT)}; kubernetes-validate --strict "
          f"{KUBE_VERSION})")


if __name__ == "__main__":
    main()
