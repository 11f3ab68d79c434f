#!/usr/bin/env python3
"""Our chart side by side with the existing provider's chart (3.1.1), with real helm.

Both charts are rendered (`helm template`) with their default values and with a values
file that sets every value of that chart: ours with deploy/test-values/all-values.yaml,
the existing one with deploy/test-values/existing-all-values.yaml (the same value for
the same meaning), and, since that file turns RBAC off, with the defaults and awsRegion
set (the existing chart's ClusterRole depends on it). The objects both charts make
(DaemonSet, ServiceAccount, ClusterRole, ClusterRoleBinding), and the objects of the
driver's chart (a dependency of both; also compared with the driver on and otherwise the
defaults), are flattened to paths such as
`spec.template.spec.containers[provider-aws-installer].args` (a list of named maps is
keyed by name, a list of scalars is one value) and compared field by field. Every
difference must be declared in deploy/chart-differences.yaml (id, where, our value,
theirs, why), every declared difference must still exist with those values, and every id
must be named in docs/operations.md under "Upgrading from the existing provider" and
under "Going back". Values of the existing chart that ours does not have are declared
there too.

The existing chart comes from the peer tarball (never copied into the tree): by default
../shared/peer/secrets-store-csi-driver-provider-aws-3.1.1.tar.gz from the repository
root, whose sha256 is checked, unpacked once into target/existing-provider/<sha256>/ by
scripts/peers.py (which the benchmark's build of the binary shares).
EXISTING_PROVIDER_SOURCE (or
--existing-source) names another tarball of the 3.1.1 sources or an unpacked directory,
e.g. a `git clone --branch v3.1.1` of github.com/aws/secrets-store-csi-driver-provider-aws.
Without a source the check prints a line saying it is skipped and passes, unless
REQUIRE_PEER=1 (./scripts/test sets it unless told REQUIRE_PEER=0), which makes it fail.

    compare_existing_chart.py [--helm PATH] [--driver-chart DIR] [--existing-source PATH]

--helm and --driver-chart as for deploy/check_deploy.py (the existing chart depends on
the driver's chart too; the same one is packaged into a copy of each chart). Exits
non-zero on failure and prints each undeclared difference as an entry to declare.
"""
import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys

import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "scripts"))
import peers  # noqa: E402  (scripts/, beside deploy/)

EXISTING = peers.PEERS["existing-provider"]

