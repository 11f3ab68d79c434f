//! The provider socket `<provider-volume>/aws.sock`.
//!
//! A DaemonSet rolling update with maxSurge starts the new pod before the old one stops.
//! The new one binds a temporary name and renames it over `aws.sock` (the driver never
//! sees a missing socket); on shutdown each removes the socket only if it is still its
//! own (same inode), so neither deletes the other's.

use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::distr::{Alphanumeric, SampleString};
use tokio::net::UnixListener;

pub const SOCKET_NAME: &str = "aws.sock";

/// Remembers which socket file is ours.
#[derive(Debug)]
pub struct SocketGuard {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

/// Binds `<dir>/aws.sock`, replacing any earlier socket atomically. Only the owner
/// (root, like the driver) may connect.
pub fn bind_socket(dir: &Path) -> io::Result<(UnixListener, SocketGuard)> {
    fs::create_dir_all(dir)?;
    let path = dir.join(SOCKET_NAME);
    let tmp = dir.join(format!(
        ".{SOCKET_NAME}.{}",
        Alphanumeric.sample_string(&mut rand::rng(), 8)
    ));
    let listener = UnixListener::bind(&tmp)?;
    let placed = fs::set_permissions(&tmp, Permissions::from_mode(0o600))
        .and_then(|()| fs::rename(&tmp, &path));
    if let Err(e) = placed {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let meta = fs::symlink_metadata(&path)?;
    Ok((
        listener,
        SocketGuard {
            path,
            dev: meta.dev(),
            ino: meta.ino(),
        },
    ))
}

impl SocketGuard {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True while `aws.sock` is still the file this process bound.
    pub fn is_ours(&self) -> bool {
        fs::symlink_metadata(&self.path).is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino)
    }

    /// Removes the socket if it is still ours; a successor's socket is left alone.
    pub fn remove_if_ours(&self) -> bool {
        self.is_ours() && fs::remove_file(&self.path).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_a_private_socket_and_replaces_a_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SOCKET_NAME), "stale").unwrap();
        let (_listener, guard) = bind_socket(dir.path()).unwrap();
        let meta = fs::symlink_metadata(guard.path()).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()));
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // No temporary names left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn a_successor_takes_over_and_the_old_one_leaves_its_socket_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (_old_listener, old) = bind_socket(dir.path()).unwrap();
        let (_new_listener, new) = bind_socket(dir.path()).unwrap();
        assert!(!old.is_ours());
        assert!(
            !old.remove_if_ours(),
            "the old pod must not delete the new pod's socket"
        );
        assert!(new.path().exists());
        assert!(new.remove_if_ours());
        assert!(!new.path().exists());
    }
}
