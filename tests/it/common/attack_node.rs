//! One node under attack, for `tests/it/attacks.rs`: the provider binary as the DaemonSet
//! runs it (IRSA from the fake API server, AWS through `AWS_ENDPOINT_URL`), in a memory
//! cgroup with the chart's limit where asked, and the checks every attack makes.
//!
//! The checks collect what went wrong instead of stopping at the first, so a failing run
//! tells the whole story (the benign mount timed out, then the provider was OOM-killed);
//! `finish` fails the test with all of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use provider::adapters::csi::proto::{MountRequest, MountResponse};
use testkit::aws_stub::{self, AwsStub};
use tonic::{Code, Status};

use super::cgroup::{Cgroup, Confined};
use super::fake_apiserver::{self, FakeApi};
use super::fault_proxy::{self, Proxy};
use super::moto::{self, Moto};
use super::request::Mount;
use super::Client;

const BIN: &str = env!("CARGO_BIN_EXE_secrets-store-csi-driver-provider-aws");
pub const REGION: &str = "us-east-1";
const ROLE: &str = "arn:aws:iam::123456789012:role/web";
const TOKENS: &str = r#"{"sts.amazonaws.com":{"token":"header.payload.sig","expirationTimestamp":"2099-01-01T00:00:00Z"}}"#;
/// The issue's "answers a benign mount within 3 s meanwhile": the benign mount's deadline.
pub const BENIGN_DEADLINE: Duration = Duration::from_secs(3);
const BENIGN_CLASS: &str = "- {objectName: benign, objectType: secretsmanager, objectAlias: b}";

/// One attack at a time: the machine may have two cores, and each wants its whole cgroup.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where AWS answers from.
pub enum Backend {
    /// moto behind the fault proxy: secrets are what the test seeds.
    Moto,
    /// The benchmark's stub (5 ms per call): every secret exists, `value_bytes` long.
    Stub { value_bytes: u64 },
}

enum Aws {
    Moto {
        moto: Moto,
        _proxy: Proxy,
    },
    /// Held only to keep the stub serving until the node is dropped.
    Stub {
        _stub: AwsStub,
    },
}

pub type Answer = Result<MountResponse, Status>;

pub struct Node {
    pub provider: Confined,
    client: Client,
    dir: tempfile::TempDir,
    driver_writes: bool,
    aws: Aws,
    _api: FakeApi,
    problems: Vec<String>,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Node {
    /// A node whose provider runs with `flags`, in a fresh 100 MiB cgroup when
    /// `confined`; None (after saying why) when moto or such a cgroup is unavailable.
    pub async fn start(
        label: &str,
        confined: bool,
        backend: Backend,
        flags: &[&str],
    ) -> Option<Node> {
        let serial = SERIAL.lock().await;
        let cgroup = match confined {
            true => Some(Cgroup::create(label)?),
            false => None,
        };
        let (aws, url) = match backend {
            Backend::Moto => {
                let moto = moto::start()?;
                let proxy = fault_proxy::start(&moto.url).await;
                let url = proxy.url.clone();
                (
                    Aws::Moto {
                        moto,
                        _proxy: proxy,
                    },
                    url,
                )
            }
            Backend::Stub { value_bytes } => {
                let stub = aws_stub::start(Duration::from_millis(5)).await.unwrap();
                stub.set_value_bytes(value_bytes);
                let url = stub.url.clone();
                (Aws::Stub { _stub: stub }, url)
            }
        };
        let api = fake_apiserver::start().await;
        api.set_service_account("shop", "web", Some(ROLE), false);
        api.set_node("node-1", Some(REGION));
        // Pods' secret volumes are tmpfs, whose pages are charged to the writer's cgroup.
        let dir = match Path::new("/dev/shm").is_dir() {
            true => tempfile::tempdir_in("/dev/shm").unwrap(),
            false => tempfile::tempdir().unwrap(),
        };
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig).unwrap();
        let volume = dir.path().join("providers");
        let log = std::fs::File::create(dir.path().join("provider.log")).unwrap();
        let mut provider = Confined::spawn(Path::new(BIN), cgroup, |c| {
            c.arg(format!("--provider-volume={}", volume.display()))
                .args(["--metrics-addr=", "--log-level=warn"])
                .args(flags)
                .env("KUBECONFIG", &kubeconfig)
                .env_remove("KUBERNETES_SERVICE_HOST")
                .env("NODE_NAME", "node-1")
                .env("AWS_ENDPOINT_URL", &url)
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env_remove("AWS_REGION")
                .env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY")
                .env_remove("AWS_PROFILE")
                .stdout(Stdio::null())
                .stderr(log);
        });
        let socket = volume.join("aws.sock");
        super::wait_for_socket(&socket).await;
        if let Some(group) = &provider.cgroup {
            assert!(
                group.holds(provider.pid()),
                "the provider runs in {}",
                group.dir.display()
            );
        }
        assert!(provider.exit_status().is_none(), "{}", provider.describe());
        let client = super::connect(&socket).await;
        let node = Node {
            provider,
            client,
            dir,
            driver_writes: flags.contains(&"--driver-writes-secrets=true"),
            aws,
            _api: api,
            problems: Vec::new(),
            _serial: serial,
        };
        node.seed([("benign".to_string(), "benign-value".to_string())])
            .await;
        Some(node)
    }

