"""The existing provider's README walk-through, replayed on the node of scripts/e2e-cluster
with kubectl and helm: the AWS steps against moto, the IAM and eksctl steps as the moto
role and the ServiceAccount's annotation. Each step prints its outcome; the first that
does not hold ends the run with status 1.
"""
import base64
import json
import pathlib
import shutil
import subprocess
import time

import e2e_cluster as E2E
from e2e_node import IMAGE_TAG, IMAGES, ROOT

RELEASE = "secrets-provider-aws"
NAMESPACE = "default"
SECRET_VALUE = '{"username":"memeuser", "password":"hunter2"}'
ROTATED = '{"username":"memeuser2", "password":"hunter3"}'
# Kinds whose objects come and go by themselves (not the release's).
EPHEMERAL = {"events", "leases", "endpoints", "endpointslices"}
# What the walk-through itself creates and a user removes (not the chart's).
USERS_OBJECTS = {"ServiceAccount/default/nginx-deployment-sa"}
# The provider's DaemonSet and pod label under each chart (release RELEASE).
OUR_DAEMONSET, OUR_APP = "csi-secrets-store-provider-aws", "csi-secrets-store-provider-aws"
EXISTING_DAEMONSET = f"{RELEASE}-secrets-store-csi-driver-provider-aws"
EXISTING_APP = "secrets-store-csi-driver-provider-aws"


