//! The atomic writer against a real directory.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};

use super::*;
use crate::domain::mode::FileMode;
use crate::domain::naming::{FileName, PathTranslation};
use crate::domain::secret::SecretValue;

fn file(name: &str, mode: u32, contents: &str) -> OutputFile {
    OutputFile {
        path: FileName::from_object_name(name, PathTranslation::Off).unwrap(),
        mode: FileMode::new(mode).unwrap(),
        contents: SecretValue::new(contents.as_bytes().to_vec()),
    }
}

/// A write with an open gate, as most tests want.
fn write_atomically(target: &Path, files: &[OutputFile]) -> Result<(), SinkError> {
    super::write_atomically(target, files, &PublishGate::default())
}

fn target_of(dir: &Path) -> TargetPath {
    TargetPath::parse(dir.to_str().unwrap(), None).unwrap()
}

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap()
}

fn mode_of(dir: &Path, name: &str) -> u32 {
    fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o7777
}

/// Every entry of the directory, recursively, with link targets and contents: a
/// fingerprint to compare before and after a failed write.
fn snapshot(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                out.push(format!("{rel} -> {}", fs::read_link(&p).unwrap().display()));
            } else if meta.is_dir() {
                out.push(format!("{rel}/"));
                stack.push(p);
            } else {
                out.push(format!(
                    "{rel} = {} {:o}",
                    fs::read_to_string(&p).unwrap(),
                    meta.permissions().mode() & 0o777
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn writes_every_file_with_its_exact_mode() {
    let dir = tempfile::tempdir().unwrap();
    write_atomically(
        dir.path(),
        &[
            file("a", 0o600, "A"),
            file("b", 0o777, "B"),
            file("c", 0o400, "C"),
        ],
    )
    .unwrap();
    assert_eq!(read(dir.path(), "a"), "A");
    assert_eq!(mode_of(dir.path(), "a"), 0o600);
    assert_eq!(
        mode_of(dir.path(), "b"),
        0o777,
        "modes do not depend on the umask"
    );
    assert_eq!(mode_of(dir.path(), "c"), 0o400);
    assert!(fs::symlink_metadata(dir.path().join("a"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn sub_directories_when_translation_is_off() {
    let dir = tempfile::tempdir().unwrap();
    write_atomically(
        dir.path(),
        &[
            file("app/db/pass", 0o640, "p"),
            file("app/user", 0o644, "u"),
        ],
    )
    .unwrap();
    assert_eq!(read(dir.path(), "app/db/pass"), "p");
    assert_eq!(read(dir.path(), "app/user"), "u");
    assert_eq!(mode_of(dir.path(), "app/db/pass"), 0o640);
}

#[test]
fn a_remount_replaces_contents_and_removes_files_no_longer_named() {
    let dir = tempfile::tempdir().unwrap();
    write_atomically(
        dir.path(),
        &[file("a", 0o644, "1"), file("gone", 0o644, "x")],
    )
    .unwrap();
    write_atomically(
        dir.path(),
        &[file("a", 0o600, "2"), file("new", 0o644, "n")],
    )
    .unwrap();
    assert_eq!(read(dir.path(), "a"), "2");
    assert_eq!(mode_of(dir.path(), "a"), 0o600);
    assert_eq!(read(dir.path(), "new"), "n");
    assert!(fs::symlink_metadata(dir.path().join("gone")).is_err());
    // Only the live payload directory remains.
    let payloads: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_str().unwrap().starts_with("..") && e.file_name() != DATA_LINK)
        .collect();
    assert_eq!(payloads.len(), 1);
}

#[test]
fn a_failed_write_leaves_the_target_exactly_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    write_atomically(
        dir.path(),
        &[file("a", 0o644, "old"), file("b", 0o644, "old-b")],
    )
    .unwrap();
    let before = snapshot(dir.path());
    // `x` as a file and `x/y` under it cannot both be written: the second file fails.
    let err = write_atomically(
        dir.path(),
        &[
            file("a", 0o644, "new"),
            file("x", 0o644, "1"),
            file("x/y", 0o644, "2"),
        ],
    )
    .unwrap_err();
    assert!(matches!(err, SinkError::Write { .. }), "{err}");
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn files_not_written_by_us_are_replaced_and_directories_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a"), "written by the old provider").unwrap();
    fs::create_dir_all(dir.path().join("d/sub")).unwrap();
    fs::write(dir.path().join("d/sub/f"), "old").unwrap();
    fs::write(dir.path().join("unrelated"), "kept").unwrap();
    write_atomically(
        dir.path(),
        &[file("a", 0o644, "ours"), file("d", 0o644, "file now")],
    )
    .unwrap();
    assert_eq!(read(dir.path(), "a"), "ours");
    assert_eq!(read(dir.path(), "d"), "file now");
    assert_eq!(
        read(dir.path(), "unrelated"),
        "kept",
        "files we did not write stay"
    );
}

#[test]
fn a_symlink_pointing_out_is_replaced_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("victim"), "untouched").unwrap();
    let dir = tempfile::tempdir().unwrap();
    symlink(outside.path().join("victim"), dir.path().join("a")).unwrap();
    symlink(outside.path(), dir.path().join("d")).unwrap();
    write_atomically(
        dir.path(),
        &[file("a", 0o644, "mine"), file("d/x", 0o644, "mine")],
    )
    .unwrap();
    assert_eq!(
        fs::read_to_string(outside.path().join("victim")).unwrap(),
        "untouched"
    );
    assert!(!outside.path().join("x").exists());
    assert_eq!(read(dir.path(), "a"), "mine");
    assert_eq!(read(dir.path(), "d/x"), "mine");
}

#[test]
fn a_data_link_pointing_out_is_replaced_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("a"), "untouched").unwrap();
    let dir = tempfile::tempdir().unwrap();
    symlink(outside.path(), dir.path().join(DATA_LINK)).unwrap();
    write_atomically(dir.path(), &[file("a", 0o644, "mine")]).unwrap();
    assert_eq!(
        fs::read_to_string(outside.path().join("a")).unwrap(),
        "untouched"
    );
    assert_eq!(read(dir.path(), "a"), "mine");
}

#[test]
fn leftovers_of_a_killed_mount_do_not_break_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    write_atomically(dir.path(), &[file("a", 0o644, "1")]).unwrap();
    // A mount killed half-way: a payload directory and a temporary link left behind.
    fs::create_dir(dir.path().join("..1700000000.000000001_deadbeef")).unwrap();
    fs::write(dir.path().join("..1700000000.000000001_deadbeef/a"), "half").unwrap();
    symlink("..data/a", dir.path().join("..tmp_zzzzzzzz")).unwrap();
    write_atomically(dir.path(), &[file("a", 0o644, "2")]).unwrap();
    assert_eq!(read(dir.path(), "a"), "2");
    assert!(!dir.path().join("..1700000000.000000001_deadbeef").exists());
    assert!(fs::symlink_metadata(dir.path().join("..tmp_zzzzzzzz")).is_err());
}

