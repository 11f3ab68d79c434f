//! Provider-writes mode: all files of a mount become visible in one rename, or none do.
//!
//! The layout is the one the driver's own atomic writer (and the kubelet's) uses:
//!
//! ```text
//! target/..2026_11_26_23_33_25.123456789_x7f3q/   the files of one mount
//! target/..data -> ..2026_11_26_23_33_25.123456789_x7f3q
//! target/<name> -> ..data/<name>                    one link per top-level entry
//! ```
//!
//! A new mount writes a fresh directory, then swaps `..data` with one `rename`, so a
//! reader sees either every old file or every new one. Until the swap nothing visible
//! changes; after it, a failure puts the old `..data` back.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt, Permissions};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rand::distr::{Alphanumeric, SampleString};

use commit::commit;

use crate::domain::target::TargetPath;
use crate::ports::{MountSink, OutputFile, PublishGate, Published, SinkError};

mod commit;

const DATA_LINK: &str = "..data";
const DIR_MODE: u32 = 0o755;

/// Writes files into the pod's volume. Mounts of one target are serialized; different
/// targets proceed in parallel.
#[derive(Default)]
pub struct FsSink {
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

impl FsSink {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock_for(&self, target: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(target.to_path_buf()).or_default().clone()
    }

    fn release(&self, target: &Path, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        drop(lock);
        // Only this map holds it: nobody waits, so forget the target (bounded memory).
        if locks.get(target).is_some_and(|l| Arc::strong_count(l) == 1) {
            locks.remove(target);
        }
    }
}

struct Release<'a> {
    sink: &'a FsSink,
    target: &'a Path,
    lock: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.take() {
            self.sink.release(self.target, lock);
        }
    }
}

/// Whether `target` holds a published mount: its `..data` entry exists (ours, or the
/// driver's own writer's, which uses the same layout).
pub fn holds_mount(target: &TargetPath) -> bool {
    std::fs::symlink_metadata(target.as_path().join("..data")).is_ok()
}

#[async_trait]
impl MountSink for FsSink {
    #[tracing::instrument(name = "write", skip_all, fields(files = files.len()))]
    async fn publish(
        &self,
        target: &TargetPath,
        files: Vec<OutputFile>,
        gate: &PublishGate,
    ) -> Result<Published, SinkError> {
        let target_path = target.as_path().to_path_buf();
        let lock = self.lock_for(&target_path);
        // Forgets the target's lock however this call ends (a cancelled mount included).
        let _release = Release {
            sink: self,
            target: &target_path,
            lock: Some(lock.clone()),
        };
        let result = {
            // The guard moves into the blocking task: if this mount is cancelled (deadline),
            // the write still finishes before the next mount of the target starts.
            let waiting = lock.clone().lock_owned();
            let guard = match gate.deadline() {
                None => waiting.await,
                Some(deadline) => {
                    tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), waiting)
                        .await
                        .map_err(|_| SinkError::Abandoned {
                            path: target.to_string(),
                            reason:
                                "another mount of this target was still writing at the deadline"
                                    .into(),
                        })?
                }
            };
            let (dir, gate) = (target_path.clone(), gate.clone());
            tokio::task::spawn_blocking(move || {
                let _guard = guard;
                let result = write_atomically(&dir, &files, &gate);
                // Said here: when the mount was abandoned, nobody awaits this task.
                if let Err(SinkError::Abandoned { reason, .. }) = &result {
                    tracing::info!(target = %dir.display(), %reason, "mount abandoned: nothing published");
                }
                result
            })
            .await
            .unwrap_or_else(|e| {
                Err(SinkError::Write {
                    path: target.to_string(),
                    source: std::io::Error::other(format!("writer task failed: {e}")),
                })
            })
        };
        drop(lock);
        if result.is_ok() {
            tracing::debug!(target = %target, "published");
        }
        result.map(|()| Published::Written)
    }

    fn writes_files(&self) -> bool {
        true
    }

    fn holds_mount(&self, target: &TargetPath) -> bool {
        holds_mount(target)
    }
}

