//! The calls of the dynamic [`Client`]: create, get, list, update, delete,
//! watch, logs, version and backup, each through [`Client::call`]'s failover.

use super::*;

impl Client {
    /// Creates an object given as JSON (with `apiVersion`, `kind`,
    /// `metadata`); returns it as stored.
    pub async fn create(&self, object: &Value) -> Result<DynamicObject, Error> {
        self.create_as(object, false).await
    }

    /// A server-side dry run of [`Client::create`]: admitted and validated
    /// by the apiserver (RBAC included), stored nowhere.
    pub async fn create_dry_run(&self, object: &Value) -> Result<DynamicObject, Error> {
        self.create_as(object, true).await
    }

    async fn create_as(&self, object: &Value, dry_run: bool) -> Result<DynamicObject, Error> {
        let envelope = envelope(object)?;
        let out = self
            .call(|mut c| {
                let object = Some(envelope.clone());
                async move { c.create(pb::CreateRequest { object, dry_run }).await }
            })
            .await?;
        decode_dynamic(&out)
    }

    /// The object `name` of `kind`; `namespace` is empty for cluster-scoped kinds.
    pub async fn get(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<DynamicObject, Error> {
        let request = pb::GetRequest {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let out = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.get(request).await }
            })
            .await?;
        decode_dynamic(&out)
    }

    /// Lists one page (at most `params.page_size()` objects); an empty
    /// `namespace` lists every namespace.
    pub async fn list(
        &self,
        kind: &str,
        namespace: &str,
        params: &ListParams,
    ) -> Result<ObjectList<DynamicObject>, Error> {
        let request = pb::ListRequest {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            label_selector: params.label_selector.clone(),
            field_selector: params.field_selector.clone(),
            limit: params.page_size(),
            continue_token: params.continue_token.clone(),
            resource_version: params.resource_version.clone(),
        };
        let out = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.list(request).await }
            })
            .await?;
        Ok(ObjectList {
            items: out
                .items
                .iter()
                .map(decode_dynamic)
                .collect::<Result<_, _>>()?,
            resource_version: out.resource_version,
            continue_token: out.continue_token,
        })
    }

    /// Lists every page, following continue tokens.
    pub async fn list_all(
        &self,
        kind: &str,
        namespace: &str,
        params: &ListParams,
    ) -> Result<ObjectList<DynamicObject>, Error> {
        let mut params = params.clone();
        let mut all = self.list(kind, namespace, &params).await?;
        while !all.continue_token.is_empty() {
            params.continue_token = std::mem::take(&mut all.continue_token);
            let page = self.list(kind, namespace, &params).await?;
            all.items.extend(page.items);
            all.continue_token = page.continue_token;
        }
        Ok(all)
    }

    /// Replaces spec and metadata; `metadata.resourceVersion`, when set, must
    /// be current.
    pub async fn update(&self, object: &Value) -> Result<DynamicObject, Error> {
        self.update_as(object, false).await
    }

    /// A server-side dry run of [`Client::update`]: checked as an update
    /// (precondition, admission, immutable fields), stored nowhere.
    pub async fn update_dry_run(&self, object: &Value) -> Result<DynamicObject, Error> {
        self.update_as(object, true).await
    }

    async fn update_as(&self, object: &Value, dry_run: bool) -> Result<DynamicObject, Error> {
        let envelope = envelope(object)?;
        let out = self
            .call(|mut c| {
                let object = Some(envelope.clone());
                async move { c.update(pb::UpdateRequest { object, dry_run }).await }
            })
            .await?;
        decode_dynamic(&out)
    }

    /// Replaces status only.
    pub async fn update_status(&self, object: &Value) -> Result<DynamicObject, Error> {
        let envelope = envelope(object)?;
        let out = self
            .call(|mut c| {
                let object = Some(envelope.clone());
                async move {
                    c.update_status(pb::UpdateRequest {
                        object,
                        dry_run: false,
                    })
                    .await
                }
            })
            .await?;
        decode_dynamic(&out)
    }

    /// Deletes an object; with `resource_version`, only if it is still that
    /// revision ([`Error::Conflict`] otherwise).
    pub async fn delete(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        resource_version: Option<&str>,
    ) -> Result<DynamicObject, Error> {
        let request = pb::DeleteRequest {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            resource_version: resource_version.unwrap_or_default().to_string(),
        };
        let out = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.delete(request).await }
            })
            .await?;
        decode_dynamic(&out)
    }

    /// Watches changes after `resource_version` (empty: the current state as
    /// Added events first). The stream ends when the server closes it.
    pub async fn watch(
        &self,
        kind: &str,
        namespace: &str,
        params: &WatchParams,
        resource_version: &str,
    ) -> Result<BoxStream<'static, Result<WatchEvent<DynamicObject>, Error>>, Error> {
        let request = pb::WatchRequest {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            label_selector: params.label_selector.clone(),
            field_selector: params.field_selector.clone(),
            resource_version: resource_version.to_string(),
            allow_bookmarks: params.allow_bookmarks,
        };
        let stream = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.watch(request).await }
            })
            .await?;
        Ok(stream
            .map(|item| match item {
                Ok(event) => decode_event(event),
                Err(status) => Err(Error::from_status(status)),
            })
            .boxed())
    }
}

