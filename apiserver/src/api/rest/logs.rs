//! `GET .../taskruns/{name}/log`: the shared Logs handler's output as
//! chunked text (`follow`, `timestamps`, `sinceSeconds`, `tailLines` pass through).

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use sloth_proto::v1 as pb;
use sloth_proto::v1::resources_server::Resources as _;

use super::Rest;
use super::call::Caller;
use super::paths::ObjectPath;
use super::query::Params;
use super::status::Failure;

pub async fn logs(
    rest: &Rest,
    caller: &Caller,
    path: &ObjectPath,
    params: &Params,
) -> Result<Response, Failure> {
    let request = caller.request(pb::LogsRequest {
        namespace: path.namespace.clone(),
        name: path.name.clone(),
        follow: params.follow()?,
        offset: 0,
        timestamps: params.timestamps()?,
        since_seconds: params.since_seconds.unwrap_or(0),
        split_streams: false,
        tail_lines: params.tail_lines()?,
    });
    let chunks = rest.service.logs(request).await?.into_inner();
    // The status line is sent: an error later (the agent went away) can
    // only end the text, after a last line that says why.
    let text = chunks.scan(false, |failed, chunk| {
        if *failed {
            return std::future::ready(None);
        }
        let bytes = match chunk {
            Ok(chunk) => Bytes::from(chunk.data),
            Err(status) => {
                *failed = true;
                Bytes::from(format!(
                    "\nsloth: the log ended early: {}\n",
                    status.message()
                ))
            }
        };
        std::future::ready(Some(Ok::<_, std::convert::Infallible>(bytes)))
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(text),
    )
        .into_response())
}