ROOT = pathlib.Path(__file__).resolve().parent.parent
OURS = ROOT / "deploy/helm/secrets-store-csi-driver-provider-aws"
OUR_VALUES = ROOT / "deploy/test-values/all-values.yaml"
THEIR_VALUES = ROOT / "deploy/test-values/existing-all-values.yaml"
DECLARED = ROOT / "deploy/chart-differences.yaml"
DOCS = ROOT / "docs/operations.md"
WORK = ROOT / "target" / "existing-chart"
CHART_NAME = "secrets-store-csi-driver-provider-aws"
CHART_VERSION = "3.1.1"
DRIVER = "secrets-store-csi-driver"
NAMESPACE = "kube-system"
KUBE_VERSION = "1.32.0"
KINDS = ["DaemonSet", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"]
# The renderings and the kinds compared in each. all-values turns RBAC off, so the
# ClusterRole is also compared with the defaults and awsRegion set (the existing chart's
# rules depend on it).
# driver-on: ours with the defaults and the driver installed, theirs with the defaults
# (which install it): the driver chart's objects only.
RENDERS = {"defaults": KINDS, "all-values": KINDS, "aws-region": ["ClusterRole"], "driver-on": []}
# The driver's chart, a dependency of both: which objects it makes (`objects`: Kind/name),
# and each object both make, field by field (`secrets-store-csi-driver <Kind>/<name>`).
DRIVER_OBJECTS = "driver objects"
AWS_REGION = ("--set", "awsRegion=eu-west-1")
DRIVER_ON = ("--set", f"{DRIVER}.install=true")
UPGRADING, GOING_BACK = "## Upgrading from the existing provider", "## Going back"
# Keys of the existing values.yaml the comparison of the two values files leaves out:
# the driver subchart's own settings, passed through by both charts.
SUBCHART_PREFIX = DRIVER + "."
# Keys existing-all-values.yaml leaves at the existing chart's default: the driver stays
# installed in both renderings (ours is set to install it too).
SAME_AS_DEFAULT_OK = {f"{DRIVER}.install"}
FAILURES = []


def check(condition, message):
    if not condition:
        FAILURES.append(message)


# ---------------------------------------------------------------- the existing chart
def existing_chart(source):
    """The existing chart's directory, or None (skipped) when there is no source."""
    try:
        directory = peers.source_dir(EXISTING, source)
    except peers.NoSource as e:
        if os.environ.get("REQUIRE_PEER") == "1":
            sys.exit(f"existing chart comparison: {e} (REQUIRE_PEER=1; REQUIRE_PEER=0 skips the comparison)")
        print(f"existing chart comparison skipped: {e} (REQUIRE_PEER=1 makes this a failure)")
        return None
    source = source or peers.given_source(EXISTING)
    chart = directory / "charts" / CHART_NAME
    if not (chart / "Chart.yaml").is_file():
        sys.exit(f"{source}: no charts/{CHART_NAME}/Chart.yaml (want the 3.1.1 tarball or a clone of the v3.1.1 tag)")
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    if meta.get("name") != CHART_NAME or str(meta.get("version")) != CHART_VERSION:
        sys.exit(f"{chart}: chart {meta.get('name')} {meta.get('version')}, want {CHART_NAME} {CHART_VERSION}")
    return chart


# ---------------------------------------------------------------- helm
class Helm:
    def __init__(self, binary, driver_chart):
        self.binary, self.driver_chart = str(binary), driver_chart
        home = WORK / "helm-home"
        self.env = dict(os.environ, HELM_CACHE_HOME=str(home / "cache"), HELM_CONFIG_HOME=str(home / "config"),
                        HELM_DATA_HOME=str(home / "data"), KUBECONFIG=str(home / "no-kubeconfig"))

    def run(self, *args):
        result = subprocess.run([self.binary, *args], capture_output=True, text=True, env=self.env, timeout=300)
        if result.returncode != 0:
            sys.exit(f"helm {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def with_driver(self, chart, label):
        """A copy of `chart` with the driver's chart packaged into its charts/."""
        dest = WORK / "render" / label / chart.name
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(chart, dest, ignore=shutil.ignore_patterns("charts", "*.tgz", "Chart.lock"))
        self.run("package", str(self.driver_chart), "--destination", str(dest / "charts"))
        return dest

    def template(self, chart, label, *args):
        """{kind: object} of the chart's own objects; the driver subchart's under
        `secrets-store-csi-driver <Kind>/<name>`, and their list under DRIVER_OBJECTS."""
        out = self.run("template", "provider", str(chart), "--namespace", NAMESPACE, "--kube-version",
                       KUBE_VERSION, *args)
        (WORK / f"rendered-{label}.yaml").write_text(out)
        objects, source = {}, ""
        for part in re.split(r"^---\s*$", out, flags=re.M):
            named = re.search(r"^# Source: (\S+)", part, flags=re.M)
            source = named.group(1) if named else source
            doc = yaml.safe_load(part)
            if not doc:
                continue
            key = f"{DRIVER} {doc['kind']}/{doc['metadata']['name']}" if f"/charts/{DRIVER}/" in source else doc["kind"]
            check(key not in objects, f"{label}: two objects {key}")
            objects[key] = doc
        objects[DRIVER_OBJECTS] = {"objects": sorted(k.split(" ", 1)[1] for k in objects if k.startswith(DRIVER + " "))}
        return objects


# ---------------------------------------------------------------- flattening
def flatten(value, path=""):
    """{path: leaf}: maps by key, lists of named maps by name, other lists of maps by
    index; scalars, lists of scalars and empty maps or lists are leaves."""
    if isinstance(value, dict) and value:
        out = {}
        for key, item in value.items():
            # A key with a dot in it (a label's name) is quoted: metadata.labels["app.kubernetes.io/name"].
            step = f'["{key}"]' if "." in str(key) else f".{key}" if path else str(key)
            out.update(flatten(item, path + step))
        return out
    if isinstance(value, list) and value and all(isinstance(i, dict) for i in value):
        names = [i.get("name") for i in value]
        named = all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{path}[{names[index] if named else index}]"))
        return out
    return {path: value}


def under(path, prefix):
    return path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")


def leaves_under(flat, prefix):
    return {p: v for p, v in flat.items() if under(p, prefix)}


def differences(ours, theirs, kinds):
    """{(kind, path): (our leaf, their leaf)}; a missing leaf or object is None."""
    out = {}
    for kind in kinds:
        a = flatten(ours[kind]) if kind in ours else {}
        b = flatten(theirs[kind]) if kind in theirs else {}
        for path in sorted(set(a) | set(b)):
            if a.get(path) != b.get(path) or (path in a) != (path in b):
                out[(kind, path)] = (a.get(path), b.get(path))
    return out


# ---------------------------------------------------------------- declared differences
def declared_places(entry):
    renders = entry.get("render", "both")
    renders = ["defaults", "all-values"] if renders == "both" else [renders] if isinstance(renders, str) else renders
    for render in renders:
        check(render in RENDERS, f"{DECLARED.name} {entry.get('id')}: unknown render {render}")
    return renders


def compared_kinds(render, ours, theirs):
    if render == "aws-region":
        return RENDERS[render]
    both = sorted(k for k in ours if k.startswith(DRIVER + " ") and k in theirs)
    return RENDERS[render] + [DRIVER_OBJECTS] + both


def check_declared(declared, rendered):
    ids = [e.get("id") for e in declared]
    check(len(ids) == len(set(ids)), f"{DECLARED.name}: ids are not unique: {ids}")
    compared = {render: compared_kinds(render, *rendered[render]) for render in RENDERS}
    actual = {render: differences(*rendered[render], compared[render]) for render in RENDERS}
    covered = {render: set() for render in RENDERS}
    for entry in declared:
        eid = entry.get("id")
        check(isinstance(entry.get("why"), str) and entry["why"].strip(), f"{DECLARED.name} {eid}: no why")
        for place in entry.get("at", []):
            kind, path = place["kind"], place["path"]
            for render in declared_places(place):
                if kind not in compared.get(render, []):
                    FAILURES.append(f"{DECLARED.name} {eid}: {kind} is not compared in {render}")
                    continue
                ours, theirs = rendered[render]
                got_ours = leaves_under(flatten(ours[kind]) if kind in ours else {}, path)
                got_theirs = leaves_under(flatten(theirs[kind]) if kind in theirs else {}, path)
                want_ours = {} if place.get("ours") is None else flatten(place["ours"], path)
                want_theirs = {} if place.get("theirs") is None else flatten(place["theirs"], path)
                where = f"{eid}: {render} {kind} {path}"
                if got_ours == got_theirs:
                    FAILURES.append(f"declared difference {where} no longer exists (both: {got_ours})")
                    continue
                for side, got, want in (("ours", got_ours, want_ours), ("theirs", got_theirs, want_theirs)):
                    changed = {p: (got.get(p), want.get(p)) for p in sorted(set(got) | set(want)) if
                               got.get(p) != want.get(p) or (p in got) != (p in want)}
                    check(not changed, f"declared difference {where}: {side} changed (path: (now, declared)): {changed}")
                covered[render] |= {p for p in actual[render] if p[0] == kind and under(p[1], path)}
    undeclared = []
    for render in RENDERS:
        for (kind, path), (a, b) in sorted(actual[render].items()):
            if (kind, path) not in covered[render]:
                undeclared.append({"kind": kind, "path": path, "render": render, "ours": a, "theirs": b})
    if undeclared:
        FAILURES.append(f"{len(undeclared)} undeclared differences; declare them in {DECLARED.relative_to(ROOT)} "
                        f"(or fix our chart):\n" + yaml.safe_dump(undeclared, sort_keys=False, width=120))


def value_leaves(values):
    """Dotted keys of a values file: maps recurse, anything else (lists too) is a leaf."""
    out = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out.update({f"{key}.{k}": v for k, v in value_leaves(value).items()})
        else:
            out[key] = value
    return out


def template_references(chart):
    refs = set()
    for template in (chart / "templates").glob("*"):
        refs |= set(re.findall(r"\.Values\.([A-Za-z0-9_.-]+)", template.read_text()))
    return refs


def has_key(values, key):
    node = values
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def check_values(theirs_chart, declared_ignored, same_meaning):
    """The existing values file sets every value of that chart; the two values files agree
    where the charts share a value; the existing chart's values ours lacks are declared."""
    their_defaults = yaml.safe_load((theirs_chart / "values.yaml").read_text())
    our_defaults = yaml.safe_load((OURS / "values.yaml").read_text())
    their_all = yaml.safe_load(THEIR_VALUES.read_text())
    our_all = yaml.safe_load(OUR_VALUES.read_text())
    keys = set(value_leaves(their_defaults)) | template_references(theirs_chart)
    # The leaves: `securityContext` (read whole by a template) is its keys' parent.
    keys = {k for k in keys if not any(o.startswith(k + ".") for o in keys)}
    for key in sorted(keys):
        check(has_key(their_all, key), f"{THEIR_VALUES.name} does not set {key} of the existing chart")
        check(key in SAME_AS_DEFAULT_OK or lookup(their_all, key) != lookup(their_defaults, key),
              f"{THEIR_VALUES.name} sets {key} to the existing chart's default, so the comparison cannot see it")
        if key.startswith(SUBCHART_PREFIX):
            continue
        if not has_key(our_defaults, key):
            check(key in declared_ignored, f"the existing chart's value {key} is not in our values.yaml and not "
                                           f"declared under ignored-values in {DECLARED.name}")
        elif has_key(their_all, key):
            check(lookup(our_all, key) == lookup(their_all, key),
                  f"{key}: {OUR_VALUES.name} and {THEIR_VALUES.name} set different values")
    for key, why in declared_ignored.items():
        check(why and key in keys and not has_key(our_defaults, key),
              f"{DECLARED.name} ignored-values {key}: not a value of the existing chart that ours lacks, or no why")
    for theirs_key, ours_key in same_meaning.items():
        check(lookup(their_all, theirs_key) == lookup(our_all, ours_key),
              f"{theirs_key} ({THEIR_VALUES.name}) and {ours_key} ({OUR_VALUES.name}) differ")


def lookup(values, key):
    for part in key.split("."):
        values = values.get(part) if isinstance(values, dict) else None
    return values


def section(text, heading):
    body = text.split(heading + "\n", 1)
    return re.split(r"^## ", body[1], flags=re.M)[0] if len(body) == 2 else ""


def check_docs(ids):
    text = DOCS.read_text()
    upgrading, back = section(text, UPGRADING), section(text, GOING_BACK)
    check(upgrading and back, f"{DOCS.name}: no '{UPGRADING}' or no '{GOING_BACK}' section")
    check(text.find(GOING_BACK) > text.find(UPGRADING) and not section(upgrading, "##"),
          f"{DOCS.name}: '{GOING_BACK}' must follow '{UPGRADING}'")
    for eid in ids:
        check(f"`{eid}`" in upgrading, f"{DOCS.name} '{UPGRADING}' does not name the difference `{eid}`")
        check(f"`{eid}`" in back, f"{DOCS.name} '{GOING_BACK}' does not say what to do for `{eid}`")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--helm", default=os.environ.get("HELM") or str(ROOT / ".tools/helm"))
    parser.add_argument("--driver-chart", default=os.environ.get("DRIVER_CHART"))
    parser.add_argument("--existing-source", default=os.environ.get("EXISTING_PROVIDER_SOURCE"))
    args = parser.parse_args()
    theirs_chart = existing_chart(args.existing_source)
    if theirs_chart is None:
        return
    if not args.driver_chart or not (pathlib.Path(args.driver_chart) / "Chart.yaml").is_file():
        sys.exit(f"no driver chart at {args.driver_chart}: pass --driver-chart or DRIVER_CHART")
    WORK.mkdir(parents=True, exist_ok=True)
    helm = Helm(args.helm, pathlib.Path(args.driver_chart))
    ours, theirs = helm.with_driver(OURS, "ours"), helm.with_driver(theirs_chart, "existing")
    rendered = {
        "defaults": (helm.template(ours, "ours-defaults"), helm.template(theirs, "existing-defaults")),
        "all-values": (helm.template(ours, "ours-all-values", "--values", str(OUR_VALUES)),
                       helm.template(theirs, "existing-all-values", "--values", str(THEIR_VALUES))),
        "aws-region": (helm.template(ours, "ours-aws-region", *AWS_REGION),
                       helm.template(theirs, "existing-aws-region", *AWS_REGION)),
        "driver-on": (helm.template(ours, "ours-driver-on", *DRIVER_ON),
                      helm.template(theirs, "existing-driver-on", *DRIVER_ON)),
    }
    declared = yaml.safe_load(DECLARED.read_text())
    check_values(theirs_chart, declared.get("ignored-values") or {}, declared.get("same-meaning") or {})
    check_declared(declared["differences"], rendered)
    check_docs([e["id"] for e in declared["differences"]] + list(declared.get("ignored-values") or {}))
    if FAILURES:
        print("existing chart comparison failed:")
        for f in FAILURES:
            print(" -", f)
        sys.exit(1)
    count = sum(len(e.get("at", [])) for e in declared["differences"])
    print(f"existing chart comparison passed ({CHART_NAME} {CHART_VERSION} from {theirs_chart}: {len(KINDS)} kinds and the "
          f"driver chart's objects; defaults, all values, the ClusterRole with awsRegion set, the driver on; {len(declared['differences'])} declared differences at {count} places, "
          f"each in {DOCS.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
