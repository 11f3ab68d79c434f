//! The attacks of issue #25 on the provider binary as deployed (`common::attack_node`),
//! the memory ones in a real memory cgroup with the chart's 100 MiB limit and no swap.
//!
//! Each asserts that the provider stays alive and under its limit (never OOM-killed),
//! that a benign mount sent meanwhile succeeds (its deadline: 3 s), and that the hostile
//! mount fails alone with an error naming the object and the limit it ran into.

use crate::common;

use std::time::Duration;

use common::attack_node::{Backend, Node};

/// How long the hostile mounts run before the benign one is sent.
const HEAD_START: Duration = Duration::from_millis(500);
/// The provider's default `--mount-timeout`.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);
/// A value of (nearly) Secrets Manager's maximum, 64 KiB.
const BIG: usize = 65_000;
/// The secrets the hostile classes read, named so that an error naming them is unmistakable.
const SMALL: &str = "small-json";
const WIDE: &str = "wide-json";
const EMPTY_KEYS: &str = "empty-keys";
const JMES_BUDGET: &[&str] = &["max_jmes_path_steps", "max_jmes_path_eval_bytes"];
/// A shared list written out as JSON stops at the size a file may have.
const JSON_BOUND: &[&str] = &[
    "max_jmes_path_steps",
    "max_jmes_path_eval_bytes",
    "max_secret_bytes",
];

fn small() -> [(String, String); 1] {
    [(SMALL.into(), r#"{"a":"x"}"#.into())]
}

/// `[@,@,…16 times…]`, flattened (`[]` after it) or not.
fn sixteen(flatten: bool) -> String {
    let list = format!("[{}]", ["@"; 16].join(","));
    match flatten {
        true => format!("{list}[]"),
        false => list,
    }
}

/// `n` stages of `sixteen`, piped: a list of 16ⁿ.
fn stages(n: usize, flatten: bool) -> String {
    vec![sixteen(flatten); n].join(" | ")
}

/// One object `object` with one jmesPath entry `path`, aliased `out`.
fn one_path(object: &str, extra: &str, path: &str) -> String {
    assert!(path.len() <= 1024, "within max_jmes_path_bytes");
    format!("- {{objectName: {object}, objectType: secretsmanager{extra}, jmesPath: [{{path: '{path}', objectAlias: out}}]}}\n")
}

/// A list of 16⁸ `"x"` built from `{"a":"x"}` by a ~300-byte expression.
fn amplified_list() -> String {
    one_path(SMALL, "", &format!("a | {}", stages(8, true)))
}

/// The same shape left shared (16 × 8 values), serialised by `nonString: json`.
fn amplified_json() -> String {
    let path = format!("a | {}", stages(8, false));
    one_path(SMALL, ", nonString: json", &path)
}

/// `[(@|S…), (@|S…)] | [0] == [1]`: two separately built (shared) lists of 16⁹
/// compared, element by element.
fn compared_lists() -> String {
    let side = format!("(@ | {})", stages(9, false));
    let path = format!("[{side}, {side}] | [0] == [1]");
    one_path(SMALL, ", nonString: json", &path)
}

/// 2,000 jmesPath entries, each the whole 64 KiB value of WIDE.
fn many_entries() -> String {
    let entries: String = (0..2000)
        .map(|i| format!("    - {{path: k, objectAlias: f{i}}}\n"))
        .collect();
    format!("- objectName: {WIDE}\n  objectType: secretsmanager\n  jmesPath:\n{entries}")
}

/// 1. A list of 16⁸ built from `{"a":"x"}` by a ~300-byte expression; and the same
///    shape left shared, serialised by `nonString: json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jmes_path_amplification_fails_alone_within_its_budget() {
    let Some(mut node) = Node::start("amplify", true, Backend::Moto, &[]).await else {
        return;
    };
    node.seed(small()).await;
    let sent = vec![
        node.send(&amplified_list(), "flat"),
        node.send(&amplified_json(), "json"),
    ];
    tokio::time::sleep(HEAD_START).await;
    node.benign("meanwhile").await;
    let answers = node.answers(sent, MOUNT_TIMEOUT).await;
    node.check_survived();
    for ((answer, target), limits) in answers
        .iter()
        .zip(["flat", "json"])
        .zip([JMES_BUDGET, JSON_BOUND])
    {
        node.check_fails_naming(answer, SMALL, limits);
        node.check_left_nothing(target);
    }
    node.benign("after").await;
    node.finish();
}

/// 2. A jmesPath that computes without allocating is stopped by its step budget, while
///    a benign mount is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jmes_path_cpu_fails_alone_within_its_steps() {
    let flags = ["--mount-timeout=10s"];
    let Some(mut node) = Node::start("cpu", false, Backend::Moto, &flags).await else {
        return;
    };
    node.seed(small()).await;
    let sent = vec![node.send(&compared_lists(), "cpu")];
    tokio::time::sleep(HEAD_START).await;
    node.benign("meanwhile").await;
    let answers = node.answers(sent, Duration::from_secs(10)).await;
    node.check_survived();
    node.check_fails_naming(&answers[0], SMALL, &["max_jmes_path_steps"]);
    node.benign("after").await;
    node.finish();
}