    /// Creates the secrets in moto, 8 at a time (the stub has every secret already).
    pub async fn seed(&self, secrets: impl IntoIterator<Item = (String, String)>) {
        let Aws::Moto { moto, .. } = &self.aws else {
            return;
        };
        let sm = aws_sdk_secretsmanager::Client::new(&super::seed_config(&moto.url, REGION).await);
        futures::stream::iter(secrets)
            .map(|(name, value)| {
                let sm = sm.clone();
                async move {
                    sm.create_secret()
                        .name(&name)
                        .secret_string(value)
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("seeding {name}: {e:?}"));
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<()>>()
            .await;
    }

    /// A mount of `objects` by pod web-0 into its own target `name`.
    fn request(&self, objects: &str, name: &str) -> MountRequest {
        let target = self.target(name);
        std::fs::create_dir_all(&target).unwrap();
        let tokens = [("csi.storage.k8s.io/serviceAccount.tokens", TOKENS)];
        Mount::of(objects).with(&tokens).target(&target).grpc()
    }

    /// The target directory of the mount `name`.
    pub fn target(&self, name: &str) -> PathBuf {
        self.dir.path().join("pods").join(name)
    }

    /// Sends a mount of `objects` into the target `name`; it answers through the handle.
    pub fn send(&self, objects: &str, name: &str) -> tokio::task::JoinHandle<Answer> {
        let request = self.request(objects, name);
        let mut client = self.client.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let sent = std::time::Instant::now();
            let answer = client.mount(request).await.map(|r| r.into_inner());
            eprintln!("mount {name} answered after {:?}", sent.elapsed());
            answer
        })
    }

    /// The answers of `sent`, each waited for at most `deadline` + 5 s (no answer by
    /// then is a problem, and stands as DEADLINE_EXCEEDED).
    pub async fn answers(
        &mut self,
        sent: Vec<tokio::task::JoinHandle<Answer>>,
        deadline: Duration,
    ) -> Vec<Answer> {
        let bound = deadline + Duration::from_secs(5);
        let mut answers = Vec::new();
        for handle in sent {
            match tokio::time::timeout(bound, handle).await {
                Ok(answer) => answers.push(answer.unwrap()),
                Err(_) => {
                    let problem = format!("a hostile mount got no answer within {bound:?}");
                    self.problem(problem.clone());
                    answers.push(Err(Status::deadline_exceeded(problem)));
                }
            }
        }
        answers
    }