def app_pod_spec(class_name, service_account=None):
    """A busybox container that mounts `class_name` at /mnt/secrets-store and exits on
    SIGTERM (as nginx does), so deleting its pod takes a second, not the grace period."""
    spec = {
        "containers": [{
            "name": "app", "image": f"{IMAGES['busybox']}:{IMAGE_TAG}", "imagePullPolicy": "Never",
            "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
            "volumeMounts": [{"name": "secrets", "mountPath": "/mnt/secrets-store", "readOnly": True}]}],
        "volumes": [{"name": "secrets", "csi": {"driver": "secrets-store.csi.k8s.io", "readOnly": True,
                                                "volumeAttributes": {"secretProviderClass": class_name}}}],
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    return spec


class StepFailed(Exception):
    pass


class Walkthrough:
    def __init__(self, node):
        self.node = node
        self.results = []

    # ------------------------------------------------------------ helpers
    def kubectl(self, *args, check=True, input=None):
        result = self.node.kubectl(*args, check=False, input=input)
        if check and result.returncode != 0:
            raise StepFailed(f"kubectl {' '.join(args)}: {result.stdout}{result.stderr}")
        return result

    def apply(self, manifest):
        self.kubectl("apply", "-f", "-", input=manifest)

    def until(self, what, check, timeout=120):
        start = time.monotonic()
        last = None
        while time.monotonic() - start < timeout:
            try:
                if check():
                    return time.monotonic() - start
            except (StepFailed, json.JSONDecodeError, KeyError) as e:
                last = e
            time.sleep(0.5)
        raise StepFailed(f"timed out after {timeout} s waiting for {what}" + (f" (last: {last})" if last else ""))

    def aws(self, code):
        """Python with boto3 (moto's virtualenv) against moto: `client(service)` is given."""
        prelude = (
            "import boto3\n"
            f"def client(service): return boto3.client(service, endpoint_url='http://{E2E.BRIDGE_IP}:{E2E.MOTO_PORT}',"
            f" region_name='{E2E.REGION}', aws_access_key_id='test', aws_secret_access_key='test')\n")
        result = subprocess.run([str(ROOT / ".venv/bin/python"), "-c", prelude + code],
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise StepFailed(f"AWS step failed: {result.stderr}")
        return result.stdout

    def pod_of(self, selector):
        pods = json.loads(self.kubectl("get", "pods", "-l", selector, "-o", "json").stdout)["items"]
        running = [p for p in pods if p["status"].get("phase") == "Running"
                   and not p["metadata"].get("deletionTimestamp")]
        if not running:
            raise StepFailed(f"no running pod of {selector}")
        return running[0]["metadata"]["name"]

    def exec_cat(self, pod, path):
        return self.kubectl("exec", pod, "--", "cat", path).stdout

    def step(self, name, action):
        start = time.monotonic()
        try:
            detail = action()
        except StepFailed as e:
            print(f"FAIL  {name}: {e}", flush=True)
            self.results.append((name, False))
            raise
        took = time.monotonic() - start
        print(f"ok    {name} ({took:.1f} s){': ' + detail if detail else ''}", flush=True)
        self.results.append((name, True))

    # ------------------------------------------------------------ install
    def chart(self):
        """Our chart with the driver's (from its Go module) packaged as its dependency, as
        `helm dependency build` would fetch it."""
        dest = self.node.work / "chart" / E2E.CHART.name
        shutil.copytree(E2E.CHART, dest, ignore=shutil.ignore_patterns("charts", "*.tgz", "Chart.lock"))
        module = subprocess.run(["go", "-C", str(ROOT / "tests/csidriver"), "list", "-m", "-f", "{{.Dir}}",
                                 "sigs.k8s.io/secrets-store-csi-driver"], capture_output=True, text=True, check=True)
        driver_chart = f"{module.stdout.strip()}/charts/{E2E.DRIVER_CHART_NAME}"
        self.node.helm("package", driver_chart, "--destination", dest / "charts")
        return dest

    def values(self):
        """The values a user on this node would pass: the local images, the node's
        directories, and AWS at moto (the chart's `env`)."""
        def image(name):
            return {"repository": IMAGES[name], "tag": IMAGE_TAG, "pullPolicy": "Never"}
        work = self.node.work
        values = {
            "image": image("provider"),
            "providerVolume": str(self.node.providers_dir),
            "kubeletPath": str(self.node.kubelet_dir),
            "env": [{"name": "AWS_ENDPOINT_URL", "value": f"http://{E2E.BRIDGE_IP}:{E2E.MOTO_PORT}"}],
            E2E.DRIVER_CHART_NAME: {
                "linux": {
                    "image": image("driver"),
                    "registrarImage": image("registrar"),
                    "livenessProbeImage": image("livenessprobe"),
                    # Its CRD hook Jobs run kubectl from an image of the driver's; helm
                    # installs the same CRDs from the chart's crds/ directory.
                    "crds": {"enabled": False},
                    "kubeletRootDir": str(self.node.kubelet_dir),
                    "providersDir": str(self.node.providers_dir),
                    "additionalProvidersDirs": [str(work / "more-providers")],
                },
                "syncSecret": {"enabled": True},
                "enableSecretRotation": True,
                "rotationPollInterval": "5s",
            },
            # Issue #30's two opt-ins: pod events (all: failures and rotations) and ACM.
            "events": {"enabled": True, "mode": "all"},
            "acmCertificates": True,
        }
        path = work / "values.yaml"
        path.write_text(json.dumps(values, indent=2))
        return path

    def daemonsets_ready(self):
        sets = json.loads(self.kubectl("get", "daemonsets", "-n", "kube-system", "-o", "json").stdout)["items"]
        if len(sets) < 2:
            return False
        return all(s["status"].get("numberReady", 0) >= 1
                   and s["status"].get("updatedNumberScheduled", 0) == s["status"].get("desiredNumberScheduled", -1)
                   for s in sets)

    def install(self):
        self.before_install = self.objects()
        self.chart_dir = chart = self.chart()
        self.values_file = values = self.values()
        self.node.helm("install", "-n", "kube-system", RELEASE, chart, "-f", values)
        took = self.until("the provider's and the driver's DaemonSets to be Ready", self.daemonsets_ready, 240)
        sets = json.loads(self.kubectl("get", "daemonsets", "-n", "kube-system", "-o", "json").stdout)["items"]
        names = ", ".join(s["metadata"]["name"] for s in sets)
        return f"helm install; DaemonSets {names} Ready in {took:.1f} s"

    # ------------------------------------------------------------ the README's steps
    def secret_and_role(self):
        policy = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            "Resource": ["arn:*:secretsmanager:*:*:secret:MySecret-??????"]}]})
        trust = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/e2e"},
            "Action": "sts:AssumeRoleWithWebIdentity"}]})
        role_name = E2E.ROLE.rsplit("/", 1)[1]
        self.aws(f"client('secretsmanager').create_secret(Name='MySecret', SecretString={SECRET_VALUE!r})\n"
                 "client('ssm').put_parameter(Name='MyParameter', Value='parameter-value', Type='String')\n"
                 "iam = client('iam')\n"
                 f"arn = iam.create_policy(PolicyName='nginx-deployment-policy', PolicyDocument={policy!r})"
                 "['Policy']['Arn']\n"
                 f"iam.create_role(RoleName={role_name!r}, AssumeRolePolicyDocument={trust!r})\n"
                 f"iam.attach_role_policy(RoleName={role_name!r}, PolicyArn=arn)\n")
        self.apply(f"""apiVersion: v1
kind: ServiceAccount
metadata:
  name: nginx-deployment-sa
  namespace: {NAMESPACE}
  annotations:
    eks.amazonaws.com/role-arn: {E2E.ROLE}
""")
        return "MySecret, MyParameter, the policy and the role in moto; ServiceAccount nginx-deployment-sa annotated"

    def class_and_deployment(self):
        self.apply(f"""apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: nginx-deployment-aws-secrets
  namespace: {NAMESPACE}
spec:
  provider: aws
  parameters:
    region: {E2E.REGION}
    objects: |
        - objectName: "MySecret"
          objectType: "secretsmanager"
          jmesPath:
            - path: username
              objectAlias: dbusername
        - objectName: "MyParameter"
          objectType: "ssmparameter"
  secretObjects:
    - secretName: nginx-synced
      type: Opaque
      data:
        - objectName: dbusername
          key: username
""")
        self.apply(f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  namespace: {NAMESPACE}
  labels: {{app: nginx}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: nginx}}
  template:
    metadata:
      labels: {{app: nginx}}
    spec:
      serviceAccountName: nginx-deployment-sa
      containers:
        - name: nginx
          image: {IMAGES['busybox']}:{IMAGE_TAG}
          imagePullPolicy: Never
          command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
          env:
            - name: DB_USERNAME
              valueFrom:
                secretKeyRef: {{name: nginx-synced, key: username}}
          volumeMounts:
            - name: secrets-store-inline
              mountPath: /mnt/secrets-store
              readOnly: true
      volumes:
        - name: secrets-store-inline
          csi:
            driver: secrets-store.csi.k8s.io
            readOnly: true
            volumeAttributes:
              secretProviderClass: nginx-deployment-aws-secrets
