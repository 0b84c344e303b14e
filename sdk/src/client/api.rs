//! [`Api`]: typed access to one kind over a [`Client`].

use super::*;

/// Typed access to one kind, in one namespace or across all.
#[derive(Clone, Debug)]
pub struct Api<S> {
    client: Client,
    namespace: String,
    _kind: PhantomData<fn() -> S>,
}

impl<S: Spec> Api<S> {
    /// Objects of a namespaced kind in `namespace`.
    pub fn namespaced(client: Client, namespace: &str) -> Self {
        Self {
            client,
            namespace: namespace.to_string(),
            _kind: PhantomData,
        }
    }

    /// Objects in every namespace, or of a cluster-scoped kind.
    pub fn all(client: Client) -> Self {
        Self::namespaced(client, "")
    }

    /// The client the calls go through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn with_namespace(&self, object: &Object<S>) -> Result<Value, Error> {
        let mut value = to_value(object)?;
        if !self.namespace.is_empty() && object.metadata.namespace.is_empty() {
            value["metadata"]["namespace"] = Value::String(self.namespace.clone());
        }
        Ok(value)
    }

    /// The object `name`; [`Error::NotFound`] when there is none.
    pub async fn get(&self, name: &str) -> Result<Object<S>, Error> {
        to_typed(self.client.get(S::KIND, &self.namespace, name).await?)
    }

    /// Every object matching `params`, all pages (following continue tokens).
    pub async fn list(&self, params: &ListParams) -> Result<ObjectList<Object<S>>, Error> {
        let list = self
            .client
            .list_all(S::KIND, &self.namespace, params)
            .await?;
        Ok(ObjectList {
            items: list
                .items
                .into_iter()
                .map(to_typed)
                .collect::<Result<_, _>>()?,
            resource_version: list.resource_version,
            continue_token: list.continue_token,
        })
    }

    /// Creates `object` (in this Api's namespace when it names none) and
    /// returns it as stored (uid, resourceVersion, defaults).
    pub async fn create(&self, object: &Object<S>) -> Result<Object<S>, Error> {
        to_typed(self.client.create(&self.with_namespace(object)?).await?)
    }

    /// Replaces spec and metadata (compare-and-swap on resourceVersion when set).
    pub async fn replace(&self, object: &Object<S>) -> Result<Object<S>, Error> {
        to_typed(self.client.update(&self.with_namespace(object)?).await?)
    }

    /// Replaces status only (compare-and-swap on resourceVersion when set).
    pub async fn update_status(&self, object: &Object<S>) -> Result<Object<S>, Error> {
        to_typed(
            self.client
                .update_status(&self.with_namespace(object)?)
                .await?,
        )
    }

    /// Deletes `name` and returns it as it was, or marked deleting while
    /// finalizers remain.
    pub async fn delete(&self, name: &str) -> Result<Object<S>, Error> {
        to_typed(
            self.client
                .delete(S::KIND, &self.namespace, name, None)
                .await?,
        )
    }

    /// One watch stream after `resource_version`; see [`crate::watcher`] for a
    /// stream that survives disconnects.
    pub async fn watch(
        &self,
        params: &WatchParams,
        resource_version: &str,
    ) -> Result<BoxStream<'static, Result<WatchEvent<Object<S>>, Error>>, Error> {
        let stream = self
            .client
            .watch(S::KIND, &self.namespace, params, resource_version)
            .await?;
        Ok(stream
            .map(|item| {
                item.and_then(|event| match event {
                    WatchEvent::Added(o) => to_typed(o).map(WatchEvent::Added),
                    WatchEvent::Modified(o) => to_typed(o).map(WatchEvent::Modified),
                    WatchEvent::Deleted(o) => to_typed(o).map(WatchEvent::Deleted),
                    WatchEvent::Bookmark(rv) => Ok(WatchEvent::Bookmark(rv)),
                })
            })
            .boxed())
    }
}
