//! Secrets and configs: named blobs with labels, created once, only their labels updatable, and
//! not removable while a service uses them. One implementation for both kinds.

use shoal_manager::manager::Manager;
use shoal_store::{Change, StoreView};
use shoal_types::{
    ApiError, Config, ConfigSpec, Meta, Object, ObjectKind, Secret, SecretSpec, Service, new_id,
    resolve,
};
use std::collections::BTreeMap;

pub trait NamedData: Clone + TryFrom<Object> + Into<Object> + shoal_types::Named {
    type Spec;
    const KIND: ObjectKind;
    /// The noun in messages and the field names services use to reference one.
    const NOUN: &'static str;
    /// Whether a service's tasks use the object with this ID.
    fn used_by(spec: &shoal_types::TaskSpec, id: &str) -> bool;
    fn new(spec: Self::Spec) -> Result<Self, ApiError>;
    fn meta(&self) -> &Meta;
    fn name(&self) -> &str;
    fn labels(&self) -> &BTreeMap<String, String>;
    /// Checks that `spec` only changes labels, and applies them.
    fn relabel(&mut self, spec: Self::Spec) -> Result<(), ApiError>;
}

/// Secrets and configs share their shape (`ID`, meta, spec with annotations and data).
macro_rules! named_data {
    ($t:ident, $spec:ident, $kind:ident, $noun:literal, $ids:ident) => {
        impl NamedData for $t {
            type Spec = $spec;
            const KIND: ObjectKind = ObjectKind::$kind;
            const NOUN: &'static str = $noun;
            fn used_by(spec: &shoal_types::TaskSpec, id: &str) -> bool {
                spec.$ids().any(|used| used == id)
            }
            fn new(spec: $spec) -> Result<Self, ApiError> {
                spec.validate()?;
                Ok($t {
                    id: new_id(),
                    meta: Meta::now(),
                    spec,
                })
            }
            fn meta(&self) -> &Meta {
                &self.meta
            }
            fn name(&self) -> &str {
                &self.spec.annotations.name
            }
            fn labels(&self) -> &BTreeMap<String, String> {
                &self.spec.annotations.labels
            }
            fn relabel(&mut self, spec: $spec) -> Result<(), ApiError> {
                spec.validate_update(&self.spec)?;
                self.spec.annotations.labels = spec.annotations.labels;
                Ok(())
            }
        }
    };
}

named_data!(Secret, SecretSpec, Secret, "secret", secret_ids);
named_data!(Config, ConfigSpec, Config, "config", config_ids);

/// All objects of one kind in the view, typed.
pub fn objects<T: TryFrom<Object>>(view: &StoreView, kind: ObjectKind) -> Vec<T> {
    view.list(kind)
        .filter_map(|o| T::try_from(o.clone()).ok())
        .collect()
}

pub fn label_matches(labels: &BTreeMap<String, String>, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(want),
    }
}

pub fn list<T: NamedData>(m: &Manager, filters: &shoal_api::Filters) -> Result<Vec<T>, ApiError> {
    filters.validate(&["id", "name", "names", "label"])?;
    let matches = |key: &str, pred: &dyn Fn(&str) -> bool| {
        let vals = filters.get(key);
        vals.is_empty() || vals.iter().any(|v| pred(v))
    };
    Ok(objects::<T>(&m.view(), T::KIND)
        .into_iter()
        .filter(|o| {
            matches("id", &|v| o.id().starts_with(v))
                && matches("name", &|v| o.name().starts_with(v))
                && matches("names", &|v| o.name() == v)
                && matches("label", &|v| label_matches(o.labels(), v))
        })
        .collect())
}

pub fn inspect<T: NamedData>(m: &Manager, key: &str) -> Result<T, ApiError> {
    let all = objects::<T>(&m.view(), T::KIND);
    resolve(all.iter(), key)
        .cloned()
        .map_err(|e| e.into_api(T::NOUN))
}

pub async fn create<T: NamedData>(m: &Manager, spec: T::Spec) -> Result<String, ApiError> {
    let obj = T::new(spec)?;
    if m.view().find_by_name(T::KIND, obj.name()).is_some() {
        return Err(ApiError::conflict(format!(
            "rpc error: code = AlreadyExists desc = {} {} already exists",
            T::NOUN,
            obj.name()
        )));
    }
    let id = obj.id().to_string();
    m.propose(vec![Change::Create(obj.into())]).await?;
    Ok(id)
}

pub async fn update<T: NamedData>(
    m: &Manager,
    key: &str,
    version: u64,
    spec: T::Spec,
) -> Result<(), ApiError> {
    let mut current = inspect::<T>(m, key)?;
    if current.meta().version.index != version {
        return Err(ApiError::out_of_sequence());
    }
    current.relabel(spec)?;
    m.propose(vec![Change::Update {
        object: current.into(),
        expected_version: Some(version),
    }])
    .await?;
    Ok(())
}

pub async fn remove<T: NamedData>(m: &Manager, key: &str) -> Result<(), ApiError> {
    let current = inspect::<T>(m, key)?;
    let users: Vec<String> = objects::<Service>(&m.view(), ObjectKind::Service)
        .into_iter()
        .filter(|s| T::used_by(&s.spec.task_template, current.id()))
        .map(|s| s.spec.annotations.name)
        .collect();
    if !users.is_empty() {
        return Err(ApiError::invalid_argument(format!(
            "rpc error: code = InvalidArgument desc = {} '{}' is in use by the following service: {}",
            T::NOUN,
            current.name(),
            users.join(", ")
        )));
    }
    m.propose(vec![Change::Delete {
        kind: T::KIND,
        id: current.id().to_string(),
        expected_version: Some(current.meta().version.index),
    }])
    .await?;
    Ok(())
}
