"""The existing provider's README walk-through, replayed on the node of scripts/e2e-cluster
with kubectl and helm: the AWS steps against moto, the IAM and eksctl steps as the moto
role and the ServiceAccount's annotation. Each step prints its outcome; the first that
does not hold ends the run with status 1.
"""
import json
import shutil
import subprocess
import time

import e2e_cluster as E2E
from e2e_node import IMAGE_TAG, IMAGES, ROOT

RELEASE = "secrets-provider-aws"
NAMESPACE = "default"
SECRET_VALUE = '{"username":"memeuser", "password":"hunter2"}'


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
        chart = self.chart()
        values = self.values()
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
          command: ["sh", "-c", "while true; do sleep 1; done"]
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

    def run(self):
        steps = [
            ("helm install of our chart with the driver's", self.install),
            ("create the secret and the role (moto)", self.secret_and_role),
            ("the SecretProviderClass and the Deployment", self.class_and_deployment),
            ("the pod reads the secret's file", self.read_the_file),
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
