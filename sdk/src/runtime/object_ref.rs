//! The key of an object in caches and work queues.

use std::fmt;

use crate::resource::{DynamicObject, Object, Spec};

/// Identifies one object of a kind the controller already knows: its
/// namespace (empty for cluster-scoped kinds) and name.
///
/// The kind is left out on purpose: a controller's queue and store hold one
/// kind only, and mappers from secondary kinds always name a primary object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// The namespace; empty for cluster-scoped kinds.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjectRef {
    /// The reference to `namespace`/`name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The reference to a typed object.
    pub fn from_obj<S: Spec>(object: &Object<S>) -> Self {
        Self::new(&object.metadata.namespace, &object.metadata.name)
    }

    /// The reference to an untyped object.
    pub fn from_dynamic(object: &DynamicObject) -> Self {
        Self::new(&object.metadata.namespace, &object.metadata.name)
    }
}

impl<S: Spec> From<&Object<S>> for ObjectRef {
    fn from(object: &Object<S>) -> Self {
        Self::from_obj(object)
    }
}

/// `namespace/name`, or `name` when there is no namespace — the same form as
/// [`DynamicObject::key`], so logs read alike everywhere.
impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::TaskRunSpec;

    #[test]
    fn displays_like_object_keys() {
        assert_eq!(ObjectRef::new("ns", "a").to_string(), "ns/a");
        assert_eq!(ObjectRef::new("", "a").to_string(), "a");
        let mut obj = Object::new("run-1", TaskRunSpec::default());
        obj.metadata.namespace = "prod".into();
        assert_eq!(ObjectRef::from_obj(&obj), ObjectRef::new("prod", "run-1"));
        assert_eq!(ObjectRef::from(&obj).to_string(), "prod/run-1");
    }

    #[test]
    fn orders_by_namespace_then_name() {
        let mut refs = vec![
            ObjectRef::new("b", "a"),
            ObjectRef::new("a", "z"),
            ObjectRef::new("a", "b"),
        ];
        refs.sort();
        assert_eq!(
            refs,
            vec![
                ObjectRef::new("a", "b"),
                ObjectRef::new("a", "z"),
                ObjectRef::new("b", "a"),
            ]
        );
    }
}
