//! The target directory of a mount, checked once: absolute, normalised (no `.`, empty or
//! trailing elements that could slip past a symlink check), no `..`, not `/`, and under
//! the kubelet's pods directory when that is known.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use super::text::bounded;

/// A checked target directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPath(PathBuf);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("target path `{shown}`: {reason}")]
pub struct TargetError {
    shown: String,
    reason: String,
}

impl TargetPath {
    /// Checks `raw` as the driver sends it. With `kubelet_dir`, only the CSI volume
    /// layout `<kubelet>/pods/<uid>/volumes/kubernetes.io~csi/<name>/mount` is accepted.
    pub fn parse(raw: &str, kubelet_dir: Option<&Path>) -> Result<TargetPath, TargetError> {
        let fail = |reason: &str| TargetError {
            shown: bounded(raw),
            reason: reason.to_string(),
        };
        if raw.contains('\0') {
            return Err(fail("contains a NUL byte"));
        }
        let path = Path::new(raw);
        if !path.is_absolute() {
            return Err(fail("must be an absolute path"));
        }
        let mut normal = PathBuf::from("/");
        for component in path.components() {
            match component {
                Component::RootDir | Component::CurDir => {}
                Component::ParentDir => return Err(fail("must not contain `..`")),
                Component::Normal(part) => normal.push(part),
                Component::Prefix(_) => return Err(fail("is not a Unix path")),
            }
        }
        if normal == Path::new("/") {
            return Err(fail("must not be `/`"));
        }
        if let Some(kubelet) = kubelet_dir {
            if !is_csi_volume_of(&normal, kubelet) {
                return Err(fail(&format!(
                    "is not a CSI volume of a pod (expected {}/pods/<uid>/volumes/kubernetes.io~csi/<name>/mount)",
                    kubelet.display()
                )));
            }
        }
        Ok(TargetPath(normal))
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

impl fmt::Display for TargetPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display())
    }
}

fn is_csi_volume_of(path: &Path, kubelet: &Path) -> bool {
    let Ok(rest) = path.strip_prefix(kubelet) else {
        return false;
    };
    let parts: Vec<_> = rest.components().collect();
    let normal = |c: &Component| matches!(c, Component::Normal(_));
    matches!(
        parts.as_slice(),
        [pods, uid, volumes, csi, name, mount]
            if pods.as_os_str() == "pods"
                && normal(uid)
                && volumes.as_os_str() == "volumes"
                && csi.as_os_str() == "kubernetes.io~csi"
                && normal(name)
                && mount.as_os_str() == "mount"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        TargetPath::parse(raw, None).unwrap().to_string()
    }

    #[test]
    fn trailing_slashes_dots_and_doubled_slashes_are_normalised_away() {
        // `.../link/` would resolve through the link; the writer then checks `.../link`.
        assert_eq!(ok("/var/t/link/"), "/var/t/link");
        assert_eq!(ok("/var//t/./link/."), "/var/t/link");
    }

    #[test]
    fn relative_dotdot_root_and_nul_are_refused() {
        for bad in [
            "t/x",
            "/var/../etc",
            "/a/b/..",
            "/",
            "//",
            "/./",
            "/a\0b",
            "",
        ] {
            assert!(TargetPath::parse(bad, None).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn with_the_kubelet_dir_only_csi_volumes_of_pods_are_accepted() {
        let kubelet = Path::new("/var/lib/kubelet");
        let good = "/var/lib/kubelet/pods/0b1c-uid/volumes/kubernetes.io~csi/secrets/mount";
        assert!(TargetPath::parse(good, Some(kubelet)).is_ok());
        assert!(TargetPath::parse(&format!("{good}/"), Some(kubelet)).is_ok());
        for bad in [
            "/var/lib/kubelet/pods/0b1c-uid/volumes/kubernetes.io~csi/secrets",
            "/var/lib/kubelet/pods/0b1c-uid/volumes/kubernetes.io~empty-dir/x/mount",
            "/var/lib/kubelet/pods/0b1c-uid/volumes/kubernetes.io~csi/secrets/mount/sub",
            "/var/lib/kubelet/plugins/x/volumes/kubernetes.io~csi/secrets/mount",
            "/etc/pods/u/volumes/kubernetes.io~csi/n/mount",
            "/var/lib/kubelet/pods/../volumes/kubernetes.io~csi/n/mount",
        ] {
            let err = TargetPath::parse(bad, Some(kubelet)).unwrap_err();
            assert!(err.to_string().contains("target path"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_huge_path_is_quoted_by_a_bounded_prefix() {
        let raw = format!("relative/{}", "x".repeat(100_000));
        let err = TargetPath::parse(&raw, None).unwrap_err().to_string();
        assert!(err.len() < 400, "{} bytes", err.len());
    }
}