#[test]
fn the_target_must_be_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, "").unwrap();
    assert!(matches!(
        write_atomically(&f, &[file("a", 0o644, "1")]),
        Err(SinkError::Target { .. })
    ));
    assert!(matches!(
        write_atomically(&dir.path().join("missing"), &[]),
        Err(SinkError::Target { .. })
    ));
}

#[tokio::test]
async fn concurrent_publishes_to_one_target_are_serialized() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(FsSink::new());
    let target = target_of(dir.path());
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (sink, target) = (sink.clone(), target.clone());
        tasks.push(tokio::spawn(async move {
            sink.publish(
                &target,
                vec![
                    file("a", 0o644, &i.to_string()),
                    file(&format!("f{i}"), 0o644, "x"),
                ],
                &PublishGate::default(),
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    // The last writer's files are all there; every other writer's extra file is gone.
    let links = our_links(&Dir::open_ambient_dir(dir.path(), ambient_authority()).unwrap());
    assert_eq!(links.len(), 2, "{links:?}");
    assert!(
        sink.locks.lock().unwrap().is_empty(),
        "locks are forgotten when idle"
    );
}

/// Holds the target's directory lock as another provider process would.
fn lock_as_another_process(dir: &Path) -> fs::File {
    let held = fs::File::open(dir).unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive).unwrap();
    held
}

#[tokio::test]
async fn a_mount_past_its_deadline_never_publishes_when_the_lock_comes_free() {
    let dir = tempfile::tempdir().unwrap();
    write_atomically(dir.path(), &[file("a", 0o644, "old")]).unwrap();
    let held = lock_as_another_process(dir.path());
    let gate =
        PublishGate::until(std::time::Instant::now() + std::time::Duration::from_millis(200));
    let sink = FsSink::new();
    let err = sink
        .publish(
            &target_of(dir.path()),
            vec![file("a", 0o644, "late")],
            &gate,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Abandoned { .. }), "{err}");
    assert!(err.to_string().contains("nothing was published"), "{err}");
    drop(held);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        read(dir.path(), "a"),
        "old",
        "the late mount changed nothing"
    );
    let payloads = fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_str().unwrap().starts_with("..") && e.file_name() != DATA_LINK)
        .count();
    assert_eq!(payloads, 1, "no payload of the abandoned mount is left");
}

