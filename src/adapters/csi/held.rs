//! A driver-writes response holds secret values twice while it leaves: the message, and
//! the bytes tonic encodes it into. Both are counted in the memory budget: the mount's
//! reservation travels with the response (in its extensions) and this layer moves it
//! into the response body, which hyper drops only once the last byte is written. So
//! sixteen concurrent 3.75 MiB responses wait for the budget instead of taking 82 MiB.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::service::Reservation;

/// The mount's share of the budget, in a response's extensions (which must be `Clone`).
#[derive(Clone, Debug)]
pub struct HeldUntilSent(pub Arc<Mutex<Option<Reservation>>>);

impl HeldUntilSent {
    pub fn new(held: Reservation) -> Self {
        HeldUntilSent(Arc::new(Mutex::new(Some(held))))
    }

    fn take(&self) -> Option<Reservation> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// A response body that gives the reservation back when it is dropped.
pub struct HeldBody<B> {
    inner: B,
    _held: Option<Reservation>,
}

impl<B: Body<Data = Bytes> + Unpin> Body for HeldBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Moves a response's [`HeldUntilSent`] into its body.
pub fn hold_until_sent<B>(response: http::Response<B>) -> http::Response<HeldBody<B>> {
    let (mut parts, inner) = response.into_parts();
    let held = parts
        .extensions
        .remove::<HeldUntilSent>()
        .and_then(|h| h.take());
    http::Response::from_parts(parts, HeldBody { inner, _held: held })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::MemoryBudget;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn the_budget_comes_back_when_the_body_is_gone() {
        let budget = MemoryBudget::new(1024 * 1024);
        let held = budget.reserve(512 * 1024, None).await.unwrap();
        let mut response = http::Response::new(Full::new(Bytes::from_static(b"files")));
        response.extensions_mut().insert(HeldUntilSent::new(held));
        let response = hold_until_sent(response);
        assert_eq!(budget.available_bytes(), 512 * 1024, "held while unsent");
        let body = response.into_body().collect().await.unwrap();
        assert_eq!(body.to_bytes(), Bytes::from_static(b"files"));
        assert_eq!(
            budget.available_bytes(),
            1024 * 1024,
            "given back once sent"
        );
    }
}