""")
        took = self.until("the nginx pod to run", lambda: self.pod_of("app=nginx"), 120)
        return f"pod {self.pod_of('app=nginx')} running {took:.1f} s after kubectl apply"

    def read_the_file(self):
        value = self.exec_cat(self.pod_of("app=nginx"), "/mnt/secrets-store/MySecret")
        if value != SECRET_VALUE:
            raise StepFailed(f"/mnt/secrets-store/MySecret holds {value!r}")
        return "kubectl exec … cat /mnt/secrets-store/MySecret printed the secret"

    def jmespath_and_ssm(self):
        pod = self.pod_of("app=nginx")
        files = sorted(self.kubectl("exec", pod, "--", "ls", "/mnt/secrets-store").stdout.split())
        if files != ["MyParameter", "MySecret", "dbusername"]:
            raise StepFailed(f"/mnt/secrets-store holds {files}")
        if self.exec_cat(pod, "/mnt/secrets-store/dbusername") != "memeuser":
            raise StepFailed("dbusername does not hold the secret's username")
        if self.exec_cat(pod, "/mnt/secrets-store/MyParameter") != "parameter-value":
            raise StepFailed("MyParameter does not hold the parameter's value")
        return f"files {', '.join(files)}: the jmesPath alias holds the username, the SSM parameter its value"

    def synced_username(self):
        secret = json.loads(self.kubectl("get", "secret", "nginx-synced", "-o", "json").stdout)
        return base64.b64decode(secret["data"]["username"]).decode()

    def secret_objects_as_env(self):
        pod = self.pod_of("app=nginx")
        env = self.kubectl("exec", pod, "--", "sh", "-c", 'echo "$DB_USERNAME"').stdout.strip()
        if env != "memeuser":
            raise StepFailed(f"DB_USERNAME is {env!r}")
        if self.synced_username() != "memeuser":
            raise StepFailed("the Secret nginx-synced does not hold the username")
        # The driver's patcher (every 5 s) makes the pod's owner the Secret's owner, so that
        # the garbage collector removes it with the Deployment.
        owners = lambda: [f"{o['kind']}/{o['name']}" for o in json.loads(  # noqa: E731
            self.kubectl("get", "secret", "nginx-synced", "-o", "json").stdout)["metadata"].get("ownerReferences", [])]
        self.until("the driver to give Secret nginx-synced an owner", owners, 60)
        return (f"the driver made Secret nginx-synced (owner {', '.join(owners())}) from secretObjects; "
                "the pod has it as env DB_USERNAME")

    def rotation(self):
        pod = self.pod_of("app=nginx")
        restarts = lambda: json.loads(self.kubectl("get", "pod", pod, "-o", "json").stdout)[  # noqa: E731
            "status"]["containerStatuses"][0]["restartCount"]
        before = restarts()
        self.aws(f"client('secretsmanager').put_secret_value(SecretId='MySecret', SecretString={ROTATED!r})\n")
        took = self.until("the rotated value in the running pod",
                          lambda: self.exec_cat(pod, "/mnt/secrets-store/MySecret") == ROTATED, 120)
        synced = self.until("the rotated username in Secret nginx-synced",
                            lambda: self.synced_username() == "memeuser2", 120)
        if restarts() != before:
            raise StepFailed("the container restarted")
        return (f"put-secret-value; the running pod's file had the new value {took:.1f} s later, "
                f"Secret nginx-synced {took + synced:.1f} s later, no restart")

    def broken_class(self):
        self.apply(f"""apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: broken-class
  namespace: {NAMESPACE}
