//! Loaded templates, keyed by namespace, name and version.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::template::TaskTemplate;

/// Every loaded template. Several versions of one workflow may be loaded at
/// once; a request that names no version gets the highest.
#[derive(Debug, Default, Clone)]
pub struct TemplateRegistry {
    templates: BTreeMap<(String, String), BTreeMap<semver::Version, Arc<TaskTemplate>>>,
}

/// Why a lookup found no template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No template has that namespace and name.
    #[error("no template {namespace}/{name} is loaded{hint}")]
    UnknownTemplate {
        /// The namespace asked for.
        namespace: String,
        /// The name asked for.
        name: String,
        /// A suggestion, or the list of what is loaded.
        hint: String,
    },
    /// The template is loaded, but not in that version.
    #[error(
        "template {namespace}/{name} has no version {version}; ask for one of the loaded versions ({loaded}), or for no version to get the highest"
    )]
    UnknownVersion {
        /// The namespace asked for.
        namespace: String,
        /// The name asked for.
        name: String,
        /// The version asked for.
        version: String,
        /// The loaded versions.
        loaded: String,
    },
}

impl TemplateRegistry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a template, and returns the one it replaces, if any had the
    /// same namespace, name and version.
    pub fn insert(&mut self, template: TaskTemplate) -> Option<Arc<TaskTemplate>> {
        self.templates
            .entry((template.namespace.clone(), template.name.clone()))
            .or_default()
            .insert(template.version.clone(), Arc::new(template))
    }

    /// The template `namespace/name` at `version`, or at its highest version.
    ///
    /// # Errors
    ///
    /// Says what is loaded when nothing matches; a version that is not
    /// semver matches nothing.
    pub fn get(
        &self,
        namespace: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<&Arc<TaskTemplate>, LookupError> {
        let Some(versions) = self.templates.get(&(namespace.to_owned(), name.to_owned())) else {
            let loaded: Vec<String> = self.templates.keys().map(|(ns, n)| format!("{ns}/{n}")).collect();
            let wanted = format!("{namespace}/{name}");
            let hint = match crate::names::closest(&wanted, loaded.iter().map(String::as_str)) {
                Some(s) => format!(" (did you mean {s}?)"),
                None if loaded.is_empty() => "; no templates are loaded".to_owned(),
                None => format!("; ask for one of the loaded templates: {}", loaded.join(", ")),
            };
            return Err(LookupError::UnknownTemplate {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                hint,
            });
        };
        let found = match version {
            None => versions.values().next_back(),
            Some(v) => semver::Version::parse(v).ok().and_then(|v| versions.get(&v)),
        };
        found.ok_or_else(|| LookupError::UnknownVersion {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            version: version.unwrap_or_default().to_owned(),
            loaded: versions
                .keys()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Every template, ordered by namespace, name and version.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<TaskTemplate>> {
        self.templates.values().flat_map(BTreeMap::values)
    }

    /// Every namespace that has a template.
    #[must_use]
    pub fn namespaces(&self) -> Vec<&str> {
        let mut ns: Vec<&str> = self.templates.keys().map(|(ns, _)| ns.as_str()).collect();
        ns.dedup();
        ns
    }
}