/// How often a writer asks again for a target that another process has locked.
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(10);

/// Takes the target's lock without ever blocking past the gate: a target locked by
/// someone else must not hold a writer thread (and so shutdown) for ever.
fn lock_target(lock: &std::fs::File, target: &Path, gate: &PublishGate) -> Result<(), SinkError> {
    use rustix::fs::{flock, FlockOperation};
    loop {
        match flock(lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(()),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::INTR => {
                if gate.is_closed() {
                    return Err(SinkError::Abandoned {
                        path: target.display().to_string(),
                        reason: "another writer held the target's lock until the deadline".into(),
                    });
                }
                std::thread::sleep(LOCK_RETRY);
            }
            Err(e) => return Err(target_error(target, &format!("cannot lock: {e}"))),
        }
    }
}

/// The whole publish, synchronous. On `Err`, the target is as it was.
///
/// Every operation is relative to a descriptor of the target directory (cap-std): a
/// path can never resolve outside it, whatever links the directory holds.
pub fn write_atomically(
    target: &Path,
    files: &[OutputFile],
    gate: &PublishGate,
) -> Result<(), SinkError> {
    let meta =
        std::fs::symlink_metadata(target).map_err(|e| target_error(target, &e.to_string()))?;
    if !meta.is_dir() {
        return Err(target_error(target, "is not a directory"));
    }
    let dir = Dir::open_ambient_dir(target, ambient_authority())
        .map_err(|e| target_error(target, &e.to_string()))?;
    // Serialize writers across processes too (old and new provider pods overlap during a
    // rolling update): one's payload in progress must never look like another's
    // leftover. Held until `lock` is closed, at the end of this call.
    let lock = std::fs::File::open(target).map_err(|e| target_error(target, &e.to_string()))?;
    lock_target(&lock, target, gate)?;
    if gate.is_closed() {
        return Err(SinkError::Abandoned {
            path: target.display().to_string(),
            reason: "the mount was abandoned while it waited for the target".into(),
        });
    }
    let previous = read_data_link(&dir);
    remove_leftovers(&dir, previous.as_deref());

    let new_dir_name = format!("..{}_{}", timestamp(), random_suffix());
    let durable = !on_tmpfs(&lock);
    if let Err(e) = write_payload(&dir, &new_dir_name, files, target, durable) {
        let _ = dir.remove_dir_all(&new_dir_name);
        return Err(e);
    }
    let new_names: BTreeSet<String> = files
        .iter()
        .map(|f| f.path.top_level().to_string())
        .collect();
    let old_names = our_links(&dir);
    // The last moment to give up: after this the mount's files become visible.
    if !gate.begin_commit() {
        let _ = dir.remove_dir_all(&new_dir_name);
        return Err(SinkError::Abandoned {
            path: target.display().to_string(),
            reason: "the mount's deadline passed before its files were published".into(),
        });
    }
    if let Err(e) = commit(
        &dir,
        target,
        &new_dir_name,
        &new_names,
        &old_names,
        previous.as_deref(),
    ) {
        if !e.data_still_new {
            let _ = dir.remove_dir_all(&new_dir_name);
        }
        return Err(e.error);
    }
    // The new files are live; what follows only tidies up and cannot undo a mount.
    for name in old_names.difference(&new_names) {
        let _ = dir.remove_file(name);
    }
    if let Some(old) = previous {
        if old != new_dir_name {
            let _ = dir.remove_dir_all(&old);
        }
    }
    Ok(())
}

fn target_error(target: &Path, reason: &str) -> SinkError {
    SinkError::Target {
        path: target.display().to_string(),
        reason: reason.to_string(),
    }
}

fn write_error(path: &Path, e: io::Error) -> SinkError {
    SinkError::Write {
        path: path.display().to_string(),
        source: e,
    }
}

