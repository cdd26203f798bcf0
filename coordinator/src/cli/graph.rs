//! Pictures of a template's DAG: Mermaid and Graphviz DOT for documents, and
//! a text view for terminals. Each can show where a task stands, one state
//! per step.

use std::fmt::Write;

use tasker_protocol::{StepState, TaskTemplate};

/// The step's line under its name: how it retries, or where it stands.
fn detail(template: &TaskTemplate, step: usize, state: Option<StepState>) -> String {
    if let Some(state) = state {
        return state.as_str().to_owned();
    }
    let retry = &template.steps[step].retry;
    if !retry.retryable || retry.max_attempts <= 1 {
        "no retries".to_owned()
    } else {
        format!("up to {} attempts", retry.max_attempts)
    }
}

/// The colour a state is drawn in: (fill, border).
fn colours(state: StepState) -> (&'static str, &'static str) {
    match state {
        StepState::Pending => ("#f5f5f5", "#9e9e9e"),
        StepState::Enqueued => ("#e3f2fd", "#1e88e5"),
        StepState::WaitingRetry => ("#fff8e1", "#f9a825"),
        StepState::Completed => ("#e8f5e9", "#43a047"),
        StepState::Failed => ("#ffebee", "#e53935"),
        StepState::Blocked => ("#eceff1", "#546e7a"),
        StepState::Cancelled => ("#fafafa", "#bdbdbd"),
    }
}

/// A Mermaid flowchart of the template, top to bottom. With `states`
/// (one per step, by index), each step shows and is coloured by its state.
#[must_use]
pub fn mermaid(template: &TaskTemplate, states: Option<&[StepState]>) -> String {
    let state = |i: usize| states.and_then(|s| s.get(i).copied());
    let mut out = String::new();
    let _ = writeln!(out, "---\ntitle: {}\n---", template.key());
    let _ = writeln!(out, "flowchart TD");
    for (i, step) in template.steps.iter().enumerate() {
        let _ = writeln!(
            out,
            "    s{i}[\"{}<br/><small>{}</small>\"]",
            step.name,
            detail(template, i, state(i))
        );
    }
    for &child in template.dag.topological_order() {
        for &parent in template.dag.parents(child) {
            let _ = writeln!(out, "    s{parent} --> s{child}");
        }
    }
    if let Some(states) = states {
        let mut used: Vec<StepState> = states.to_vec();
        used.sort_by_key(|s| s.as_str());
        used.dedup();
        for s in used {
            let (fill, stroke) = colours(s);
            let _ = writeln!(out, "    classDef {} fill:{fill},stroke:{stroke}", s.as_str());
            let members: Vec<String> = (0..states.len())
                .filter(|&i| states[i] == s)
                .map(|i| format!("s{i}"))
                .collect();
            let _ = writeln!(out, "    class {} {}", members.join(","), s.as_str());
        }
    }
    out
}

/// A Graphviz DOT digraph of the template, top to bottom. With `states`,
/// each step shows and is coloured by its state.
#[must_use]
pub fn dot(template: &TaskTemplate, states: Option<&[StepState]>) -> String {
    let state = |i: usize| states.and_then(|s| s.get(i).copied());
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", template.key());
    let _ = writeln!(out, "    label=\"{}\";\n    labelloc=t;", template.key());
    let _ = writeln!(out, "    rankdir=TB;");
    let _ = writeln!(
        out,
        "    node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", fontname=\"Helvetica\"];"
    );
    for (i, step) in template.steps.iter().enumerate() {
        let label = format!("{}\\n{}", step.name, detail(template, i, state(i)));
        match state(i) {
            Some(s) => {
                let (fill, stroke) = colours(s);
                let _ = writeln!(
                    out,
                    "    \"{}\" [label=\"{label}\", fillcolor=\"{fill}\", color=\"{stroke}\"];",
                    step.name
                );
            }
            None => {
                let _ = writeln!(out, "    \"{}\" [label=\"{label}\"];", step.name);
            }
        }
    }
    for &child in template.dag.topological_order() {
        for &parent in template.dag.parents(child) {
            let _ = writeln!(
                out,
                "    \"{}\" -> \"{}\";",
                template.steps[parent].name, template.steps[child].name
            );
        }
    }
    out.push_str("}\n");
    out
}

