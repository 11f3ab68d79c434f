//! A driver-writes response holds secret values twice while it leaves: the message, and
//! the bytes tonic encodes it into. Both are counted in the memory budget: the mount's
//! reservation travels with the response (in its extensions) and this layer moves it
//! into the response body, dropped once the last byte is handed to HTTP/2. The body
//! hands the encoded message over in pieces of [`CHUNK`]: hyper asks for the next piece
//! only when the stream has send capacity again, so a client that reads slowly keeps
//! the rest here, counted, instead of in HTTP/2's send buffer, uncounted. So sixteen
//! concurrent 3.75 MiB responses wait for the budget instead of taking 82 MiB.

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

/// Largest piece of the body handed to HTTP/2 at once (its default window).
pub const CHUNK: usize = 64 * 1024;

/// A response body that gives the reservation back when it is dropped.
pub struct HeldBody<B> {
    inner: B,
    /// What is left of a data frame larger than [`CHUNK`].
    rest: Bytes,
    _held: Option<Reservation>,
}

impl<B: Body<Data = Bytes> + Unpin> Body for HeldBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if !self.rest.is_empty() {
            let at = self.rest.len().min(CHUNK);
            let piece = self.rest.split_to(at);
            return Poll::Ready(Some(Ok(Frame::data(piece))));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) if data.len() > CHUNK => {
                    let piece = data.split_to(CHUNK);
                    self.rest = data;
                    Poll::Ready(Some(Ok(Frame::data(piece))))
                }
                Ok(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                Err(other) => Poll::Ready(Some(Ok(other))),
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        hint.set_lower(hint.lower().saturating_add(rest));
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper.saturating_add(rest));
        }
        hint
    }
}

/// Moves a response's [`HeldUntilSent`] into its body.
pub fn hold_until_sent<B>(response: http::Response<B>) -> http::Response<HeldBody<B>> {
    let (mut parts, inner) = response.into_parts();
    let held = parts
        .extensions
        .remove::<HeldUntilSent>()
        .and_then(|h| h.take());
    http::Response::from_parts(
        parts,
        HeldBody {
            inner,
            rest: Bytes::new(),
            _held: held,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::MemoryBudget;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn a_large_frame_leaves_in_pieces_and_stays_counted_until_the_last() {
        let budget = MemoryBudget::new(1024 * 1024);
        let held = budget.reserve(512 * 1024, None).await.unwrap();
        let payload = Bytes::from(vec![7u8; 3 * CHUNK + 5]);
        let mut response = http::Response::new(Full::new(payload.clone()));
        response.extensions_mut().insert(HeldUntilSent::new(held));
        let mut body = hold_until_sent(response).into_body();
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            sizes.push(data.len());
            all.extend_from_slice(&data);
            if sizes.len() < 4 {
                assert_eq!(budget.available_bytes(), 512 * 1024, "held while unsent");
            }
        }
        assert_eq!(sizes, [CHUNK, CHUNK, CHUNK, 5]);
        assert_eq!(all, payload);
        drop(body);
        assert_eq!(budget.available_bytes(), 1024 * 1024);
    }

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