spec:
  provider: aws
  parameters:
    objects: |
        - objectName: "MySecret"
          objectType: "SecretsManager"
""")
        self.apply(json.dumps({"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "broken-pod", "namespace": NAMESPACE},
                               "spec": app_pod_spec("broken-class", "nginx-deployment-sa")}))
        found = {}

        def event():
            described = self.kubectl("describe", "pod", "broken-pod").stdout
            lines = [line.strip() for line in described.splitlines() if "FailedMount" in line]
            hit = [line for line in lines if "SecretsManager" in line]
            if hit:
                found["line"] = hit[0]
            return bool(hit)
        took = self.until("a FailedMount event naming the bad objectType", event, 120)
        self.kubectl("delete", "pod", "broken-pod", "--wait=true", "--timeout=60s")
        self.kubectl("delete", "secretproviderclass", "broken-class")
        return f"kubectl describe pod, {took:.1f} s after apply:\n        {found['line']}"

    def failed_rotation(self):
        """Driver v1.6 hides a failed remount from the kubelet; our pod events show it."""
        pod = self.pod_of("app=nginx")
        # SecretRotated events (mode all) of the earlier rotation, by name and resource
        # version: a new one, or one series updated, shows the recovery below.
        def rotated():
            events = json.loads(self.kubectl("get", "events.events.k8s.io", "-o", "json").stdout)["items"]
            return {e["metadata"]["name"]: e["metadata"]["resourceVersion"] for e in events
                    if e.get("reason") == "SecretRotated" and e.get("regarding", {}).get("name") == pod}
        before = rotated()
        self.aws("client('secretsmanager').delete_secret(SecretId='MySecret', ForceDeleteWithoutRecovery=True)\n")
        found = {}

        def event(reason, *words):
            def seen():
                described = self.kubectl("describe", "pod", pod).stdout
                hit = [line.strip() for line in described.splitlines()
                       if reason in line and all(w in line for w in words)]
                if hit:
                    found[reason] = hit[-1]
                return bool(hit)
            return seen
        took = self.until("a SecretRotationFailed event in kubectl describe pod",
                          event("SecretRotationFailed", "MySecret"), 120)
        if "hunter" in found["SecretRotationFailed"]:
            raise StepFailed("the event carries a secret value")
        if self.exec_cat(pod, "/mnt/secrets-store/MySecret") != ROTATED:
            raise StepFailed(f"{pod} lost its file when the rotation failed")
        self.aws(f"client('secretsmanager').create_secret(Name='MySecret', SecretString={ROTATED!r})\n")
        again = self.until("a SecretRotated event once the secret is back",
                           lambda: rotated() != before and event("SecretRotated")(), 120)
        return (f"delete-secret; kubectl describe pod, {took:.1f} s later:\n"
                f"        {found['SecretRotationFailed']}\n"
                f"        the pod kept its file; create-secret again, {again:.1f} s later:\n"
                f"        {found['SecretRotated']}")

    def acm_certificate(self):
        """An exported certificate as tls.crt and tls.key, and a kubernetes.io/tls Secret."""
        arn = self.aws(
            "print(client('acm').request_certificate(DomainName='web.example.com', CertificateAuthorityArn="
            f"'arn:aws:acm-pca:{E2E.REGION}:123456789012:certificate-authority/"
            "12345678-1234-1234-1234-123456789012')['CertificateArn'])\n").strip()
        self.apply(f"""apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: web-tls
  namespace: {NAMESPACE}
spec:
  provider: aws
  parameters:
    region: {E2E.REGION}
    objects: |
        - objectName: "{arn}"
          objectAlias: web.pem
          jmesPath:
            - {{path: certificate, objectAlias: tls.crt}}
            - {{path: privateKey, objectAlias: tls.key}}
  secretObjects:
    - secretName: web-tls
      type: kubernetes.io/tls
      data:
        - {{objectName: tls.crt, key: tls.crt}}
        - {{objectName: tls.key, key: tls.key}}
