//! Server-sent events: a bounded channel of [`Event`]s turned into an axum `Sse` response.
//! The producer task sees the receiver close when the client disconnects and stops, which
//! drops its engine streams and so aborts their requests.

use std::convert::Infallible;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::ApiError;

/// Events buffered between the producer and the socket.
pub(crate) const SSE_CHANNEL_EVENTS: usize = 64;

/// `data: <json>`.
pub(crate) fn json_event(value: &impl Serialize) -> Event {
    match serde_json::to_string(value) {
        Ok(json) => Event::default().data(json),
        Err(e) => error_event(&ApiError::internal(format!("serializing a chunk: {e}"))),
    }
}

/// `data: {"error": {...}}` (sent in place of a chunk when a choice fails mid-stream).
pub(crate) fn error_event(error: &ApiError) -> Event {
    let json = serde_json::to_string(&error.to_body()).unwrap_or_else(|_| "{}".to_owned());
    Event::default().data(json)
}

/// `data: [DONE]`.
pub(crate) fn done_event() -> Event {
    Event::default().data("[DONE]")
}

pub(crate) fn channel() -> (mpsc::Sender<Event>, mpsc::Receiver<Event>) {
    mpsc::channel(SSE_CHANNEL_EVENTS)
}

/// The streaming response reading from `events`.
pub(crate) fn response(events: mpsc::Receiver<Event>) -> Response {
    let stream = futures::stream::unfold(events, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), rx))
    });
    Sse::new(stream).into_response()
}