/// 2b. SIGTERM during that evaluation ends the process within the mount timeout + 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_jmes_path_cpu_attack_ends_within_the_mount_timeout_and_5s() {
    let mount_timeout = Duration::from_secs(5);
    let flags = ["--mount-timeout=5s"];
    let Some(mut node) = Node::start("sigterm", false, Backend::Moto, &flags).await else {
        return;
    };
    node.seed(small()).await;
    let _hostile = node.send(&compared_lists(), "cpu");
    tokio::time::sleep(Duration::from_secs(1)).await;
    node.provider.terminate();
    let bound = mount_timeout + Duration::from_secs(5);
    if node.provider.wait_for_exit(bound).await.is_none() {
        node.problem(format!("SIGTERM did not end the provider within {bound:?}"));
    }
    eprintln!("{}", node.provider.describe());
    node.finish();
}

/// 3. One 64 KiB JSON secret read by 2,000 jmesPath entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_jmes_path_entries_fail_alone() {
    let Some(mut node) = Node::start("entries", true, Backend::Moto, &[]).await else {
        return;
    };
    let value = format!(r#"{{"k":"{}"}}"#, "v".repeat(BIG));
    node.seed([(WIDE.to_string(), value)]).await;
    let sent = vec![node.send(&many_entries(), "entries")];
    tokio::time::sleep(HEAD_START).await;
    node.benign("meanwhile").await;
    let answers = node.answers(sent, MOUNT_TIMEOUT).await;
    node.check_survived();
    let limits = ["max_jmes_entries_per_object", "max_jmes_entries_per_mount"];
    node.check_fails_naming(&answers[0], WIDE, &limits);
    node.check_left_nothing("entries");
    node.benign("after").await;
    node.finish();
}

/// A JSON object of as many empty-valued keys (`"0":""`, `"1":""`, … in base 62) as
/// fit in BIG bytes: 7,700 or so.
fn empty_keys() -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let key = |mut n: usize, width: usize| {
        let mut k = vec![b'0'; width];
        for slot in k.iter_mut().rev() {
            *slot = DIGITS[n % 62];
            n /= 62;
        }
        String::from_utf8(k).unwrap()
    };
    let mut keys = Vec::new();
    let mut bytes = 2;
    'widths: for width in 1..=3 {
        for n in 0..62usize.pow(width as u32) {
            let entry = format!(r#""{}":"""#, key(n, width));
            if bytes + entry.len() + 1 > BIG {
                break 'widths;
            }
            bytes += entry.len() + 1;
            keys.push(entry);
        }
    }
    assert!(keys.len() > 7_000, "{} keys", keys.len());
    format!("{{{}}}", keys.join(","))
}