impl Client {
    /// The output of TaskRun `namespace/name` from `offset` on, as chunks of
    /// bytes; with `follow`, until the TaskRun finishes.
    pub async fn logs(
        &self,
        namespace: &str,
        name: &str,
        follow: bool,
        offset: i64,
    ) -> Result<BoxStream<'static, Result<Vec<u8>, Error>>, Error> {
        let options = LogOptions {
            follow,
            offset,
            ..LogOptions::default()
        };
        self.logs_with(namespace, name, &options).await
    }

    /// [`Client::logs`] with per-line times: each line prefixed with when
    /// it was written, or only the lines of the last `since_seconds`.
    pub async fn logs_with(
        &self,
        namespace: &str,
        name: &str,
        options: &LogOptions,
    ) -> Result<BoxStream<'static, Result<Vec<u8>, Error>>, Error> {
        let chunks = self.log_chunks(namespace, name, options).await?;
        Ok(chunks.map(|item| item.map(|chunk| chunk.data)).boxed())
    }

    /// [`Client::logs_with`] as chunks that say which stream wrote them
    /// (with `split_streams`) and where a resumed read goes on.
    pub async fn log_chunks(
        &self,
        namespace: &str,
        name: &str,
        options: &LogOptions,
    ) -> Result<BoxStream<'static, Result<LogChunk, Error>>, Error> {
        let request = pb::LogsRequest {
            namespace: namespace.to_string(),
            name: name.to_string(),
            follow: options.follow,
            offset: options.offset,
            timestamps: options.timestamps,
            since_seconds: options.since_seconds,
            split_streams: options.split_streams,
            ..pb::LogsRequest::default()
        };
        let stream = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.logs(request).await }
            })
            .await?;
        Ok(stream
            .map(|item| item.map(LogChunk::from).map_err(Error::from_status))
            .boxed())
    }
}

impl Client {
    /// The version of the server answering (`(release, apiVersion)`).
    pub async fn server_version(&self) -> Result<(String, String), Error> {
        let info = self
            .call(|mut c| async move { c.version(pb::VersionRequest {}).await })
            .await?;
        Ok((info.version, info.api_version))
    }

    /// A consistent copy of the apiserver's embedded store (admin only):
    /// the revision it is consistent with, and the redb file's bytes.
    pub async fn backup(&self) -> Result<(i64, BoxStream<'static, Result<Vec<u8>, Error>>), Error> {
        let mut stream = self
            .call(|mut c| async move { c.backup(pb::BackupRequest {}).await })
            .await?;
        // The first chunk carries the revision (a store is never empty:
        // redb writes its header).
        let first = match stream.next().await {
            Some(chunk) => chunk.map_err(Error::from_status)?,
            None => pb::BackupChunk::default(),
        };
        let revision = first.revision;
        let rest = stream.map(|item| item.map(|chunk| chunk.data).map_err(Error::from_status));
        Ok((
            revision,
            futures_util::stream::once(async move { Ok(first.data) })
                .chain(rest)
                .boxed(),
        ))
    }
}
