//! The one builder of mount requests: the attributes the driver sends for a pod `web-<n>`
//! of service account `web` in namespace `shop`, in region us-east-1 unless told, as the
//! gRPC message the provider receives or as the service's parsed request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use provider::adapters::csi::proto;
use provider::service::{MountRequest, RawMountRequest};

pub struct Mount {
    attributes: BTreeMap<String, String>,
    target: PathBuf,
    permission: u32,
}

impl Mount {
    /// A mount of the class `objects` by pod `web-0`, into a target that is never written
    /// (driver-writes services), files 0644 unless the class says otherwise.
    pub fn of(objects: &str) -> Mount {
        let attributes = [
            ("objects", objects),
            ("csi.storage.k8s.io/pod.name", "web-0"),
            ("csi.storage.k8s.io/pod.namespace", "shop"),
            ("csi.storage.k8s.io/serviceAccount.name", "web"),
            ("region", "us-east-1"),
        ];
        Mount {
            attributes: attributes
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            target: PathBuf::from("/unused"),
            permission: 0o644,
        }
    }

    /// By pod `web-<n>` instead (same service account).
    pub fn pod(mut self, n: usize) -> Mount {
        self.attributes.insert(
            "csi.storage.k8s.io/pod.name".to_string(),
            format!("web-{n}"),
        );
        self
    }

    /// With these attributes added, or replacing the defaults of the same name.
    pub fn with(mut self, extra: &[(&str, &str)]) -> Mount {
        for (key, value) in extra {
            self.attributes.insert(key.to_string(), value.to_string());
        }
        self
    }

    /// Without the attribute `key` (e.g. `region`, to have it from the node).
    pub fn without(mut self, key: &str) -> Mount {
        self.attributes.remove(key);
        self
    }

    /// Into the target directory `target`.
    pub fn target(mut self, target: &Path) -> Mount {
        self.target = target.to_path_buf();
        self
    }

    /// With the volume's default file mode `permission`.
    pub fn permission(mut self, permission: u32) -> Mount {
        self.permission = permission;
        self
    }

    fn attributes_json(&self) -> String {
        serde_json::to_string(&self.attributes).expect("strings serialise")
    }

    /// The gRPC request as the driver sends it (no volume secret: `{}`).
    pub fn grpc(&self) -> proto::MountRequest {
        proto::MountRequest {
            attributes: self.attributes_json(),
            secrets: "{}".into(),
            target_path: self.target.to_str().expect("a UTF-8 path").to_string(),
            permission: self.permission.to_string(),
            current_object_version: vec![],
        }
    }

    /// The request the mount service takes, parsed as the CSI adapter parses it.
    pub fn parsed(&self) -> MountRequest {
        RawMountRequest {
            attributes: self.attributes_json(),
            permission: self.permission.to_string(),
            target_path: self.target.to_str().expect("a UTF-8 path").to_string(),
            current_versions: vec![],
            secrets: String::new(),
        }
        .parse(None)
        .expect("a valid mount request")
    }
}
