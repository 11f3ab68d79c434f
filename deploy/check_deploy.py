#!/usr/bin/env python3
"""Offline checks of the Helm chart, the plain manifest and the examples.

No helm binary and no API server are available here, so the chart is rendered by a
small renderer of the Go-template subset the chart uses ({{ .Values.x }}, if/else/with/
end, the pipes toYaml, nindent, indent, quote), then compared with deploy/installer.yaml,
the source of truth for the defaults. Run by ./scripts/test; exits non-zero on failure.
"""
import copy
import pathlib
import re
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy/helm/secrets-store-csi-driver-provider-aws"
FAILURES = []


def check(condition, message):
    if not condition:
        FAILURES.append(message)


# ---------------------------------------------------------------- template renderer
ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def tokenize(text):
    tokens, pos = [], 0
    for m in ACTION.finditer(text):
        tokens.append(["text", text[pos:m.start()]])
        tokens.append(["action", m.group(2), m.group(1) == "-", m.group(3) == "-"])
        pos = m.end()
    tokens.append(["text", text[pos:]])
    for i, t in enumerate(tokens):
        if t[0] != "action":
            continue
        if t[2] and i > 0:
            tokens[i - 1][1] = tokens[i - 1][1].rstrip()
        if t[3] and i + 1 < len(tokens):
            tokens[i + 1][1] = tokens[i + 1][1].lstrip()
    return tokens


def parse(tokens):
    root = {"kind": "block", "body": []}
    stack = [root]
    for t in tokens:
        if t[0] == "text":
            stack[-1]["body"].append(("text", t[1]))
            continue
        action = t[1]
        word = action.split()[0] if action.split() else ""
        if word in ("if", "with"):
            node = {"kind": word, "expr": action[len(word):].strip(), "body": [], "else": []}
            stack[-1]["body"].append(("node", node))
            stack.append(node)
            node["current"] = node["body"]
        elif word == "else":
            stack[-1]["current"] = stack[-1]["else"]
        elif word == "end":
            stack.pop()
        else:
            stack[-1].setdefault("current", stack[-1]["body"]).append(("expr", action))
    return root


def lookup(path, dot, top):
    if path == ".":
        return dot
    base = top if not path.startswith(".") or path.split(".")[1] in ("Values", "Release", "Chart") else dot
    value = base
    for part in path.strip(".").split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"{path}: no key {part}")
        value = value[part]
    return value


def to_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def apply(fn, args):
    if fn == "toYaml":
        return yaml.safe_dump(args[0], default_flow_style=False, sort_keys=False).rstrip("\n")
    if fn in ("nindent", "indent"):
        pad = " " * int(args[0])
        text = "\n".join(pad + line for line in to_text(args[1]).split("\n"))
        return "\n" + text if fn == "nindent" else text
    if fn == "quote":
        return '"' + to_text(args[0]).replace('"', '\\"') + '"'
    raise ValueError(f"unsupported function {fn}")


def term(word, dot, top):
    if word.startswith('"'):
        return word.strip('"')
    if re.fullmatch(r"-?\d+", word):
        return int(word)
    return lookup(word, dot, top)


def evaluate(expr, dot, top):
    """A pipeline: `x | fn a | fn`, or `fn a x` as its first stage."""
    value = None
    for i, stage in enumerate(s.strip() for s in expr.split("|")):
        words = stage.split()
        if words[0] in ("toYaml", "nindent", "indent", "quote"):
            args = [term(w, dot, top) for w in words[1:]]
            if i > 0:
                args.append(value)
            value = apply(words[0], args)
        else:
            value = term(words[0], dot, top)
    return value


def truthy(value):
    return value not in (None, False, 0, "", [], {})


def render_block(body, dot, top):
    out = []
    for kind, item in body:
        if kind == "text":
            out.append(item)
        elif kind == "expr":
            out.append(to_text(evaluate(item, dot, top)))
        else:
            value = evaluate(item["expr"], dot, top)
            if truthy(value):
                inner_dot = value if item["kind"] == "with" else dot
                out.append(render_block(item["body"], inner_dot, top))
            else:
                out.append(render_block(item["else"], dot, top))
    return "".join(out)


def render_chart(values):
    top = {"Values": values, "Release": {"Namespace": "kube-system", "Name": "provider"}, "Chart": {"AppVersion": "0.1.0"}}
    docs = []
    for template in sorted((CHART / "templates").glob("*.yaml")):
        text = render_block(parse(tokenize(template.read_text()))["body"], top, top)
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def by_kind(docs):
    return {d["kind"]: d for d in docs}


