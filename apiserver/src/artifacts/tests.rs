use futures_util::StreamExt;

use super::*;

fn chunks(data: &[u8]) -> impl Stream<Item = Result<Bytes, ArtifactError>> + Unpin {
    let pieces: Vec<Result<Bytes, ArtifactError>> = data
        .chunks(1000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(pieces)
}

fn digest_of(data: &[u8]) -> Digest {
    let mut hasher = Hasher::default();
    hasher.update(data);
    hasher.finish()
}

fn open(dir: &std::path::Path, max: u64) -> ArtifactStore {
    ArtifactStore::open(
        &format!("file://{}", dir.display()),
        &S3Options::default(),
        max,
    )
    .expect("open")
}

#[tokio::test]
async fn a_blob_round_trips_and_is_listed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = open(tmp.path(), 1 << 20);
    let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let digest = digest_of(&data);
    assert_eq!(store.stat(&digest).await.expect("stat"), None);
    store
        .put(&digest, data.len() as u64, chunks(&data))
        .await
        .expect("put");
    assert_eq!(
        store.stat(&digest).await.expect("stat"),
        Some(data.len() as u64)
    );
    let mut got = Vec::new();
    let mut stream = store.get(&digest).await.expect("get");
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        assert!(chunk.len() <= DOWNLOAD_CHUNK_BYTES);
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, data);
    let listed = store.list().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, digest);
    store.delete(&digest).await.expect("delete");
    assert_eq!(store.stat(&digest).await.expect("stat"), None);
}

#[tokio::test]
async fn a_mismatched_or_oversized_upload_is_refused_and_invisible() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = open(tmp.path(), 10_000);
    let data = vec![7u8; 5_000];
    let wrong = digest_of(b"something else");
    let e = store
        .put(&wrong, data.len() as u64, chunks(&data))
        .await
        .expect_err("mismatch");
    assert!(matches!(e, ArtifactError::Mismatch { .. }), "{e}");
    assert_eq!(store.stat(&wrong).await.expect("stat"), None);

    let big = vec![1u8; 20_000];
    let e = store
        .put(&digest_of(&big), big.len() as u64, chunks(&big))
        .await
        .expect_err("too large");
    assert!(e.to_string().contains("--max-artifact-bytes=10000"), "{e}");
    // A lying header is caught while streaming.
    let e = store
        .put(&digest_of(&big), 100, chunks(&big))
        .await
        .expect_err("longer than declared");
    assert!(
        matches!(
            e,
            ArtifactError::BadRequest(_) | ArtifactError::TooLarge { .. }
        ),
        "{e}"
    );
    assert!(store.list().await.expect("list").is_empty());
}