""")
        self.apply(json.dumps({"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "web-tls", "namespace": NAMESPACE, "labels": {"app": "web-tls"}},
                               "spec": app_pod_spec("web-tls", "nginx-deployment-sa")}))
        took = self.until("the web-tls pod to run", lambda: self.pod_of("app=web-tls"), 120)
        crt = self.exec_cat("web-tls", "/mnt/secrets-store/tls.crt")
        key = self.exec_cat("web-tls", "/mnt/secrets-store/tls.key")
        # The image's busybox has ls, not stat: -L shows the files the ..data links name.
        listed = self.kubectl("exec", "web-tls", "--", "ls", "-lL", "/mnt/secrets-store/tls.crt",
                              "/mnt/secrets-store/tls.key", "/mnt/secrets-store/web.pem").stdout.splitlines()
        modes = [line.split()[0] for line in listed]
        if modes != ["-rw-r--r--", "-r--------", "-r--------"]:
            raise StepFailed(f"tls.crt, tls.key, web.pem have modes {modes}")

        def key_matches(certificate, private_key):
            return self.aws(
                "from cryptography import x509\n"
                "from cryptography.hazmat.primitives import serialization\n"
                f"c = x509.load_pem_x509_certificate({certificate!r}.encode())\n"
                f"k = serialization.load_pem_private_key({private_key!r}.encode(), None)\n"
                "print(c.public_key().public_numbers() == k.public_key().public_numbers())\n").strip() == "True"
        if not key_matches(crt, key):
            raise StepFailed("tls.key is not the private key of tls.crt")
        found = {}

        def synced():
            secret = json.loads(self.kubectl("get", "secret", "web-tls", "-o", "json").stdout)
            found.update(secret)
            return (secret["type"] == "kubernetes.io/tls"
                    and base64.b64decode(secret["data"]["tls.crt"]).decode() == crt)
        sync = self.until("the kubernetes.io/tls Secret web-tls", synced, 120)
        # The driver writes the key as PKCS #1 (RSA PRIVATE KEY) into the Secret.
        if not key_matches(crt, base64.b64decode(found["data"]["tls.key"]).decode()):
            raise StepFailed("the Secret's tls.key is not the private key of its tls.crt")
        self.kubectl("delete", "pod", "web-tls", "--wait=true", "--timeout=60s")
        self.kubectl("delete", "secretproviderclass", "web-tls")
        # The Secret's owner was the pod; the driver's race (see uninstall) may write it again.
        gone = lambda: not self.kubectl("delete", "secret", "web-tls", "--ignore-not-found",  # noqa: E731
                                        "-o", "name").stdout.strip()
        self.until("the Secret web-tls to stay deleted", lambda: gone() and (time.sleep(2) or gone()), 60)
        return (f"pod running {took:.1f} s after apply; tls.crt 0644, tls.key and the bundle web.pem 0400, "
                f"the key the certificate's; Secret web-tls (kubernetes.io/tls) synced {sync:.1f} s later")

    def status_of(self, pod):
        statuses = json.loads(self.kubectl("get", "secretproviderclasspodstatuses", "-o", "json").stdout)["items"]
        return [s["metadata"]["name"] for s in statuses if s.get("status", {}).get("podName") == pod]

    def delete_pod(self):
        pod = self.pod_of("app=nginx")
        uid = json.loads(self.kubectl("get", "pod", pod, "-o", "json").stdout)["metadata"]["uid"]
        statuses = self.status_of(pod)
        if not statuses:
            raise StepFailed(f"no SecretProviderClassPodStatus for {pod}")
        mounted = lambda: any(uid in line for line in  # noqa: E731
                              pathlib.Path("/proc/self/mounts").read_text().splitlines())
        if not mounted():
            raise StepFailed(f"no mount of pod {uid} on the node")
        self.kubectl("delete", "pod", pod, "--wait=false")
        unmounted = self.until("the pod's volume to be unmounted", lambda: not mounted(), 120)
        collected = self.until("the garbage collector to remove the status", lambda: not self.status_of(pod), 120)
        self.until("the Deployment's new pod", lambda: self.pod_of("app=nginx"), 120)
        return (f"kubectl delete pod: its tmpfs unmounted after {unmounted:.1f} s, "
                f"{statuses[0]} collected after {unmounted + collected:.1f} s")

    def helm_upgrade(self):
        old_pod = self.pod_of("app=nginx")
        provider = self.pod_of_ns("kube-system", "app=csi-secrets-store-provider-aws")
        # A new pod template, so the DaemonSet rolls (a user's upgrade brings a new image).
        self.node.helm("upgrade", "-n", "kube-system", RELEASE, self.chart_dir, "-f", self.values_file,
                       "--set", "podAnnotations.e2e/upgraded=yes")
        self.kubectl("scale", "deployment", "nginx-deployment", "--replicas=2")
        took = self.until("the provider's new pod to be Ready", lambda: self.provider_replaced(provider), 180)
        self.until("two nginx pods to run", lambda: len(self.running("app=nginx")) == 2, 180)
        if self.exec_cat(old_pod, "/mnt/secrets-store/MySecret") != ROTATED:
            raise StepFailed(f"{old_pod} lost its file in the upgrade")
        new_pod = next(p for p in self.running("app=nginx") if p != old_pod)
        if self.exec_cat(new_pod, "/mnt/secrets-store/MySecret") != ROTATED:
            raise StepFailed(f"{new_pod}, mounted during the rollout, lacks the secret")
        return (f"helm upgrade: the provider's pod replaced in {took:.1f} s; {old_pod} kept its files; "
                f"{new_pod}, created with the upgrade, mounted")

    def provider_replaced(self, old):
        pods = self.running("app=csi-secrets-store-provider-aws", "kube-system", ready=True)
        return bool(pods) and old not in pods

    def secret_owners(self):
        return json.loads(self.kubectl("get", "secret", "nginx-synced", "-o", "json").stdout)[
            "metadata"].get("ownerReferences", [])

    def uninstall(self):
        # How often the synced Secret has an owner, sampled over 10 s (see below).
        samples = []
        for _ in range(20):
            samples.append(bool(self.secret_owners()))
            time.sleep(0.5)
        # Foreground: the ReplicaSet, the synced Secret's owner, goes after its pods. In the
        # background (kubectl's default) the Secret can go first, while the pods terminate,
        # and the driver's controllers, reading pods from their cache, create it again
        # without an owner: a race of the driver (v1.6.0) seen here, which leaves it behind.
        self.kubectl("delete", "deployment", "nginx-deployment", "--cascade=foreground", "--wait=true")
        self.until("the nginx pods to go", lambda: not self.all_pods("app=nginx"), 120)
        self.kubectl("delete", "secretproviderclass", "nginx-deployment-aws-secrets")
        self.node.helm("uninstall", "-n", "kube-system", RELEASE, "--wait", "--timeout", "120s")
        self.until("the provider's and the driver's pods to go",
                   lambda: not self.kubectl("get", "pods", "-n", "kube-system", "-o", "name").stdout.strip(), 120)
        found = {}

        def nothing_left():
            left = sorted(self.objects() - self.before_install - USERS_OBJECTS)
            found["crds"] = [o for o in left if o.startswith("CustomResourceDefinition/")]
            # The API server serves each CRD's group as an APIService (<version>.<group>).
            groups = {o.rsplit("/", 1)[1].split(".", 1)[1] for o in found["crds"]}
            found["others"] = [o for o in left if o not in found["crds"] and not (
                o.startswith("APIService/") and o.rsplit("/", 1)[1].split(".", 1)[1] in groups)]
            if found["others"]:
                detail = ""
                if "Secret/default/nginx-synced" in found["others"]:
                    meta = json.loads(self.kubectl("get", "secret", "nginx-synced", "-o", "json").stdout)["metadata"]
                    detail = (f" (nginx-synced created {meta['creationTimestamp']}, owners "
                              f"{meta.get('ownerReferences', [])})")
                raise StepFailed(f"left behind: {found['others']}{detail}")
            return True
        # The synced Secret goes when the garbage collector has removed its owners, the
        # pods' status objects: not at once.
        orphan = ""
        try:
            self.until("every object of the release and the walk-through to go", nothing_left, 60)
        except StepFailed:
            if found["others"] != ["Secret/default/nginx-synced"] or self.secret_owners():
                raise
            # The driver's rotation rewrites the synced Secret without the owner its patcher
            # sets every 5 s; deleted in between, the ReplicaSet leaves it behind. Not the
            # chart's: reported, and removed as its user would have to.
            orphan = (f"; the driver left Secret nginx-synced without an owner (it had one in "
                      f"{sum(samples)} of {len(samples)} samples over 10 s before): deleted by hand")
            self.kubectl("delete", "secret", "nginx-synced")
        kept_crds = found["crds"]
        sockets = list(self.node.providers_dir.iterdir())
        if sockets:
            raise StepFailed(f"left in the providers directory: {sockets}")
        return (f"helm uninstall: no object of the release left, no socket; the driver's {len(kept_crds)} CRDs "
                f"stay, as helm keeps every chart's crds/{orphan}")

    # ------------------------------------------------------------ the existing chart, ours, and back
    def existing_chart(self):
        """The existing provider's chart (3.1.1) from its source, the driver's chart packaged
        into it as for ours, and its values: the same driver values as ours."""
        dest = self.node.work / "chart" / "existing"
        source = self.node.existing[1] / "charts" / E2E.CHART.name
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns("charts", "*.tgz", "Chart.lock"))
        shutil.copytree(self.chart_dir / "charts", dest / "charts")
        ours = json.loads(self.values_file.read_text())
        values = {
            "image": {"repository": IMAGES["existing"], "tag": IMAGE_TAG, "pullPolicy": "Never"},
            "providerVolume": ours["providerVolume"],
            "kubeletPath": ours["kubeletPath"],
            E2E.DRIVER_CHART_NAME: ours[E2E.DRIVER_CHART_NAME],
        }
        values_file = self.node.work / "existing-values.yaml"
        values_file.write_text(json.dumps(values, indent=2))
        # It has no value for extra env: AWS_ENDPOINT_URL (moto) is added after rendering,
        # as a user of that chart would have to.
        renderer = self.node.work / "add-endpoint"
        renderer.write_text(f"""#!{ROOT / '.venv/bin/python'}
