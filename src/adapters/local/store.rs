//! The local-file store: a YAML file standing in for Secrets Manager and Parameter Store,
//! for development and demos. Edits are picked up on the next mount, without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;

use super::format::StoreFile;
use crate::domain::failover::{ClientKind, ErrorClass};
use crate::domain::objects::ObjectRef;
use crate::domain::region::Region;
use crate::ports::{Fetched, Identity, SecretStore, StoreError};

pub struct LocalStore {
    path: PathBuf,
    cache: Mutex<Option<Cached>>,
}

struct Cached {
    stamp: (SystemTime, u64),
    file: Arc<StoreFile>,
}

impl LocalStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LocalStore {
            path: path.into(),
            cache: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed file, read again when its modification time or size changed.
    pub fn load(&self) -> Result<Arc<StoreFile>, StoreError> {
        let unusable = |reason: String| {
            StoreError::new(
                ErrorClass::Client(ClientKind::Other),
                format!("local store {}: {reason}", self.path.display()),
            )
        };
        let meta = std::fs::metadata(&self.path).map_err(|e| unusable(e.to_string()))?;
        let stamp = (
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            meta.len(),
        );
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cached) = cache.as_ref().filter(|c| c.stamp == stamp) {
            return Ok(cached.file.clone());
        }
        let text = std::fs::read_to_string(&self.path).map_err(|e| unusable(e.to_string()))?;
        let file = Arc::new(StoreFile::parse(&text).map_err(unusable)?);
        *cache = Some(Cached {
            stamp,
            file: file.clone(),
        });
        Ok(file)
    }
}

#[async_trait]
impl SecretStore for LocalStore {
    async fn fetch(
        &self,
        region: &Region,
        _identity: &Identity,
        batch: &[ObjectRef],
    ) -> Vec<Result<Fetched, StoreError>> {
        match self.load() {
            Ok(file) => batch
                .iter()
                .map(|o| file.lookup(region.as_str(), o))
                .collect(),
            Err(e) => vec![Err(e); batch.len()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::attributes::AuthMode;
    use crate::domain::objects::ObjectKind;

    fn identity() -> Identity {
        Identity {
            auth: AuthMode::Irsa,
            namespace: "ns".into(),
            service_account: "sa".into(),
            pod_name: "p".into(),
            pod_uid: "u".into(),
            role_arn: None,
            token: None,
        }
    }

    fn secret(name: &str) -> ObjectRef {
        ObjectRef {
            kind: ObjectKind::SecretsManager,
            name: name.into(),
            version: None,
            label: None,
        }
    }

    #[tokio::test]
    async fn edits_are_seen_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.yaml");
        std::fs::write(
            &path,
            "secretsmanager:\n  s:\n    - {versionId: v1, secretString: one}\n",
        )
        .unwrap();
        let store = LocalStore::new(&path);
        let region = Region::parse("us-east-1").unwrap();
        let first = store.fetch(&region, &identity(), &[secret("s")]).await;
        assert_eq!(first[0].as_ref().unwrap().value.expose(), b"one");
        std::fs::write(&path, "secretsmanager:\n  s:\n    - {versionId: v2, secretString: two, stages: [AWSCURRENT]}\n").unwrap();
        let second = store.fetch(&region, &identity(), &[secret("s")]).await;
        assert_eq!(second[0].as_ref().unwrap().version, "v2");
    }

    #[tokio::test]
    async fn an_unreadable_store_fails_every_object_of_the_batch() {
        let store = LocalStore::new("/nonexistent/store.yaml");
        let region = Region::parse("us-east-1").unwrap();
        let out = store
            .fetch(&region, &identity(), &[secret("a"), secret("b")])
            .await;
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|r| r
            .as_ref()
            .unwrap_err()
            .message
            .contains("/nonexistent/store.yaml")));
    }
}
