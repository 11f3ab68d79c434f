//! Driver-writes mode (`--driver-writes-secrets`): nothing is written here; the files
//! travel back in the MountResponse and the driver writes them with its own atomic writer.

use async_trait::async_trait;

use crate::domain::target::TargetPath;
use crate::ports::{MountSink, OutputFile, PublishGate, Published, SinkError};

#[derive(Debug, Default, Clone, Copy)]
pub struct DriverSink;

#[async_trait]
impl MountSink for DriverSink {
    async fn publish(
        &self,
        _target: &TargetPath,
        files: Vec<OutputFile>,
        _gate: &PublishGate,
    ) -> Result<Published, SinkError> {
        Ok(Published::ForDriver(files))
    }

    fn writes_files(&self) -> bool {
        false
    }

    fn holds_mount(&self, target: &TargetPath) -> bool {
        crate::adapters::fs_sink::holds_mount(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mode::FileMode;
    use crate::domain::naming::{FileName, PathTranslation};
    use crate::domain::secret::SecretValue;

    #[tokio::test]
    async fn hands_every_file_back_and_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![OutputFile {
            path: FileName::from_object_name("a", PathTranslation::default()).unwrap(),
            mode: FileMode::DEFAULT,
            contents: SecretValue::new(b"x".to_vec()),
        }];
        let out = DriverSink
            .publish(
                &TargetPath::parse(dir.path().to_str().unwrap(), None).unwrap(),
                files.clone(),
                &PublishGate::default(),
            )
            .await
            .unwrap();
        assert_eq!(out, Published::ForDriver(files));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