/// Each step's depth: the length of the longest path from a root to it.
/// Steps of the same depth can run side by side.
#[must_use]
pub fn levels(template: &TaskTemplate) -> Vec<Vec<usize>> {
    let mut depth = vec![0usize; template.steps.len()];
    for &step in template.dag.topological_order() {
        depth[step] = template
            .dag
            .parents(step)
            .iter()
            .map(|&p| depth[p] + 1)
            .max()
            .unwrap_or(0);
    }
    let rows = depth.iter().max().map_or(0, |d| d + 1);
    let mut levels = vec![Vec::new(); rows];
    for (step, &d) in depth.iter().enumerate() {
        levels[d].push(step);
    }
    levels
}

/// The DAG as text, one row per level, for a terminal: each step in a box
/// with its state, and under each row the steps it leads to.
#[must_use]
pub fn text(template: &TaskTemplate, states: Option<&[StepState]>) -> String {
    let state = |i: usize| states.and_then(|s| s.get(i).copied());
    let mark = |s: StepState| match s {
        StepState::Completed => '✓',
        StepState::Failed => '✗',
        StepState::Enqueued => '▶',
        StepState::WaitingRetry => '↻',
        StepState::Blocked => '⊘',
        StepState::Cancelled => '–',
        StepState::Pending => '·',
    };
    let mut out = String::new();
    let levels = levels(template);
    for (row, steps) in levels.iter().enumerate() {
        let cells: Vec<String> = steps
            .iter()
            .map(|&i| {
                let (name, detail) = (&template.steps[i].name, detail(template, i, state(i)));
                match state(i) {
                    Some(s) => format!("[{} {name} ({detail})]", mark(s)),
                    None => format!("[{name} ({detail})]"),
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("   "));
        if row + 1 < levels.len() {
            let edges: Vec<String> = levels[row + 1]
                .iter()
                .map(|&child| {
                    let parents: Vec<&str> = template
                        .dag
                        .parents(child)
                        .iter()
                        .map(|&p| template.steps[p].name.as_str())
                        .collect();
                    format!("{} → {}", parents.join(" + "), template.steps[child].name)
                })
                .collect();
            let _ = writeln!(out, "  │ {}", edges.join(";  "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diamond() -> TaskTemplate {
        let text = include_str!("../../../templates/microservices/user_registration.yaml");
        TaskTemplate::from_yaml("user_registration.yaml", text).unwrap()
    }

    #[test]
    fn levels_put_the_parallel_branches_side_by_side() {
        let t = diamond();
        let names: Vec<Vec<&str>> = levels(&t)
            .iter()
            .map(|row| row.iter().map(|&i| t.steps[i].name.as_str()).collect())
            .collect();
        assert_eq!(
            names,
            vec![
                vec!["create_user_account"],
                vec!["setup_billing_profile", "initialize_preferences"],
                vec!["send_welcome_sequence"],
                vec!["update_user_status"],
            ]
        );
    }

    #[test]
    fn every_dependency_is_an_edge_in_both_formats() {
        let t = diamond();
        let (m, d) = (mermaid(&t, None), dot(&t, None));
        let mut edges = 0;
        for (i, step) in t.steps.iter().enumerate() {
            for dep in &step.dependencies {
                let p = t.step_index(dep).unwrap();
                assert!(m.contains(&format!("s{p} --> s{i}")), "{m}");
                assert!(d.contains(&format!("\"{dep}\" -> \"{}\"", step.name)), "{d}");
                edges += 1;
            }
        }
        assert_eq!(m.matches("-->").count(), edges);
        assert_eq!(d.matches(" -> ").count(), edges);
    }

    /// billing failed for good, so the two steps after it are blocked.
    fn failed_billing() -> Vec<StepState> {
        use StepState::{Blocked, Completed, Failed};
        vec![Completed, Failed, Completed, Blocked, Blocked]
    }

    #[test]
    fn snapshot_mermaid() {
        insta::assert_snapshot!(mermaid(&diamond(), None));
    }

    #[test]
    fn snapshot_mermaid_with_states() {
        insta::assert_snapshot!(mermaid(&diamond(), Some(&failed_billing())));
    }

    #[test]
    fn snapshot_dot() {
        insta::assert_snapshot!(dot(&diamond(), None));
    }

    #[test]
    fn snapshot_dot_with_states() {
        insta::assert_snapshot!(dot(&diamond(), Some(&failed_billing())));
    }

    #[test]
    fn snapshot_text_with_states() {
        insta::assert_snapshot!(text(&diamond(), Some(&failed_billing())));
    }
}
