//! Loading every template under a directory.

use std::path::{Path, PathBuf};

use tasker_protocol::template::{TemplateError, TemplateIssue};
use tasker_protocol::{TaskTemplate, TemplateRegistry};

use crate::Error;

/// Loads every `.yaml` and `.yml` file under `dir`, recursively.
///
/// # Errors
///
/// Returns [`Error::Templates`] listing every invalid file (and every
/// duplicate namespace/name/version) if any is invalid, and
/// [`Error::Config`] if the directory cannot be read or holds no template.
pub fn load_dir(dir: &Path) -> Result<TemplateRegistry, Error> {
    let mut files = Vec::new();
    collect(dir, &mut files).map_err(|e| {
        Error::Config(format!(
            "cannot read templates directory {}: {e}; pass --templates DIR",
            dir.display()
        ))
    })?;
    files.sort();
    if files.is_empty() {
        return Err(Error::Config(format!(
            "no template files (*.yaml, *.yml) under {}; pass --templates DIR",
            dir.display()
        )));
    }
    let mut registry = TemplateRegistry::new();
    let mut errors = Vec::new();
    let mut origin: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for path in files {
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                errors.push(single(&name, format!("cannot read the file: {e}")));
                continue;
            }
        };
        match TaskTemplate::from_yaml(&name, &text) {
            Ok(template) => {
                let key = template.key();
                if let Some(first) = origin.insert(key.clone(), name.clone()) {
                    errors.push(single(
                        &name,
                        format!(
                            "template {key} is also defined in {first}; give one of them another version"
                        ),
                    ));
                }
                registry.insert(template);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(registry)
    } else {
        Err(Error::Templates(errors))
    }
}

fn single(file: &str, message: String) -> TemplateError {
    TemplateError {
        file: file.to_owned(),
        issues: vec![TemplateIssue { line: None, message }],
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(path);
        }
    }
    Ok(())
}