/// The directory `..data` points at, when it is a link to a `..` entry of ours.
fn read_data_link(dir: &Dir) -> Option<String> {
    let dest = dir.read_link_contents(DATA_LINK).ok()?;
    let name = dest.to_str()?;
    (name.starts_with("..") && !name.contains('/') && name != ".." && name != DATA_LINK)
        .then(|| name.to_string())
}

/// Removes what a killed mount left behind: payload directories `..data` does not
/// point at, and temporary links. The driver's own layout uses the same names, and is
/// replaced the same way.
fn remove_leftovers(dir: &Dir, current: Option<&str>) {
    let Ok(entries) = dir.entries() else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("..") || name == DATA_LINK || Some(name) == current {
            continue;
        }
        match dir.symlink_metadata(name) {
            Ok(m) if m.is_dir() => {
                let _ = dir.remove_dir_all(name);
            }
            Ok(_) => {
                let _ = dir.remove_file(name);
            }
            Err(_) => {}
        }
    }
}

/// Top-level entries that are links into `..data`: what earlier mounts of ours wrote.
fn our_links(dir: &Dir) -> BTreeSet<String> {
    let Ok(entries) = dir.entries() else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_string();
            let dest = dir.read_link_contents(&name).ok()?;
            (dest == Path::new(DATA_LINK).join(&name)).then_some(name)
        })
        .collect()
}

/// Whether the target is on tmpfs (where pods' secret volumes live): its pages never
/// reach a disk, so `fsync` there is a system call that does nothing.
fn on_tmpfs(target: &std::fs::File) -> bool {
    // TMPFS_MAGIC of statfs(2).
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    rustix::fs::fstatfs(target).is_ok_and(|s| s.f_type as u64 == TMPFS_MAGIC)
}

/// Writes the payload directory; `durable` syncs each file and the directory (skipped
/// on tmpfs, where it does nothing).
fn write_payload(
    dir: &Dir,
    name: &str,
    files: &[OutputFile],
    target: &Path,
    durable: bool,
) -> Result<(), SinkError> {
    let shown = |rel: &Path| target.join(name).join(rel);
    make_dir(dir, Path::new(name), &target.join(name))?;
    let payload = dir
        .open_dir(name)
        .map_err(|e| write_error(&target.join(name), e))?;
    for file in files {
        let path = Path::new(file.path.as_str());
        if let Some(parent) = path.parent() {
            let mut current = PathBuf::new();
            for element in parent.components() {
                current.push(element);
                if !payload.is_dir(&current) {
                    make_dir(&payload, &current, &shown(&current))?;
                }
            }
        }
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(0o600);
        let mut out = payload
            .open_with(path, &options)
            .map_err(|e| write_error(&shown(path), e))?;
        out.write_all(file.contents.expose())
            .map_err(|e| write_error(&shown(path), e))?;
        // Set the mode on the open file: exact whatever the umask, and no window in which
        // the file is more readable than asked.
        out.set_permissions(Permissions::from_std(std::fs::Permissions::from_mode(
            file.mode.bits(),
        )))
        .map_err(|e| write_error(&shown(path), e))?;
        if durable {
            out.sync_all().map_err(|e| write_error(&shown(path), e))?;
        }
    }
    if durable {
        payload
            .open(".")
            .and_then(|d| d.sync_all())
            .map_err(|e| write_error(&target.join(name), e))?;
    }
    Ok(())
}

fn make_dir(dir: &Dir, path: &Path, shown: &Path) -> Result<(), SinkError> {
    dir.create_dir(path).map_err(|e| write_error(shown, e))?;
    dir.set_permissions(
        path,
        Permissions::from_std(std::fs::Permissions::from_mode(DIR_MODE)),
    )
    .map_err(|e| write_error(shown, e))
}

fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", now.as_secs(), now.subsec_nanos())
}

fn random_suffix() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 8)
}

#[cfg(test)]
mod tests;
