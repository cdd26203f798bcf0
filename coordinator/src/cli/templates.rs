//! `tasker validate` and `tasker templates list|graph`: template files,
//! checked, listed and drawn, with no server.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use tasker_coordinator::templates;
use tasker_protocol::{TaskTemplate, TemplateRegistry};

use super::args::{Output, TemplatesDir};
use super::output::{EXIT_NOT_FOUND, out, outln, print_json};
use super::{graph, report};

/// `tasker templates`' commands.
#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// List every template and version in the directory.
    #[command(
        after_help = "Examples:\n  tasker templates list\n  tasker templates list --templates deploy/templates --json"
    )]
    List {
        #[command(flatten)]
        templates: TemplatesDir,
        #[command(flatten)]
        output: Output,
    },
    /// Draw a template's DAG.
    #[command(
        after_help = "Examples:\n  tasker templates graph microservices/user_registration\n  tasker templates graph microservices/user_registration --format dot | dot -Tpng > diamond.png\n  tasker templates graph microservices/user_registration --format svg > diamond.svg\n  tasker templates graph microservices/user_registration --format text"
    )]
    Graph {
        /// The template, as NAMESPACE/NAME.
        template: String,
        /// A version; the highest one when absent.
        #[arg(long)]
        version: Option<String>,
        /// mermaid (for Markdown), dot (Graphviz source), svg (rendered by
        /// Graphviz's `dot`, which must be installed) or text.
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
        #[command(flatten)]
        templates: TemplatesDir,
        /// Print JSON: the steps, their dependencies, and the drawing.
        #[command(flatten)]
        output: Output,
    },
}

/// How `templates graph` draws.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum GraphFormat {
    /// Mermaid, for Markdown.
    Mermaid,
    /// Graphviz source.
    Dot,
    /// SVG, rendered by Graphviz.
    Svg,
    /// Text, for a terminal.
    Text,
}

/// Checks template files or directories; prints each template, or each
/// problem.
pub fn validate(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut ok = 0;
    let mut failed = 0;
    for path in paths {
        if path.is_dir() {
            match templates::load_dir(path) {
                Ok(registry) => {
                    for t in registry.iter() {
                        outln!("ok  {}", t.key());
                        ok += 1;
                    }
                }
                Err(tasker_coordinator::Error::Templates(errors)) => {
                    for e in errors {
                        eprintln!("{e}");
                        failed += 1;
                    }
                }
                Err(e) => bail!(e),
            }
        } else {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            match TaskTemplate::from_yaml(&path.display().to_string(), &text) {
                Ok(t) => {
                    outln!("ok  {}  ({})", t.key(), path.display());
                    ok += 1;
                }
                Err(e) => {
                    eprintln!("{e}");
                    failed += 1;
                }
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} invalid, {ok} valid");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a `tasker templates` command.
pub fn run(command: TemplatesCommand) -> anyhow::Result<ExitCode> {
    match command {
        TemplatesCommand::List { templates, output } => {
            let registry = load(&templates.dir)?;
            if output.json {
                let list: Vec<serde_json::Value> = registry
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "namespace": t.namespace,
                            "name": t.name,
                            "version": t.version.to_string(),
                            "steps": t.steps.len(),
                            "description": t.description,
                        })
                    })
                    .collect();
                print_json(&list)?;
            } else {
                out!("{}", report::template_table(registry.iter().map(AsRef::as_ref)));
            }
            Ok(ExitCode::SUCCESS)
        }
        TemplatesCommand::Graph {
            template,
            version,
            format,
            templates,
            output,
        } => {
            let Some((namespace, name)) = template.split_once('/') else {
                bail!("'{template}' is not NAMESPACE/NAME, e.g. microservices/user_registration");
            };
            let registry = load(&templates.dir)?;
            let template = match registry.get(namespace, name, version.as_deref()) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {e} (templates read from {})", templates.dir.display());
                    return Ok(ExitCode::from(EXIT_NOT_FOUND));
                }
            };
            let drawing = match format {
                GraphFormat::Mermaid => graph::mermaid(template, None),
                GraphFormat::Dot => graph::dot(template, None),
                GraphFormat::Text => graph::text(template, None),
                GraphFormat::Svg => render_svg(&graph::dot(template, None))?,
            };
            if output.json {
                let steps: Vec<serde_json::Value> = template
                    .steps
                    .iter()
                    .map(|s| serde_json::json!({ "name": s.name, "dependencies": s.dependencies }))
                    .collect();
                print_json(
                    &serde_json::json!({ "template": template.key(), "steps": steps, "drawing": drawing }),
                )?;
            } else {
                out!("{drawing}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The templates in `dir`, or every problem with them.
fn load(dir: &Path) -> anyhow::Result<TemplateRegistry> {
    if !dir.is_dir() {
        bail!(
            "{} is not a directory of templates; pass --templates DIR or set TASKER_TEMPLATES",
            dir.display()
        );
    }
    match templates::load_dir(dir) {
        Ok(registry) => Ok(registry),
        Err(tasker_coordinator::Error::Templates(errors)) => {
            for e in &errors {
                eprintln!("{e}");
            }
            bail!(
                "{} template problem(s) in {}; `tasker validate {}` shows them too",
                errors.len(),
                dir.display(),
                dir.display()
            )
        }
        Err(e) => bail!(e),
    }
}

/// Renders DOT source to SVG with Graphviz's `dot`.
fn render_svg(source: &str) -> anyhow::Result<String> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "--format svg needs Graphviz's `dot` ({e}); install it (apt-get install graphviz), or print the source with --format dot"
            )
        })?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(source.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("Graphviz's `dot -Tsvg` failed ({})", output.status);
    }
    Ok(String::from_utf8(output.stdout)?)
}
