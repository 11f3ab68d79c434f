//! The CSI driver's provider protocol (v1alpha1) over a unix socket, with tonic.

mod held;
pub mod reporting;
pub mod server;
pub mod socket;
mod status;

/// Code generated from `proto/v1alpha1.proto` at build time.
#[allow(clippy::all)]
pub mod proto {
    tonic::include_proto!("v1alpha1");
}

pub use reporting::ErrorReporting;
pub use server::{
    serve, serve_incoming, CsiProvider, DEFAULT_MAX_CONCURRENT_MOUNTS, DEFAULT_MAX_RESPONSE_BYTES,
    RUNTIME_NAME,
};
pub use socket::{
    bind_socket, watched_incoming, BoundSocket, SocketEvents, SocketGuard, SocketWatch,
    SOCKET_NAME, WATCH_INTERVAL,
};
pub use status::status_of;