import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
for d in docs:
    if d.get("kind") == "DaemonSet" and d["metadata"]["name"].endswith("secrets-store-csi-driver-provider-aws"):
        for c in d["spec"]["template"]["spec"]["containers"]:
            c.setdefault("env", []).append(
                {{"name": "AWS_ENDPOINT_URL", "value": "http://{E2E.BRIDGE_IP}:{E2E.MOTO_PORT}"}})
yaml.safe_dump_all(docs, sys.stdout)
""")
        renderer.chmod(0o755)
        return dest, values_file, renderer

    def daemonset_names(self):
        sets = json.loads(self.kubectl("get", "daemonsets", "-n", "kube-system", "-o", "json").stdout)["items"]
        return {s["metadata"]["name"]: s for s in sets}

    def only_provider_ready(self, name):
        sets = self.daemonset_names()
        providers = [n for n in sets if n != E2E.DRIVER_CHART_NAME]
        ready = lambda s: s["status"].get("numberReady", 0) >= 1 and (  # noqa: E731
            s["status"].get("updatedNumberScheduled", 0) == s["status"].get("desiredNumberScheduled", -1))
        return providers == [name] and all(ready(s) for s in sets.values()) and len(
            self.running(f"app={self.provider_app}", "kube-system", ready=True)) == 1

    def install_existing(self):
        self.existing = self.existing_chart()
        chart, values, renderer = self.existing
        self.provider_app = EXISTING_APP
        self.node.helm("install", "-n", "kube-system", RELEASE, chart, "-f", values, "--post-renderer", renderer)
        took = self.until("the existing provider's DaemonSet to be Ready",
                          lambda: self.only_provider_ready(EXISTING_DAEMONSET), 240)
        return f"helm install of the existing chart 3.1.1: DaemonSet {EXISTING_DAEMONSET} Ready in {took:.1f} s"

    def mount_through_existing(self):
        self.apply(f"""apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: pod-identity-class
  namespace: {NAMESPACE}
