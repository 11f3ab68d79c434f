//! `--scenario syscalls`: the system calls of one mount, counted with `strace -c`
//! attached to every thread of the running provider only while the mount runs (start-up
//! and idle work are not counted): a first mount of the benchmark's class (5 secrets +
//! 12 parameters: 17 files, 17 top-level names) into an empty tmpfs target, then a
//! remount of it, next to the floor of the layout.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::aws_stub;

use super::{connect, fake_cluster, request, start_provider, volume_dir};

/// Files of the class: one per object (no jmesPath), each a top-level name.
const FILES: usize = super::SECRETS + super::PARAMETERS;

type Counts = BTreeMap<String, (u64, u64)>;

pub(crate) async fn syscalls(bin: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        Command::new("strace").arg("-V").output().is_ok(),
        "strace is not installed"
    );
    let dir = volume_dir()?;
    let stub = aws_stub::start(Duration::ZERO).await?;
    let api = fake_cluster().await;
    let provider = start_provider(bin, dir.path(), &api, &stub.url).await?;
    let pid = provider.child.id();
    let mut client = connect(&provider.socket).await?;
    let target = dir.path().join("pod-0");
    std::fs::create_dir_all(&target)?;
    // Warm: credentials, clients and connections exist before anything is counted.
    let warm = dir.path().join("warm");
    std::fs::create_dir_all(&warm)?;
    client.mount(request(0, &warm, false)).await?;
    let mut counted = Vec::new();
    for _ in 0..2 {
        let out = dir.path().join(format!("strace-{}.txt", counted.len()));
        let tasks: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        let mut strace = Command::new("strace")
            .args(["-f", "-c", "-o"])
            .arg(&out)
            .arg("-p")
            .arg(tasks.join(","))
            .stderr(Stdio::null())
            .spawn()?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        client.mount(request(0, &target, false)).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // SIGINT: strace detaches and writes its summary.
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(strace.id() as i32)
                .ok_or_else(|| anyhow::anyhow!("no strace pid"))?,
            rustix::process::Signal::INT,
        )?;
        strace.wait()?;
        counted.push(parse(&std::fs::read_to_string(&out)?));
    }
    drop(provider);
    print(&counted[0], &counted[1]);
    Ok(())
}

/// `strace -c`'s table: calls and errors by system call.
fn parse(text: &str) -> Counts {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let name = *fields.last()?;
            if name == "total" || name == "syscall" || fields.len() < 5 {
                return None;
            }
            let calls: u64 = fields.get(3)?.parse().ok()?;
            let errors = if fields.len() == 6 {
                fields[4].parse().ok()?
            } else {
                0
            };
            Some((name.to_string(), (calls, errors)))
        })
        .collect()
}

/// The file system calls of the layout; the rest is the runtime and the network.
const FILE_SYSCALLS: &[&str] = &[
    "openat",
    "openat2",
    "write",
    "close",
    "fchmod",
    "fsync",
    "fdatasync",
    "symlinkat",
    "renameat",
    "renameat2",
    "unlinkat",
    "mkdirat",
    "readlinkat",
    "newfstatat",
    "statx",
    "fstat",
    "flock",
    "getdents64",
    "fchown",
    "linkat",
    "lseek",
    "ftruncate",
];

fn print(first: &Counts, remount: &Counts) {
    let names: std::collections::BTreeSet<&String> = first.keys().chain(remount.keys()).collect();
    let get = |c: &Counts, n: &str| c.get(n).copied().unwrap_or((0, 0));
    let show = |(calls, errors): (u64, u64)| {
        if errors > 0 {
            format!("{calls} ({errors} failed)")
        } else {
            calls.to_string()
        }
    };
    println!("\n### syscalls of one mount of {FILES} objects ({FILES} files), counted by strace -c on every thread of the provider during the mount\n");
    println!("| system call | first mount | remount |");
    println!("|---|---|---|");
    let (mut file_first, mut file_remount) = (0, 0);
    for name in names.iter().filter(|n| FILE_SYSCALLS.contains(&n.as_str())) {
        let (f, r) = (get(first, name), get(remount, name));
        file_first += f.0;
        file_remount += r.0;
        println!("| `{name}` | {} | {} |", show(f), show(r));
    }
    println!("| **file system, total** | **{file_first}** | **{file_remount}** |");
    let others = |c: &Counts| -> u64 {
        c.iter()
            .filter(|(n, _)| !FILE_SYSCALLS.contains(&n.as_str()))
            .map(|(_, (calls, _))| calls)
            .sum()
    };
    let top: Vec<String> = {
        let mut rest: Vec<(&String, u64)> = names
            .iter()
            .filter(|n| !FILE_SYSCALLS.contains(&n.as_str()))
            .map(|n| (*n, get(first, n).0 + get(remount, n).0))
            .collect();
        rest.sort_by_key(|r| std::cmp::Reverse(r.1));
        rest.iter()
            .take(6)
            .map(|(n, c)| format!("{n} {c}"))
            .collect()
    };
    println!(
        "| other (runtime, gRPC, HTTP to AWS; most: {}) | {} | {} |",
        top.join(", "),
        others(first),
        others(remount)
    );
    // The floor of the layout: a directory, one open+write+close per file, one link per
    // top-level name and the `..data` link (first mount); on a remount the same files,
    // a new `..data` swapped in by rename, and the old directory's files and itself
    // removed (the top-level links already point into `..data`).
    let floor_first = 1 + 3 * FILES + FILES + 1;
    let floor_remount = 1 + 3 * FILES + 2 + FILES + 1;
    println!("| floor of the layout | {floor_first} | {floor_remount} |");
}
