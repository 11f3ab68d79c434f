//! The local-file store: a YAML file standing in for Secrets Manager and Parameter Store,
//! for development and demos. Edits are picked up on the next mount, without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;

use super::format::StoreFile;
use crate::domain::failover::{ClientKind, ErrorClass};
use crate::domain::objects::{ObjectKind, ObjectRef, Selection};
use crate::domain::region::Region;
use crate::ports::{Fetched, Identity, MatchAccount, SecretStore, Selected, StoreError};

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

    /// Parameters by path and secrets by name prefix, among the names of the file's
    /// global part (then looked up as usual, region overlay included); the file has no
    /// tags, so a selection by tag is refused.
    async fn select(
        &self,
        region: &Region,
        _identity: &Identity,
        selection: &Selection,
        limit: usize,
        account: Arc<dyn MatchAccount>,
    ) -> Result<Vec<Selected>, StoreError> {
        let file = self.load()?;
        let (kind, names): (ObjectKind, Vec<&String>) = match selection {
            Selection::ParameterPath { path, recursive } => {
                let base = format!("{}/", path.trim_end_matches('/'));
                let names = file
                    .ssmparameter
                    .keys()
                    .filter(|n| {
                        n.strip_prefix(&base)
                            .is_some_and(|rest| *recursive || !rest.contains('/'))
                    })
                    .collect();
                (ObjectKind::SsmParameter, names)
            }
            Selection::Secrets {
                name_prefix,
                tag_key: None,
                tag_value: None,
            } => {
                let prefix = name_prefix.as_deref().unwrap_or_default();
                let names = file
                    .secretsmanager
                    .keys()
                    .filter(|n| n.starts_with(prefix))
                    .collect();
                (ObjectKind::SecretsManager, names)
            }
            Selection::Secrets { .. } => {
                return Err(StoreError::new(
                    ErrorClass::Client(ClientKind::Invalid),
                    format!(
                        "local store {}: it has no tags to select by",
                        self.path.display()
                    ),
                ))
            }
        };
        names
            .into_iter()
            .take(limit.saturating_add(1))
            .map(|name| {
                let object = ObjectRef {
                    kind,
                    name: name.clone(),
                    version: None,
                    label: None,
                };
                let fetched = file.lookup(region.as_str(), &object)?;
                account.take(fetched.value.len())?;
                Ok(Selected {
                    name: name.clone(),
                    fetched,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::attributes::AuthMode;
    use crate::ports::Uncounted;

    fn identity() -> Identity {
        Identity {
            auth: AuthMode::Irsa,
            namespace: "ns".into(),
            service_account: "sa".into(),
            pod_name: "p".into(),
            pod_uid: "u".into(),
            role_arn: None,
            token: None,
            keys: None,
            assume: None,
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
    async fn selects_parameters_by_path_and_secrets_by_prefix_but_not_by_tag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.yaml");
        std::fs::write(
            &path,
            "secretsmanager:\n  app/a: [{versionId: v1, secretString: a}]\n  other: [{versionId: v1, secretString: o}]\nssmparameter:\n  /app/x: [{version: 1, value: x}]\n  /app/deep/y: [{version: 2, value: y}]\n",
        )
        .unwrap();
        let store = LocalStore::new(&path);
        let region = Region::parse("us-east-1").unwrap();
        let names = |found: Vec<Selected>| found.into_iter().map(|m| m.name).collect::<Vec<_>>();
        let by_path = |recursive| Selection::ParameterPath {
            path: "/app".into(),
            recursive,
        };
        let flat = store
            .select(
                &region,
                &identity(),
                &by_path(false),
                10,
                Arc::new(Uncounted),
            )
            .await;
        assert_eq!(names(flat.unwrap()), ["/app/x"]);
        let deep = store
            .select(
                &region,
                &identity(),
                &by_path(true),
                10,
                Arc::new(Uncounted),
            )
            .await;
        assert_eq!(names(deep.unwrap()), ["/app/deep/y", "/app/x"]);
        let prefix = Selection::Secrets {
            name_prefix: Some("app/".into()),
            tag_key: None,
            tag_value: None,
        };
        let found = store
            .select(&region, &identity(), &prefix, 10, Arc::new(Uncounted))
            .await
            .unwrap();
        assert_eq!(found[0].fetched.value.expose(), b"a");
        let tagged = Selection::Secrets {
            name_prefix: None,
            tag_key: Some("team".into()),
            tag_value: None,
        };
        assert!(store
            .select(&region, &identity(), &tagged, 10, Arc::new(Uncounted))
            .await
            .is_err());
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