spec:
  provider: aws
  parameters:
    region: {E2E.REGION}
    usePodIdentity: "true"
    objects: |
        - objectName: "MySecret"
          objectType: "secretsmanager"
""")
        labels = {"app": "upgrade-app"}
        self.apply(json.dumps({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "upgrade-app", "namespace": NAMESPACE},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": app_pod_spec("pod-identity-class")}}}))
        took = self.until("a pod mounted by the existing provider", lambda: self.running("app=upgrade-app"), 120)
        self.check_files("app=upgrade-app", 1)
        return f"a Deployment's pod (Pod Identity) ran {took:.1f} s after kubectl apply and reads the secret"

    def check_files(self, selector, count):
        pods = self.running(selector)
        if len(pods) != count:
            raise StepFailed(f"{len(pods)} running pods of {selector}, not {count}")
        for pod in pods:
            if self.exec_cat(pod, "/mnt/secrets-store/MySecret") != ROTATED:
                raise StepFailed(f"{pod} does not read the secret")
        return pods

    def restarts(self, selector):
        pods = json.loads(self.kubectl("get", "pods", "-n", "kube-system", "-l", selector, "-o", "json").stdout)
        return sum(c["restartCount"] for p in pods["items"] for c in p["status"].get("containerStatuses", []))

    def switch(self, to_app, to_daemonset, helm_args, replicas):
        """helm upgrade of the release to the other chart; then the running pods keep their
        files, a new pod mounts, and the provider now serving never restarted."""
        before = self.running("app=upgrade-app")
        self.provider_app = to_app
        self.node.helm("upgrade", "-n", "kube-system", RELEASE, *helm_args)
        self.kubectl("scale", "deployment", "upgrade-app", f"--replicas={replicas}")
        took = self.until(f"{to_daemonset} alone to serve", lambda: self.only_provider_ready(to_daemonset), 240)
        mounted = self.until(f"{replicas} pods of upgrade-app",
                             lambda: len(self.running("app=upgrade-app")) == replicas, 120)
        pods = self.check_files("app=upgrade-app", replicas)
        if not set(before) <= set(pods):
            raise StepFailed(f"pods {before} did not all survive the upgrade: {pods}")
        if self.restarts(f"app={to_app}"):
            raise StepFailed(f"the provider {to_daemonset} restarted")
        if not self.node.providers_dir.joinpath("aws.sock").is_socket():
            raise StepFailed("no aws.sock after the upgrade")
        return (f"helm upgrade: {to_daemonset} alone in {took:.1f} s, the other DaemonSet deleted; "
                f"{len(before)} running pod(s) kept their files; {replicas} pods running "
                f"{took + mounted:.1f} s after the upgrade; "
                "no provider restart")

    def existing_to_ours(self):
        return self.switch(OUR_APP, OUR_DAEMONSET, [self.chart_dir, "-f", self.values_file], 2)

    def ours_to_existing(self):
        chart, values, renderer = self.existing
        return self.switch(EXISTING_APP, EXISTING_DAEMONSET, [chart, "-f", values, "--post-renderer", renderer], 3)

    def uninstall_existing(self):
        self.kubectl("delete", "deployment", "upgrade-app", "--wait=true")
        self.until("the pods to go", lambda: not self.all_pods("app=upgrade-app"), 120)
        self.kubectl("delete", "secretproviderclass", "pod-identity-class")
        self.node.helm("uninstall", "-n", "kube-system", RELEASE, "--wait", "--timeout", "120s")
        return "helm uninstall"

    # ------------------------------------------------------------ listing
    def running(self, selector, namespace=NAMESPACE, ready=False):
        pods = json.loads(self.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout)["items"]
        names = []
        for p in pods:
            if p["status"].get("phase") != "Running" or p["metadata"].get("deletionTimestamp"):
                continue
            if ready and not all(c.get("ready") for c in p["status"].get("containerStatuses", [])):
                continue
            names.append(p["metadata"]["name"])
        return names

    def pod_of_ns(self, namespace, selector):
        pods = self.running(selector, namespace)
        if not pods:
            raise StepFailed(f"no running pod of {selector} in {namespace}")
        return pods[0]

    def all_pods(self, selector):
        return self.kubectl("get", "pods", "-l", selector, "-o", "name").stdout.split()

    def objects(self):
        """Every object of every listable kind but the ephemeral ones, as Kind/namespace/name."""
        kinds = self.kubectl("api-resources", "--verbs=list", "-o", "name").stdout.split()
        kinds = [k for k in kinds if k.split(".")[0] not in EPHEMERAL]
        listed = self.kubectl("get", ",".join(kinds), "-A", "-o",
                              "jsonpath={range .items[*]}{.kind}/{.metadata.namespace}/{.metadata.name}{'\\n'}{end}")
        return set(listed.stdout.split())

    def run(self):
        steps = [
            ("helm install of our chart with the driver's", self.install),
            ("create the secret and the role (moto)", self.secret_and_role),
            ("the SecretProviderClass and the Deployment", self.class_and_deployment),
            ("the pod reads the secret's file", self.read_the_file),
            ("jmesPath entries and an SSM parameter", self.jmespath_and_ssm),
            ("secretObjects: a Secret used as env", self.secret_objects_as_env),
            ("rotation reaches the running pod", self.rotation),
            ("a broken class, as kubectl describe pod shows it", self.broken_class),
            ("a failed rotation, as kubectl describe pod shows it", self.failed_rotation),
            ("an ACM certificate as tls.crt, tls.key and a kubernetes.io/tls Secret", self.acm_certificate),
            ("deleting the pod unmounts; its status is collected", self.delete_pod),
            ("helm upgrade over running pods", self.helm_upgrade),
            ("helm uninstall leaves nothing behind", self.uninstall),
        ]
        if self.node.existing:
            steps += [
                ("helm install of the existing provider's chart", self.install_existing),
                ("a pod mounts through the existing provider", self.mount_through_existing),
                ("helm upgrade from the existing chart to ours", self.existing_to_ours),
                ("helm upgrade back to the existing chart", self.ours_to_existing),
                ("helm uninstall of the existing chart", self.uninstall_existing),
            ]
        try:
            for name, action in steps:
                self.step(name, action)
        except StepFailed:
            self.diagnose()
            return 1
        print(f"e2e-cluster: all {len(self.results)} steps held", flush=True)
        return 0

    def diagnose(self):
        for args in [("get", "pods", "-A", "-o", "wide"), ("get", "events", "-A", "--sort-by=.lastTimestamp")]:
            print(self.kubectl(*args, check=False).stdout[-4000:])
        pods = self.kubectl("get", "pods", "-n", "kube-system", "-o", "name", check=False).stdout.split()
        for pod in pods:
            print(f"--- logs of {pod}:")
            print(self.kubectl("logs", "-n", "kube-system", pod, "--all-containers", "--tail=30", check=False).stdout)