/// 4. expandJson of ~7,700 empty values, the object listed `aliases` times.
async fn expand_json_attack(label: &str, aliases: usize) {
    let Some(mut node) = Node::start(label, true, Backend::Moto, &[]).await else {
        return;
    };
    node.seed([(EMPTY_KEYS.to_string(), empty_keys())]).await;
    let class: String = (0..aliases)
        .map(|i| format!("- {{objectName: {EMPTY_KEYS}, objectType: secretsmanager, objectAlias: w{i}, expandJson: true}}\n"))
        .collect();
    let sent = vec![node.send(&class, "expand")];
    tokio::time::sleep(HEAD_START).await;
    node.benign("meanwhile").await;
    let answers = node.answers(sent, MOUNT_TIMEOUT).await;
    node.check_survived();
    node.check_fails_naming(&answers[0], EMPTY_KEYS, &["max_files_per_mount"]);
    node.check_left_nothing("expand");
    node.benign("after").await;
    node.finish();
}

/// About 2 M files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expand_json_of_empty_values_256_times_fails_alone_on_the_file_count() {
    expand_json_attack("expand256", 256).await;
}

/// About 46 K files, which mounted and left 62 MiB of tmpfs charged to the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expand_json_of_empty_values_6_times_fails_alone_on_the_file_count() {
    expand_json_attack("expand6", 6).await;
}

/// 5. Eight concurrent mounts of one selection matching 256 × 64 KiB secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_mounts_of_a_selection_of_256_large_secrets_stay_within_the_limit() {
    let Some(mut node) = Node::start("select", true, Backend::Moto, &[]).await else {
        return;
    };
    node.seed((0..256).map(|i| (format!("sel/s{i:03}"), format!("{i:08}").repeat(BIG / 8))))
        .await;
    let class = "- {objectType: secretsmanager, select: {namePrefix: sel/}}\n";
    let sent = (0..8)
        .map(|i| node.send(class, &format!("select-{i}")))
        .collect();
    tokio::time::sleep(HEAD_START).await;
    node.benign("meanwhile").await;
    let answers = node.answers(sent, MOUNT_TIMEOUT).await;
    node.check_survived();
    node.check_succeeded_or_refused(&answers);
    for (i, answer) in answers.iter().enumerate() {
        let target = node.target(&format!("select-{i}"));
        let files = std::fs::read_dir(target)
            .map(|d| {
                d.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with(".."))
                    .count()
            })
            .unwrap_or(0);
        if answer.is_ok() && files != 256 {
            node.problem(format!("mount {i} succeeded with {files} files, not 256"));
        }
    }
    node.benign("after").await;
    node.finish();
}

/// 6. Driver-writes mode: 24 concurrent mounts, each of its own 60 × 64 KiB secrets, so
///    each response is ~3.75 MiB. The benchmark's stub answers them (every secret
///    exists), so they run as concurrently as the provider lets them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_four_large_driver_writes_responses_stay_within_the_limit() {
    let backend = Backend::Stub {
        value_bytes: BIG as u64,
    };
    let flags = ["--driver-writes-secrets=true"];
    let Some(mut node) = Node::start("responses", true, backend, &flags).await else {
        return;
    };
    let class = |pod: usize| -> String {
        (0..60)
            .map(|i| format!("- {{objectName: pod{pod}/s{i:02}, objectType: secretsmanager}}\n"))
            .collect()
    };
    let sent = (0..24)
        .map(|pod| node.send(&class(pod), &format!("dw-{pod}")))
        .collect();
    tokio::time::sleep(HEAD_START).await;
    node.benign("meanwhile").await;
    let answers = node.answers(sent, MOUNT_TIMEOUT).await;
    node.check_survived();
    node.check_succeeded_or_refused(&answers);
    for response in answers.iter().flatten() {
        if response.files.len() != 60 {
            let files = response.files.len();
            node.problem(format!("a mount succeeded with {files} files, not 60"));
        }
    }
    node.benign("after").await;
    node.finish();
}