    /// A benign mount (`benign` as the file `b`) succeeds, with BENIGN_DEADLINE as its
    /// deadline.
    pub async fn benign(&mut self, name: &str) {
        let mut request = tonic::Request::new(self.request(BENIGN_CLASS, name));
        request.set_timeout(BENIGN_DEADLINE);
        let mut client = self.client.clone();
        let response = match tokio::time::timeout(BENIGN_DEADLINE, client.mount(request)).await {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => {
                let why = format!("{:?} {}", status.code(), status.message());
                return self.problem(format!("the benign mount {name} failed: {why}"));
            }
            Err(_) => {
                return self.problem(format!(
                    "the benign mount {name} got no answer within {BENIGN_DEADLINE:?}"
                ))
            }
        };
        let contents = match self.driver_writes {
            true => response
                .files
                .iter()
                .find(|f| f.path == "b")
                .map(|f| f.contents.clone()),
            false => std::fs::read(self.target(name).join("b")).ok(),
        };
        let expected = match self.aws {
            Aws::Moto { .. } => contents.as_deref() == Some(b"benign-value".as_slice()),
            Aws::Stub { .. } => contents.is_some_and(|c| !c.is_empty()),
        };
        if !expected {
            self.problem(format!("the benign mount {name} did not deliver its file"));
        }
    }

    /// Alive, never OOM-killed, and its cgroup never reached the limit.
    pub fn check_survived(&mut self) {
        eprintln!("{}", self.provider.describe());
        if !self.provider.alive() {
            self.problem("the provider is gone".into());
        }
        if let Some(group) = &self.provider.cgroup {
            let (kills, peak, limit) = (group.oom_kills(), group.peak(), group.limit());
            if kills > 0 {
                self.problem(format!("the OOM killer struck {kills} time(s)"));
            }
            if peak >= limit {
                self.problem(format!("the cgroup reached its limit ({peak} bytes)"));
            }
        }
    }

    /// The hostile mount failed, with a message naming `object` and one of `limits`.
    pub fn check_fails_naming(&mut self, answer: &Answer, object: &str, limits: &[&str]) {
        let status = match answer {
            Ok(_) => return self.problem(format!("the hostile mount of {object} succeeded")),
            Err(status) => status,
        };
        let message = status.message();
        eprintln!("hostile mount of {object}: {:?} {message}", status.code());
        let names_object = message.contains(object);
        let names_limit = limits.iter().any(|l| message.contains(l));
        if !(names_object && names_limit) {
            self.problem(format!(
                "the hostile mount of {object} failed without naming it and one of {limits:?}: {:?} {message}",
                status.code()
            ));
        }
    }

    /// The target `name` of a failed mount holds nothing: no file a pod would see, and
    /// no tmpfs page left charged to the provider.
    pub fn check_left_nothing(&mut self, name: &str) {
        let entries = std::fs::read_dir(self.target(name)).map_or(0, |d| d.count());
        if entries > 0 {
            self.problem(format!(
                "the mount {name} left {entries} entries in its target"
            ));
        }
    }

    /// Each answer a success or a refusal for memory (OUT_OF_RANGE).
    pub fn check_succeeded_or_refused(&mut self, answers: &[Answer]) {
        let refused = answers.iter().filter(|a| a.is_err()).count();
        eprintln!("{} succeeded, {refused} refused", answers.len() - refused);
        let mut others: BTreeMap<String, usize> = BTreeMap::new();
        for status in answers.iter().filter_map(|a| a.as_ref().err()) {
            if status.code() != Code::OutOfRange {
                let why = format!("{:?} {}", status.code(), status.message());
                *others.entry(why).or_default() += 1;
            }
        }
        for (why, n) in others {
            self.problem(format!("{n} mount(s) failed other than for memory: {why}"));
        }
    }

    pub fn problem(&mut self, problem: String) {
        eprintln!("problem: {problem}");
        self.problems.push(problem);
    }

    /// Fails the test with every problem seen, the provider's state and its last logs.
    pub fn finish(mut self) {
        if self.problems.is_empty() {
            return;
        }
        let log = std::fs::read_to_string(self.dir.path().join("provider.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        panic!(
            "{}\n{}\nlast log lines, newest first: {tail:#?}",
            self.problems.join("\n"),
            self.provider.describe(),
        );
    }
}