#[test]
fn a_writer_never_waits_for_a_lock_past_its_gate() {
    // SIGTERM used to hang for ever with a writer thread blocked in flock.
    let dir = tempfile::tempdir().unwrap();
    let _held = lock_as_another_process(dir.path());
    let gate = PublishGate::default();
    let closer = gate.clone();
    let waiter = {
        let target = dir.path().to_path_buf();
        std::thread::spawn(move || {
            super::write_atomically(&target, &[file("a", 0o644, "x")], &gate)
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(!waiter.is_finished(), "waits while the gate is open");
    assert!(closer.abandon());
    let result = waiter.join().unwrap();
    assert!(
        matches!(result, Err(SinkError::Abandoned { .. })),
        "{result:?}"
    );
    assert!(fs::symlink_metadata(dir.path().join("a")).is_err());
}

#[test]
fn an_abandoned_gate_stops_a_write_right_before_the_swap() {
    let dir = tempfile::tempdir().unwrap();
    write_atomically(dir.path(), &[file("a", 0o644, "old")]).unwrap();
    let before = snapshot(dir.path());
    let gate = PublishGate::default();
    assert!(gate.abandon());
    let err = super::write_atomically(dir.path(), &[file("a", 0o644, "new")], &gate).unwrap_err();
    assert!(matches!(err, SinkError::Abandoned { .. }), "{err}");
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn a_data_entry_that_is_not_a_link_is_moved_aside() {
    for kind in ["directory", "file"] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join(DATA_LINK);
        if kind == "directory" {
            fs::create_dir_all(data.join("sub")).unwrap();
            fs::write(data.join("sub/f"), "x").unwrap();
        } else {
            fs::write(&data, "x").unwrap();
        }
        // A failing write first: the entry in the way stays exactly as it was.
        let before = snapshot(dir.path());
        assert!(write_atomically(
            dir.path(),
            &[file("x", 0o644, "1"), file("x/y", 0o644, "2")]
        )
        .is_err());
        assert_eq!(snapshot(dir.path()), before, "{kind}");
        write_atomically(dir.path(), &[file("a", 0o644, "mine")]).unwrap();
        assert_eq!(read(dir.path(), "a"), "mine", "{kind}");
        assert!(
            fs::symlink_metadata(&data)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{kind}"
        );
        write_atomically(dir.path(), &[file("a", 0o644, "again")]).unwrap();
        assert_eq!(read(dir.path(), "a"), "again", "{kind}");
    }
}

#[test]
fn writers_with_their_own_descriptors_never_break_each_other() {
    // Two writers that do not share the in-process lock, as two provider processes
    // would not: the directory lock keeps each one's payload from being taken for a
    // leftover by the other.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().to_path_buf();
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let target = target.clone();
            std::thread::spawn(move || {
                for i in 0..40 {
                    write_atomically(
                        &target,
                        &[file("a", 0o644, &format!("{w}-{i}")), file("b", 0o644, "b")],
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    assert!(read(&target, "a").ends_with("-39"));
    assert_eq!(read(&target, "b"), "b");
    let payloads = fs::read_dir(&target)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_str().unwrap().starts_with("..") && e.file_name() != DATA_LINK)
        .count();
    assert_eq!(payloads, 1);
}
