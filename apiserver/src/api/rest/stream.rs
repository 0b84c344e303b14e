//! Streamed answers (a watch's events, a log's output): chunked bodies
//! that end after the first error, since the status line was already sent.

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};

/// `items` as body chunks: `ok` of each item, until the first error, which
/// becomes the last chunk (`failed` says why).
pub(super) fn until_first_error<T, S>(
    items: S,
    ok: impl Fn(T) -> Bytes + Send + 'static,
    failed: impl Fn(tonic::Status) -> Bytes + Send + 'static,
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static
where
    S: Stream<Item = Result<T, tonic::Status>> + Send + 'static,
{
    items.scan(false, move |ended, item| {
        if *ended {
            return std::future::ready(None);
        }
        let bytes = match item {
            Ok(item) => ok(item),
            Err(status) => {
                *ended = true;
                failed(status)
            }
        };
        std::future::ready(Some(Ok(bytes)))
    })
}

/// A 200 answer of `content_type` streamed from `chunks`, never cached.
pub(super) fn streamed<S>(content_type: &'static str, chunks: S) -> Response
where
    S: Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static,
{
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(chunks),
    )
        .into_response()
}
