//! `GET .../taskruns/{name}/log`: the shared Logs handler's output as
//! chunked text (`follow`, `timestamps`, `sinceSeconds`, `tailLines` pass through).

use axum::body::Bytes;
use axum::response::Response;
use sloth_proto::v1 as pb;
use sloth_proto::v1::resources_server::Resources as _;

use super::Rest;
use super::call::Caller;
use super::paths::ObjectPath;
use super::query::Params;
use super::status::Failure;
use super::stream;

pub(super) async fn logs(
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
    let text = stream::until_first_error(
        chunks,
        |chunk: pb::LogChunk| Bytes::from(chunk.data),
        |status| {
            Bytes::from(format!(
                "\nsloth: the log ended early: {}\n",
                status.message()
            ))
        },
    );
    Ok(stream::streamed("text/plain; charset=utf-8", text))
}
