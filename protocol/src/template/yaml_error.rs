//! Errors serde_yaml reports for a file that does not fit the schema,
//! reworded: they name the template and the step rather than `steps[3]`,
//! and suggest the key or value that was probably meant.

use crate::names::closest;

use super::{TemplateIssue, quoted_list, template_label, version_text};

/// Rewords serde's messages for a file that does not fit the schema: names
/// the template and the step instead of `steps[3]`, and suggests the key or
/// value that was probably meant.
pub(super) fn issue_from_yaml_error(e: &serde_yaml::Error, text: &str) -> TemplateIssue {
    let line = e.location().map(|l| l.line());
    let full = e.to_string();
    // serde_yaml appends " at line L column C"; the line is reported apart.
    let full = full.split(" at line ").next().unwrap_or(&full);
    let (path, detail) = split_path(full);
    let names = NamesRead::from_text(text);
    let place = names.describe(path);
    // serde quotes the offending name first, then what it expected.
    let quoted: Vec<&str> = detail.split('`').skip(1).step_by(2).collect();
    let body = if let (true, Some((found, expected))) =
        (detail.starts_with("unknown field"), quoted.split_first())
    {
        let allowed = quoted_list(expected);
        match closest(found, expected.iter().copied()) {
            Some(s) => format!(
                "unknown key {found:?} in {place} (did you mean {s:?}?); the keys allowed there are {allowed}"
            ),
            None => {
                format!("unknown key {found:?} in {place}; remove it, the keys allowed there are {allowed}")
            }
        }
    } else if let (true, Some((found, expected))) =
        (detail.starts_with("unknown variant"), quoted.split_first())
    {
        let key = path.rsplit('.').next().unwrap_or("value");
        let allowed = quoted_list(expected);
        let (owner, _) = path.rsplit_once('.').unwrap_or(("", path));
        let owner = names.describe(owner);
        match closest(found, expected.iter().copied()) {
            Some(s) => {
                format!("unknown {key} {found:?} in {owner} (did you mean {s:?}?); use one of {allowed}")
            }
            None => format!("unknown {key} {found:?} in {owner}; use one of {allowed}"),
        }
    } else if let (true, Some(field)) = (detail.starts_with("missing field"), quoted.first()) {
        format!("{place} has no {field:?}; add it, as docs/templates.md describes")
    } else if !names.is_yaml {
        format!(
            "the file is not valid YAML: {detail}; fix the indentation, quoting or `key: value` syntax near this line"
        )
    } else {
        format!("{place}: {detail}; fix it to match the template schema in docs/templates.md")
    };
    let message = match names.label {
        Some(label) => format!("{label}: {body}"),
        None => body,
    };
    TemplateIssue { line, message }
}

/// Splits serde_yaml's `steps[0].retry: message` into the path and the
/// message; the path is empty for the top level.
fn split_path(text: &str) -> (&str, &str) {
    match text.split_once(": ") {
        Some((path, rest))
            if !path.is_empty()
                && path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']')) =>
        {
            (path, rest)
        }
        _ => ("", text),
    }
}

/// The names that can be read from a file that does not fit the schema,
/// so that its errors can say which template and which step they are about.
struct NamesRead {
    /// Whether the text is YAML at all.
    is_yaml: bool,
    label: Option<String>,
    steps: Vec<Option<String>>,
}

impl NamesRead {
    fn from_text(text: &str) -> Self {
        let value = serde_yaml::from_str::<serde_yaml::Value>(text);
        let is_yaml = value.is_ok();
        let value = value.unwrap_or_default();
        let string = |v: Option<&serde_yaml::Value>| v.and_then(serde_yaml::Value::as_str).map(str::to_owned);
        let label = match (
            string(value.get("namespace_name")),
            string(value.get("name")),
            value.get("version"),
        ) {
            (Some(namespace), Some(name), Some(version)) => {
                Some(template_label(&namespace, &name, &version_text(version)))
            }
            _ => None,
        };
        let steps = value
            .get("steps")
            .and_then(serde_yaml::Value::as_sequence)
            .map(|steps| steps.iter().map(|s| string(s.get("name"))).collect())
            .unwrap_or_default();
        Self {
            is_yaml,
            label,
            steps,
        }
    }

    /// `steps[0].retry` as `the retry of step "create_user_account"`.
    fn describe(&self, path: &str) -> String {
        if path.is_empty() {
            return "the template".to_owned();
        }
        let Some(rest) = path.strip_prefix("steps[") else {
            return format!("the template's {path}");
        };
        let Some((index, rest)) = rest.split_once(']') else {
            return path.to_owned();
        };
        let step = match index
            .parse::<usize>()
            .ok()
            .and_then(|i| self.steps.get(i).cloned().flatten())
        {
            Some(name) => format!("step {name:?}"),
            None => format!("steps[{index}]"),
        };
        match rest.strip_prefix('.') {
            Some(inner) => format!("the {inner} of {step}"),
            None => step,
        }
    }
}