def merged(base, override):
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


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
            lookup("." + key, values, values)
        except KeyError:
            FAILURES.append(f"values.yaml lacks {key} (spec section 11)")
    check(values["resources"]["requests"] == {"cpu": "50m", "memory": "100Mi"}, "resources default is 50m/100Mi")
    audiences = [t["audience"] for t in values["secrets-store-csi-driver"]["tokenRequests"]]
    check(audiences == ["sts.amazonaws.com", "pods.eks.amazonaws.com"], f"tokenRequests audiences: {audiences}")
    refs = set()
    for template in (CHART / "templates").glob("*.yaml"):
        refs |= set(re.findall(r"\.Values\.([A-Za-z0-9_.-]+)", template.read_text()))
    for ref in sorted(refs):
        try:
            lookup(".Values." + ref, None, {"Values": values})
        except KeyError:
            FAILURES.append(f"templates reference .Values.{ref}, which values.yaml lacks")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    dep = chart["dependencies"][0]
    check(dep["name"] == "secrets-store-csi-driver" and dep["condition"] == "secrets-store-csi-driver.install",
          "Chart.yaml: optional dependency on the driver chart")


def check_chart_matches_installer(values):
    installer = by_kind([d for d in yaml.safe_load_all((ROOT / "deploy/installer.yaml").read_text()) if d])
    chart = by_kind(render_chart(values))
    check(set(chart) == set(installer), f"kinds differ: {sorted(chart)} vs {sorted(installer)}")
    check(chart["ClusterRole"]["rules"] == installer["ClusterRole"]["rules"], "RBAC rules differ")
    check(chart["ClusterRoleBinding"]["roleRef"] == installer["ClusterRoleBinding"]["roleRef"], "roleRef differs")
    ds, ids = chart["DaemonSet"]["spec"], installer["DaemonSet"]["spec"]
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
    env = {e["name"] for e in c["env"]}
    check("NODE_NAME" in env, "NODE_NAME is always set")


def check_chart_options(values):
    custom = merged(values, {
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
        "priorityClassName": "system-node-critical",
        "awsRegion": "eu-west-1",
        "useFipsEndpoint": True,
        "eksAddonVersion": "v1.0.0-eksbuild.1",
        "podIdentityHttpTimeout": "500ms",
        "driverWritesSecrets": True,
        "rbac": {"install": False},
        "commonLabels": {"team": "platform"},
        "providerVolume": "/var/run/providers",
        "kubeletPath": "/var/lib/k0s/kubelet",
    })
    docs = by_kind(render_chart(custom))
    check("ClusterRole" not in docs, "rbac.install=false drops the RBAC objects")
    pod = docs["DaemonSet"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    check(pod["tolerations"][0]["key"] == "dedicated", "tolerations are rendered")
    check(pod["priorityClassName"] == "system-node-critical", "priorityClassName is rendered")
    env = {e["name"]: e.get("value") for e in c["env"]}
    check(env.get("AWS_REGION") == "eu-west-1" and env.get("AWS_USE_FIPS_ENDPOINT") == "true", f"env: {env}")
    check("--eks-addon-version=v1.0.0-eksbuild.1" in c["args"], "eksAddonVersion flag")
    check("--pod-identity-http-timeout=500ms" in c["args"], "podIdentityHttpTimeout flag")
    check("--driver-writes-secrets=true" in c["args"], "driverWritesSecrets flag")
    check(pod["volumes"][0]["hostPath"]["path"] == "/var/run/providers", "providerVolume")
    check(c["volumeMounts"][1]["mountPath"] == "/var/lib/k0s/kubelet/pods", "kubeletPath")
    check(docs["DaemonSet"]["metadata"]["labels"]["team"] == "platform", "commonLabels")
    return docs


def check_schemas(values):
    """Strict schema validation of every core object (no CRD schemas offline)."""
    tmp = ROOT / "target" / "deploy-check"
    tmp.mkdir(parents=True, exist_ok=True)
    files = [ROOT / "deploy/installer.yaml"]
    rendered = tmp / "chart-rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(render_chart(values)))
    files.append(rendered)
    for example in ROOT.glob("examples/**/*.yaml"):
        docs = [d for d in yaml.safe_load_all(example.read_text()) if d and d.get("kind") != "SecretProviderClass"
                and "apiVersion" in d]
        if docs:
            out = tmp / ("example-" + example.name)
            out.write_text(yaml.safe_dump_all(docs))
            files.append(out)
    validator = pathlib.Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run([str(validator), "--strict", "-k", "1.32.0", *map(str, files)],
                            capture_output=True, text=True)
    check(result.returncode == 0, f"kubernetes-validate --strict failed:\n{result.stdout}\n{result.stderr}")


def main():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    check_yaml_parses()
    check_values_keys(values)
    check_chart_matches_installer(values)
    check_chart_options(values)
    check_schemas(values)
    if FAILURES:
        print("deploy checks failed:")
        for f in FAILURES:
            print(" -", f)
        sys.exit(1)
    print("deploy checks passed")


if __name__ == "__main__":
    main()
