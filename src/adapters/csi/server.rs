//! The gRPC service the driver calls: `Version` and `Mount`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use super::proto::csi_driver_provider_server::{CsiDriverProvider, CsiDriverProviderServer};
use super::proto::{self, MountResponse, VersionResponse};
use super::status::status_of;
use crate::domain::versions::ObjectVersion;
use crate::service::{MountError, MountRequest, Mounter};

pub const RUNTIME_NAME: &str = "secrets-store-csi-driver-provider-aws";
const PROTOCOL_VERSION: &str = "v1alpha1";

pub struct CsiProvider {
    mounter: Arc<dyn Mounter>,
    deadline: Duration,
}

impl CsiProvider {
    /// `deadline` bounds each mount; past it the mount fails with DEADLINE_EXCEEDED.
    pub fn new(mounter: Arc<dyn Mounter>, deadline: Duration) -> Self {
        CsiProvider { mounter, deadline }
    }
}

#[tonic::async_trait]
impl CsiDriverProvider for CsiProvider {
    async fn version(
        &self,
        _request: Request<proto::VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: PROTOCOL_VERSION.to_string(),
            runtime_name: RUNTIME_NAME.to_string(),
            runtime_version: env!("CARGO_PKG_VERSION").to_string(),
        }))
    }

    async fn mount(
        &self,
        request: Request<proto::MountRequest>,
    ) -> Result<Response<MountResponse>, Status> {
        let raw = request.into_inner();
        let request = MountRequest {
            attributes: raw.attributes,
            permission: raw.permission,
            target_path: raw.target_path,
            current_versions: raw
                .current_object_version
                .into_iter()
                .map(|v| ObjectVersion {
                    id: v.id,
                    version: v.version,
                })
                .collect(),
        };
        let outcome = tokio::time::timeout(self.deadline, self.mounter.mount(request))
            .await
            .unwrap_or(Err(MountError::Deadline(self.deadline)))
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(MountResponse {
            object_version: outcome
                .versions
                .into_iter()
                .map(|v| proto::ObjectVersion {
                    id: v.id,
                    version: v.version,
                })
                .collect(),
            error: None,
            files: outcome
                .files
                .unwrap_or_default()
                .into_iter()
                .map(|f| proto::File {
                    path: f.path.to_string(),
                    mode: f.mode.bits() as i32,
                    contents: f.contents.expose().to_vec(),
                })
                .collect(),
        }))
    }
}

/// Serves the provider on `listener` until `shutdown` resolves, then stops accepting
/// and lets in-flight mounts finish.
pub async fn serve(
    listener: UnixListener,
    provider: CsiProvider,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(CsiDriverProviderServer::new(provider))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await
}
