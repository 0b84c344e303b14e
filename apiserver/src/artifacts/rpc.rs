//! The blob calls of the resource service: authorization (kind `Blob`),
//! then streaming to or from the artifact store.

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sloth_proto::v1 as pb;
use sloth_sdk::blob::Digest;
use sloth_sdk::tls::PeerInfo;
use tonic::{Request, Status, Streaming};

use super::{ArtifactError, ArtifactStore};
use crate::access::auth::policy::{Attributes, Verb};
use crate::access::guard::{Admitted, Guard};
use crate::registry::resources::Resources;

impl From<Status> for ArtifactError {
    fn from(status: Status) -> Self {
        Self::BadRequest(format!("the upload broke off: {}", status.message()))
    }
}

/// What the blob calls need of the service.
#[derive(Clone, Copy, Debug)]
pub struct BlobCalls<'a> {
    pub store: Option<&'a ArtifactStore>,
    pub guard: &'a Guard,
    pub resources: &'a Resources,
}

impl BlobCalls<'_> {
    fn store(&self) -> Result<&ArtifactStore, Status> {
        self.store
            .ok_or_else(|| Status::unimplemented("this apiserver has no artifact store"))
    }

    /// Admits a blob call; an agent must name a TaskRun bound to it and,
    /// for a download, one that reads the blob.
    async fn admit(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        peer: Option<&PeerInfo>,
        verb: Verb,
        header: &pb::BlobRequest,
    ) -> Result<(Admitted, Digest), Status> {
        let digest = Digest::parse(&header.digest)
            .map_err(|e| Status::invalid_argument(format!("digest: {e}")))?;
        let call = Attributes {
            verb,
            kind: "Blob",
            namespace: &header.namespace,
            name: digest.as_str(),
            field_selector: "",
        };
        let admitted = self.guard.admit(metadata, peer, &call)?;
        if admitted.bound_to.is_some() {
            if header.namespace.is_empty() || header.taskrun.is_empty() {
                return Err(self.guard.refuse(
                    &admitted,
                    &call,
                    "an agent names the TaskRun bound to it that the blob is for",
                ));
            }
            let stored = self
                .resources
                .get("TaskRun", &header.namespace, &header.taskrun)
                .await
                .map_err(Status::from)?;
            self.guard.check_bound(&admitted, &call, &stored.value)?;
            if verb == Verb::Download {
                let mut read = std::collections::HashSet::new();
                if let Some(spec) = stored.value.get("spec") {
                    super::gc::collect_digests(spec, &mut read);
                }
                if !read.contains(digest.as_str()) {
                    return Err(self.guard.refuse(
                        &admitted,
                        &call,
                        &format!(
                            "TaskRun {}/{} does not read it",
                            header.namespace, header.taskrun
                        ),
                    ));
                }
            }
        }
        Ok((admitted, digest))
    }

    pub async fn stat(&self, request: Request<pb::BlobRequest>) -> Result<pb::BlobInfo, Status> {
        let (_, digest) = self
            .admit(
                request.metadata(),
                request.extensions().get::<PeerInfo>(),
                Verb::Create,
                request.get_ref(),
            )
            .await?;
        let size = self.store()?.stat(&digest).await?;
        Ok(pb::BlobInfo {
            present: size.is_some(),
            size: size.map_or(0, |s| i64::try_from(s).unwrap_or(i64::MAX)),
        })
    }

    pub async fn put(
        &self,
        request: Request<Streaming<pb::BlobChunk>>,
    ) -> Result<pb::BlobInfo, Status> {
        let store = self.store()?;
        let metadata = request.metadata().clone();
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let mut chunks = request.into_inner();
        let first = chunks
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the upload is empty: no header"))?;
        let header = first
            .header
            .clone()
            .ok_or_else(|| Status::invalid_argument("header: the first chunk carries it"))?;
        let (admitted, digest) = self
            .admit(&metadata, peer.as_ref(), Verb::Create, &header)
            .await?;
        let size = u64::try_from(first.size)
            .map_err(|_| Status::invalid_argument("size: must not be negative"))?;
        let rest = chunks.map(|c| c.map(|c| Bytes::from(c.data)));
        let all =
            futures_util::stream::once(async move { Ok::<_, Status>(Bytes::from(first.data)) })
                .chain(rest)
                .boxed();
        let result = store.put(&digest, size, all).await.map_err(Status::from);
        let call = Attributes {
            verb: Verb::Create,
            kind: "Blob",
            namespace: &header.namespace,
            name: digest.as_str(),
            field_selector: "",
        };
        self.guard
            .completed(&admitted, &call, result.as_ref().map(|_| ()));
        let stored = result?;
        tracing::info!(%digest, size = stored, user = %admitted.user.name, "blob stored");
        Ok(pb::BlobInfo {
            present: true,
            size: i64::try_from(stored).unwrap_or(i64::MAX),
        })
    }

    pub async fn get(
        &self,
        request: Request<pb::BlobRequest>,
    ) -> Result<BoxStream<'static, Result<pb::LogChunk, Status>>, Status> {
        let (_, digest) = self
            .admit(
                request.metadata(),
                request.extensions().get::<PeerInfo>(),
                Verb::Download,
                request.get_ref(),
            )
            .await?;
        let stream = self.store()?.get(&digest).await?;
        Ok(stream
            .map(|chunk| {
                chunk
                    .map(|data| pb::LogChunk {
                        data: data.to_vec(),
                        ..pb::LogChunk::default()
                    })
                    .map_err(Status::from)
            })
            .boxed())
    }
}
