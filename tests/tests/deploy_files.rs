//! `deploy/compose.yaml` and `deploy/Dockerfile` agree with each other and with the workspace.
//!
//! No Docker engine runs these files in CI, so this test reads them instead: every service is
//! restarted and health-checked, every built service runs a binary the workspace builds, with
//! flags that binary has, from a Dockerfile target that copies it, and Redis keeps the
//! data-safety settings of `docs/reliability.md`. Every Tasker process connects as a user of its
//! own, with the permissions `deploy/dev` gives it and its password in a file, and only the
//! coordinator reaches Redis (`docs/security.md`), in `deploy/compose.cluster.yaml` too. It needs
//! no servers.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

const COMPOSE: &str = "deploy/compose.yaml";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives one level below the workspace root")
        .to_owned()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A binary's source: its main file and the modules it declares with
/// `mod name;`, each `name.rs` or every file under `name/`, where its
/// subcommands and flags are.
fn binary_source(main: &Path) -> String {
    let mut source = read(main);
    let dir = main.parent().expect("a source file is in a directory");
    let modules: Vec<String> = source
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_owned)
        })
        .collect();
    for module in modules {
        let file = dir.join(format!("{module}.rs"));
        let files = if file.exists() {
            vec![file]
        } else {
            rust_files(&dir.join(&module))
        };
        for file in files {
            source.push_str(&read(&file));
        }
    }
    source
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The compose file with its `<<:` merge keys applied, as Compose applies them.
fn compose() -> Value {
    let path = repo_root().join(COMPOSE);
    let mut compose: Value =
        serde_yaml::from_str(&read(&path)).unwrap_or_else(|e| panic!("{COMPOSE} is not valid YAML: {e}"));
    compose
        .apply_merge()
        .unwrap_or_else(|e| panic!("{COMPOSE}: bad merge key: {e}"));
    compose
}

fn services(compose: &Value) -> BTreeMap<String, Value> {
    let services = compose
        .get("services")
        .and_then(Value::as_mapping)
        .unwrap_or_else(|| panic!("{COMPOSE} has no `services` mapping"));
    services
        .iter()
        .map(|(name, service)| {
            (
                name.as_str().expect("service names are strings").to_owned(),
                service.clone(),
            )
        })
        .collect()
}

fn service(compose: &Value, name: &str) -> Value {
    services(compose)
        .remove(name)
        .unwrap_or_else(|| panic!("{COMPOSE} has no service `{name}`"))
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, found {other:?}"),
    }
}

/// A `command` or a healthcheck `test`, given as a string or a list, as words.
fn words(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Sequence(items) => items.iter().map(scalar).collect(),
        other => panic!("expected a string or a list, found {other:?}"),
    }
}

/// The value after `flag` in a command, as in `--flag value` or `--flag=value`.
fn flag_value(words: &[String], flag: &str) -> Option<String> {
    words.iter().enumerate().find_map(|(i, word)| {
        if word == flag {
            words.get(i + 1).cloned()
        } else {
            word.strip_prefix(flag)?.strip_prefix('=').map(str::to_owned)
        }
    })
}

/// A service's `environment`, given as a mapping or as a list of `KEY=value`.
fn environment(service: &Value) -> BTreeMap<String, String> {
    match service.get("environment") {
        None => BTreeMap::new(),
        Some(Value::Mapping(vars)) => vars.iter().map(|(k, v)| (scalar(k), scalar(v))).collect(),
        Some(Value::Sequence(vars)) => vars
            .iter()
            .map(|var| {
                let var = scalar(var);
                let (k, v) = var.split_once('=').unwrap_or((var.as_str(), ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        Some(other) => panic!("`environment` is neither a mapping nor a list: {other:?}"),
    }
}

/// A `[[bin]]` target of a workspace member.
#[derive(Debug)]
struct Binary {
    name: String,
    package: String,
    source: PathBuf,
}

/// The string value of `key = "…"` on one line of a Cargo.toml.
fn toml_string(line: &str, key: &str) -> Option<String> {
    let (k, v) = line.split_once('=')?;
    (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
}

/// Every binary the workspace builds, read from the members' Cargo.toml files.
fn workspace_binaries() -> Vec<Binary> {
    let root = repo_root();
    let manifest = read(&root.join("Cargo.toml"));
    // `members = [ ... ]`, on one line or several.
    let start = manifest
        .find("\nmembers")
        .expect("the root Cargo.toml lists its members");
    let members = &manifest[start..];
    let members = &members[..members.find(']').expect("the members list ends with ]")];
    let mut binaries = Vec::new();
    for member in members.split('"').skip(1).step_by(2) {
        let dir = root.join(member);
        let mut package = None;
        let mut section = String::new();
        let mut bins: Vec<(Option<String>, Option<String>)> = Vec::new();
        for line in read(&dir.join("Cargo.toml")).lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_owned();
                if section == "[[bin]]" {
                    bins.push((None, None));
                }
            } else if section == "[package]" {
                package = package.or_else(|| toml_string(line, "name"));
            } else if section == "[[bin]]" {
                let bin = bins.last_mut().expect("inside a [[bin]] section");
                bin.0 = bin.0.take().or_else(|| toml_string(line, "name"));
                bin.1 = bin.1.take().or_else(|| toml_string(line, "path"));
            }
        }
        let package = package.unwrap_or_else(|| panic!("{member}/Cargo.toml has no package name"));
        if bins.is_empty() && dir.join("src/main.rs").exists() {
            bins.push((Some(package.clone()), None));
        }
        for (name, path) in bins {
            binaries.push(Binary {
                name: name.unwrap_or_else(|| panic!("a [[bin]] of {member} has no name")),
                package: package.clone(),
                source: dir.join(path.as_deref().unwrap_or("src/main.rs")),
            });
        }
    }
    binaries
}

/// One `FROM` stage of a Dockerfile, with its instructions after `FROM`.
#[derive(Debug)]
struct Stage {
    name: Option<String>,
    base: String,
    instructions: Vec<String>,
}

/// The stages of a Dockerfile, with comments dropped and continued lines joined.
fn dockerfile_stages(text: &str) -> Vec<Stage> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => current.push_str(start),
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in instructions {
        let words: Vec<&str> = instruction.split_whitespace().collect();
        if words[0].eq_ignore_ascii_case("FROM") {
            let words: Vec<&str> = words[1..]
                .iter()
                .copied()
                .filter(|w| !w.starts_with("--"))
                .collect();
            let name = match words.as_slice() {
                [_, keyword, name] if keyword.eq_ignore_ascii_case("AS") => Some((*name).to_owned()),
                _ => None,
            };
            stages.push(Stage {
                name,
                base: words[0].to_owned(),
                instructions: Vec::new(),
            });
        } else {
            stages
                .last_mut()
                .expect("a Dockerfile starts with FROM")
                .instructions
                .push(instruction);
        }
    }
    stages
}

/// The stage a build target names (the last one without a target), then the stages it is
/// built on, nearest first.
fn stage_chain<'a>(stages: &'a [Stage], target: Option<&str>) -> Vec<&'a Stage> {
    let by_name = |name: &str| stages.iter().find(|s| s.name.as_deref() == Some(name));
    let mut stage = match target {
        Some(target) => by_name(target),
        None => stages.last(),
    };
    let mut chain = Vec::new();
    while let Some(s) = stage {
        chain.push(s);
        stage = by_name(&s.base);
    }
    chain
}

/// The `COPY` instructions of a chain of stages, as (`--from` stage, sources, destination).
fn copies(chain: &[&Stage]) -> Vec<(Option<String>, Vec<String>, String)> {
    chain
        .iter()
        .flat_map(|stage| &stage.instructions)
        .filter_map(|instruction| {
            let mut words = instruction.split_whitespace();
            if !words.next()?.eq_ignore_ascii_case("COPY") {
                return None;
            }
            let words: Vec<&str> = words.collect();
            let from = words
                .iter()
                .find_map(|w| w.strip_prefix("--from="))
                .map(str::to_owned);
            let mut paths: Vec<String> = words
                .iter()
                .filter(|w| !w.starts_with("--"))
                .map(|w| (*w).to_owned())
                .collect();
            let destination = paths.pop()?;
            Some((from, paths, destination))
        })
        .collect()
}

/// A built service: where its Dockerfile is and which target it builds.
struct Build {
    context: PathBuf,
    dockerfile: PathBuf,
    target: Option<String>,
}

fn build(name: &str, service: &Value) -> Option<Build> {
    let compose_dir = repo_root().join("deploy");
    let (context, dockerfile, target) = match service.get("build")? {
        Value::String(context) => (context.clone(), "Dockerfile".to_owned(), None),
        build => (
            build.get("context").map_or_else(|| ".".to_owned(), scalar),
            build
                .get("dockerfile")
                .map_or_else(|| "Dockerfile".to_owned(), scalar),
            build.get("target").map(scalar),
        ),
    };
    // Compose resolves the context against the compose file's directory, and the Dockerfile
    // against the context.
    let context = compose_dir.join(context);
    assert!(
        context.is_dir(),
        "service `{name}`: build context {} is not a directory",
        context.display()
    );
    let dockerfile = context.join(dockerfile);
    assert!(
        dockerfile.is_file(),
        "service `{name}`: no Dockerfile at {}",
        dockerfile.display()
    );
    Some(Build {
        context,
        dockerfile,
        target,
    })
}

fn path_ends_with_dir(path: &str, dir: &str) -> bool {
    path.trim_end_matches('/') == dir.trim_end_matches('/')
}

/// `CamelCase` for a kebab-case subcommand, the name of its clap `Subcommand` variant.
fn variant_name(subcommand: &str) -> String {
    subcommand
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn the_stack_has_the_servers_a_coordinator_and_a_worker() {
    let services = services(&compose());
    for name in ["rabbitmq", "redis", "jaeger", "coordinator"] {
        assert!(services.contains_key(name), "{COMPOSE} has no service `{name}`");
    }
    assert!(
        services.keys().any(|name| name.starts_with("worker-")),
        "{COMPOSE} has no `worker-<namespace>` service"
    );
}

#[test]
fn every_service_restarts_and_has_a_healthcheck() {
    for (name, service) in services(&compose()) {
        let restart = service.get("restart").map(scalar);
        assert!(
            matches!(
                restart.as_deref(),
                Some("always" | "unless-stopped" | "on-failure")
            ),
            "service `{name}` needs `restart: unless-stopped` (or always, on-failure), has {restart:?}"
        );
        let healthcheck = service
            .get("healthcheck")
            .unwrap_or_else(|| panic!("service `{name}` has no healthcheck"));
        assert_ne!(
            healthcheck.get("disable"),
            Some(&Value::Bool(true)),
            "service `{name}` disables its healthcheck"
        );
        let test = words(
            healthcheck
                .get("test")
                .unwrap_or_else(|| panic!("service `{name}`: the healthcheck has no `test`")),
        );
        assert!(
            matches!(test.first().map(String::as_str), Some("CMD" | "CMD-SHELL")) && test.len() > 1,
            "service `{name}`: the healthcheck test {test:?} runs nothing"
        );
    }
}

#[test]
fn built_services_run_a_workspace_binary_that_their_image_holds() {
    let compose = compose();
    let binaries = workspace_binaries();
    let mut built = 0;
    for (name, service) in services(&compose) {
        let Some(build) = build(&name, &service) else {
            continue;
        };
        built += 1;
        let dockerfile = read(&build.dockerfile);
        let stages = dockerfile_stages(&dockerfile);
        if let Some(target) = &build.target {
            assert!(
                stages.iter().any(|s| s.name.as_deref() == Some(target.as_str())),
                "service `{name}`: {} has no stage `{target}`",
                build.dockerfile.display()
            );
        }
        let chain = stage_chain(&stages, build.target.as_deref());
        let copies = copies(&chain);

        // Whatever the image copies from the build context must be there.
        for (_, sources, _) in copies.iter().filter(|(from, ..)| from.is_none()) {
            for source in sources {
                assert!(
                    build.context.join(source).exists(),
                    "service `{name}`: the Dockerfile copies {source}, which is not in the build context"
                );
            }
        }

        let command =
            words(service.get("command").unwrap_or_else(|| {
                panic!("service `{name}` has no `command`; the images have no entrypoint")
            }));
        match command[0].as_str() {
            program if program.starts_with("python") => {
                python_service_runs_a_module_its_image_installs(&name, &command, &build, &chain, &copies);
            }
            "node" => node_service_runs_a_program_its_image_builds(&name, &command, &build, &chain, &copies),
            "ruby" => ruby_service_runs_a_program_its_image_copies(&name, &command, &build, &chain, &copies),
            _ => service_runs_a_binary_its_image_holds(
                &name,
                &command,
                &binaries,
                &dockerfile,
                &build,
                &copies,
            ),
        }

        // The healthcheck must ask the port the process serves its health endpoints on.
        let health_addr = flag_value(&command, "--health-addr")
            .or_else(|| environment(&service).remove("TASKER_HEALTH_ADDR"))
            .unwrap_or_else(|| panic!("service `{name}` sets neither --health-addr nor TASKER_HEALTH_ADDR"));
        let port = health_addr.rsplit(':').next().expect("an address has a port");
        let test = words(&service["healthcheck"]["test"]).join(" ");
        assert!(
            test.contains(&format!(":{port}/readyz")),
            "service `{name}` serves health on {health_addr}, but its healthcheck is {test:?}"
        );
    }
    assert!(
        built >= 2,
        "expected the coordinator and a worker to be built, found {built} built services"
    );
}

/// A service that runs a Rust binary: the workspace builds it, the Dockerfile builds its
/// package and its target copies it, and it has the subcommand and flags the command gives.
fn service_runs_a_binary_its_image_holds(
    name: &str,
    command: &[String],
    binaries: &[Binary],
    dockerfile: &str,
    build: &Build,
    copies: &[(Option<String>, Vec<String>, String)],
) {
    let binary = binaries.iter().find(|b| b.name == command[0]).unwrap_or_else(|| {
        let known: Vec<&str> = binaries.iter().map(|b| b.name.as_str()).collect();
        panic!(
            "service `{name}` runs `{}`, which the workspace does not build (it builds {known:?})",
            command[0]
        )
    });

    assert!(
        dockerfile.contains(&format!("-p {}", binary.package))
            || dockerfile.contains(&format!("--package {}", binary.package)),
        "service `{name}`: {} does not build package {}",
        build.dockerfile.display(),
        binary.package
    );
    let bin_path = format!("/usr/local/bin/{}", binary.name);
    assert!(
        copies
            .iter()
            .any(|(_, sources, destination)| destination == &bin_path
                || (path_ends_with_dir(destination, "/usr/local/bin")
                    && sources.iter().any(|s| s.ends_with(&format!("/{}", binary.name))))),
        "service `{name}`: target {:?} of the Dockerfile does not copy {bin_path}",
        build.target
    );

    let source = binary_source(&binary.source);
    if let Some(subcommand) = command.get(1).filter(|w| !w.starts_with('-')) {
        let variant = variant_name(subcommand);
        assert!(
            [" {", ",", "("]
                .iter()
                .any(|end| source.contains(&format!("{variant}{end}"))),
            "service `{name}`: {} has no subcommand `{subcommand}` in {}",
            binary.name,
            binary.source.display()
        );
    }
    for flag in command.iter().filter_map(|w| w.strip_prefix("--")) {
        let field = flag.split('=').next().unwrap_or(flag).replace('-', "_");
        assert!(
            source.contains(&field),
            "service `{name}`: {} has no flag --{flag} (no `{field}` in {})",
            binary.name,
            binary.source.display()
        );
    }
}

/// A service that runs a Python module (`python -m <module> [<service>]`): its image copies
/// a package of the build context whose `src/<module>` has a `__main__.py`, installs it with
/// pip, and that package knows the service named.
fn python_service_runs_a_module_its_image_installs(
    name: &str,
    command: &[String],
    build: &Build,
    chain: &[&Stage],
    copies: &[(Option<String>, Vec<String>, String)],
) {
    assert_eq!(
        command.get(1).map(String::as_str),
        Some("-m"),
        "service `{name}`: a Python service runs `python -m <module>`, not {command:?}"
    );
    let module = command
        .get(2)
        .unwrap_or_else(|| panic!("service `{name}`: no module after -m"));
    let (package, destination) = copies
        .iter()
        .filter(|(from, ..)| from.is_none())
        .find_map(|(_, sources, destination)| {
            sources
                .iter()
                .find(|source| {
                    build
                        .context
                        .join(source)
                        .join("src")
                        .join(module)
                        .join("__main__.py")
                        .is_file()
                })
                .map(|source| (build.context.join(source), destination.clone()))
        })
        .unwrap_or_else(|| {
            panic!("service `{name}`: its image copies no package with src/{module}/__main__.py")
        });
    assert!(
        chain
            .iter()
            .flat_map(|stage| &stage.instructions)
            .any(|i| i.contains("pip install") && i.contains(destination.trim_end_matches('/'))),
        "service `{name}`: its image does not pip install {destination}, where it copies {}",
        package.display()
    );
    if let Some(served) = command.get(3).filter(|w| !w.starts_with('-')) {
        let source = files_with_extension(&package.join("src").join(module), "py")
            .iter()
            .map(|f| read(f))
            .collect::<String>();
        assert!(
            source.contains(&format!("\"{served}\"")),
            "service `{name}`: {module} knows no service \"{served}\""
        );
    }
}

/// The file of the build context that a `COPY` from the context puts at `path` in the image.
fn copied_from_context(
    build: &Build,
    copies: &[(Option<String>, Vec<String>, String)],
    path: &str,
) -> Option<PathBuf> {
    copies
        .iter()
        .filter(|(from, ..)| from.is_none())
        .flat_map(|(_, sources, destination)| sources.iter().map(move |source| (source, destination)))
        .find_map(|(source, destination)| {
            let local = build.context.join(source);
            let file = if local.is_dir() {
                // A directory's contents go into the destination.
                let rest = path
                    .strip_prefix(destination.trim_end_matches('/'))?
                    .strip_prefix('/')?;
                local.join(rest)
            } else if let Some(dir) = destination.strip_suffix('/') {
                // A file copied into a directory keeps its name.
                let name = local.file_name()?.to_str()?;
                (path.strip_prefix(dir)?.strip_prefix('/')? == name).then_some(local)?
            } else {
                (path == destination.as_str()).then_some(local)?
            };
            file.is_file().then_some(file)
        })
}

/// Whether the image runs `step` (such as `npm ci`) in `dir`, after a `WORKDIR` or a `cd`
/// in the same `RUN`.
fn runs_in(chain: &[&Stage], dir: &str, step: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    chain.iter().rev().any(|stage| {
        let mut workdir = String::from("/");
        stage.instructions.iter().any(|instruction| {
            let mut words = instruction.split_whitespace();
            let keyword = words.next().unwrap_or_default();
            if keyword.eq_ignore_ascii_case("WORKDIR") {
                workdir = words
                    .collect::<Vec<_>>()
                    .join(" ")
                    .trim_end_matches('/')
                    .to_owned();
                return false;
            }
            if !keyword.eq_ignore_ascii_case("RUN") {
                return false;
            }
            let script = words
                .skip_while(|w| w.starts_with("--"))
                .collect::<Vec<_>>()
                .join(" ");
            let mut here = workdir.clone();
            script
                .split("&&")
                .map(str::trim)
                .any(|command| match command.strip_prefix("cd ") {
                    Some(to) => {
                        here = to.trim().trim_end_matches('/').to_owned();
                        false
                    }
                    None => here == dir && command.contains(step),
                })
        })
    })
}

/// A service that runs a TypeScript package's build (`node <package>/dist/src/<main>.js
/// [<service>]`): its image copies the package's manifest, lock file and `src/<main>.ts`
/// from the build context and runs `npm ci` and `npm run build` in it, and the package
/// knows the service named.
fn node_service_runs_a_program_its_image_builds(
    name: &str,
    command: &[String],
    build: &Build,
    chain: &[&Stage],
    copies: &[(Option<String>, Vec<String>, String)],
) {
    let program = command
        .get(1)
        .unwrap_or_else(|| panic!("service `{name}`: node runs no program"));
    let (package, output) = program
        .split_once("/dist/")
        .unwrap_or_else(|| panic!("service `{name}`: {program} is not in a package's dist/"));
    let main = output
        .strip_suffix(".js")
        .unwrap_or_else(|| panic!("service `{name}`: {program} is not a .js file"));
    let source = format!("{main}.ts");
    for file in ["package.json", "package-lock.json", source.as_str()] {
        assert!(
            copied_from_context(build, copies, &format!("{package}/{file}")).is_some(),
            "service `{name}`: its image copies no {package}/{file} from the build context"
        );
    }
    for step in ["npm ci", "npm run build"] {
        assert!(
            runs_in(chain, package, step),
            "service `{name}`: its image does not run `{step}` in {package}"
        );
    }
    if let Some(served) = command.get(2).filter(|w| !w.starts_with('-')) {
        let main = copied_from_context(build, copies, &format!("{package}/{source}")).expect("checked above");
        let src = main.parent().expect("a file is in a directory");
        let text: String = files_with_extension(src, "ts").iter().map(|f| read(f)).collect();
        assert!(
            text.contains(&format!("\"{served}\"")),
            "service `{name}`: {} knows no service \"{served}\"",
            src.display()
        );
    }
}

/// A service that runs a Ruby program (`ruby <package>/bin/<program> [<service>]`): its image
/// copies the program and its package's `lib/` from the build context and installs Bunny
/// (Debian's ruby-bunny), and the package knows the service named.
fn ruby_service_runs_a_program_its_image_copies(
    name: &str,
    command: &[String],
    build: &Build,
    chain: &[&Stage],
    copies: &[(Option<String>, Vec<String>, String)],
) {
    let program = command
        .get(1)
        .unwrap_or_else(|| panic!("service `{name}`: ruby runs no program"));
    let local = copied_from_context(build, copies, program)
        .unwrap_or_else(|| panic!("service `{name}`: its image copies no {program} from the build context"));
    let (package, _) = program
        .rsplit_once("/bin/")
        .unwrap_or_else(|| panic!("service `{name}`: {program} is not in a package's bin/"));
    let lib = local
        .parent()
        .and_then(Path::parent)
        .expect("bin/ is in a package")
        .join("lib");
    let files = files_with_extension(&lib, "rb");
    assert!(
        !files.is_empty(),
        "service `{name}`: {} holds no Ruby",
        lib.display()
    );
    for file in &files {
        let relative = file.strip_prefix(&lib).expect("a file under lib/");
        assert!(
            copied_from_context(build, copies, &format!("{package}/lib/{}", relative.display())).is_some(),
            "service `{name}`: its image does not copy {} to {package}/lib",
            file.display()
        );
    }
    assert!(
        chain
            .iter()
            .flat_map(|stage| &stage.instructions)
            .any(|i| i.contains("ruby-bunny") || i.contains("gem install bunny")),
        "service `{name}`: its image installs no Bunny (apt-get install ruby-bunny)"
    );
    if let Some(served) = command.get(2).filter(|w| !w.starts_with('-')) {
        let text: String = files.iter().map(|f| read(f)).collect();
        assert!(
            text.contains(&format!("'{served}'")) || text.contains(&format!("\"{served}\"")),
            "service `{name}`: {} knows no service \"{served}\"",
            lib.display()
        );
    }
}

/// Every file under `dir` whose name ends in `.<extension>`.
fn files_with_extension(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(files_with_extension(&path, extension));
        } else if path.extension().is_some_and(|e| e == extension) {
            files.push(path);
        }
    }
    files
}

#[test]
fn the_coordinator_image_holds_the_templates_its_command_loads() {
    let compose = compose();
    let coordinator = service(&compose, "coordinator");
    let command = words(&coordinator["command"]);
    let templates = flag_value(&command, "--templates")
        .unwrap_or_else(|| panic!("the coordinator's command {command:?} has no --templates"));
    let build = build("coordinator", &coordinator).expect("the coordinator is built from the Dockerfile");
    let stages = dockerfile_stages(&read(&build.dockerfile));
    let copies = copies(&stage_chain(&stages, build.target.as_deref()));
    let (_, sources, _) = copies
        .iter()
        .find(|(from, _, destination)| from.is_none() && path_ends_with_dir(destination, &templates))
        .unwrap_or_else(|| panic!("the coordinator's image does not COPY anything to {templates}"));
    for source in sources {
        let dir = build.context.join(source);
        let has_yaml = fs::read_dir(&dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().is_dir() || e.path().extension().is_some_and(|x| x == "yaml"))
        });
        assert!(has_yaml, "{} holds no templates", dir.display());
    }
}

#[test]
fn redis_keeps_the_data_safety_settings() {
    let redis = service(&compose(), "redis");
    let command = words(
        redis
            .get("command")
            .expect("redis needs a command that sets its persistence"),
    );
    assert_eq!(
        command[0], "redis-server",
        "redis's command must run redis-server"
    );
    assert_eq!(
        flag_value(&command, "--appendonly").as_deref(),
        Some("yes"),
        "redis must enable AOF (--appendonly yes); its command is {command:?}"
    );
    let fsync = flag_value(&command, "--appendfsync");
    assert!(
        matches!(fsync.as_deref(), Some("everysec" | "always")),
        "redis must fsync the AOF every second or on every write; --appendfsync is {fsync:?}"
    );
    assert_eq!(
        flag_value(&command, "--maxmemory-policy").as_deref(),
        Some("noeviction"),
        "redis must never evict task state (--maxmemory-policy noeviction); its command is {command:?}"
    );
}

#[test]
fn the_servers_keep_their_data_in_named_volumes() {
    let compose = compose();
    let volumes = compose
        .get("volumes")
        .and_then(Value::as_mapping)
        .expect("the compose file declares named volumes");
    for (name, data_dir) in [("rabbitmq", "/var/lib/rabbitmq"), ("redis", "/data")] {
        let service = service(&compose, name);
        let mounts: Vec<String> = service
            .get("volumes")
            .and_then(Value::as_sequence)
            .map(|mounts| mounts.iter().map(scalar).collect())
            .unwrap_or_default();
        assert!(
            mounts.iter().any(|mount| {
                let (volume, path) = mount.split_once(':').unwrap_or(("", ""));
                path.trim_end_matches(":rw") == data_dir && volumes.contains_key(volume)
            }),
            "service `{name}` must mount a named volume at {data_dir}; its volumes are {mounts:?}"
        );
    }
}

/// A string of a compose file as Compose reads it, where `$$` stands for `$`. These files use no
/// variables, so a `$` on its own, which Compose would read as one (or refuse), is an error.
fn unescaped(what: &str, text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('$') => out.push('$'),
            next => panic!(
                "{what}: a `$` not written `$$`, which Compose would read as a variable (before {next:?})"
            ),
        }
    }
    out
}

/// The source of the config a service mounts at `target`.
fn mounted_config(service: &Value, target: &str) -> Option<String> {
    service
        .get("configs")?
        .as_sequence()?
        .iter()
        .find(|c| c.get("target").map(scalar).as_deref() == Some(target))
        .and_then(|c| c.get("source").map(scalar))
}

/// What a service's container reads at `target`: the content of the config mounted there.
fn mounted_content(files: &[&Value], name: &str, service: &Value, target: &str) -> String {
    let source = mounted_config(service, target)
        .unwrap_or_else(|| panic!("service `{name}` mounts no config at {target}"));
    let content = config_content(files, &source)
        .unwrap_or_else(|| panic!("service `{name}`: there is no config `{source}` with a `content`"));
    unescaped(&format!("config `{source}`"), &content)
}

/// Where compose.yaml's RabbitMQ nodes find their definitions.
const DEFINITIONS: &str = "/etc/rabbitmq/definitions.json";

/// Whether a RabbitMQ node mounts a file of `conf.d` that loads [`DEFINITIONS`] at boot.
fn loads_definitions(files: &[&Value], node: &Value) -> bool {
    node.get("configs")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter(|c| {
            c.get("target")
                .map(scalar)
                .is_some_and(|t| t.starts_with("/etc/rabbitmq/conf.d/") && t.ends_with(".conf"))
        })
        .filter_map(|c| config_content(files, &scalar(c.get("source")?)))
        .any(|conf| {
            conf.lines().any(|line| {
                line.split_once('=')
                    .is_some_and(|(k, v)| k.trim() == "load_definitions" && v.trim() == DEFINITIONS)
            })
        })
}

/// The users and permissions compose.yaml's RabbitMQ loads at boot.
fn rabbit_definitions(compose: &Value) -> serde_json::Value {
    let rabbit = service(compose, "rabbitmq");
    assert!(
        loads_definitions(&[compose], &rabbit),
        "rabbitmq mounts no file of /etc/rabbitmq/conf.d with `load_definitions = {DEFINITIONS}`"
    );
    let json = mounted_content(&[compose], "rabbitmq", &rabbit, DEFINITIONS);
    serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{COMPOSE}: RabbitMQ's definitions are not JSON: {e}"))
}

/// The definitions' entries of one kind: "users", "permissions", "topic_permissions".
fn entries<'a>(definitions: &'a serde_json::Value, kind: &str) -> &'a [serde_json::Value] {
    definitions[kind].as_array().map_or(&[], Vec::as_slice)
}

/// A user of the definitions.
fn rabbit_user<'a>(definitions: &'a serde_json::Value, user: &str) -> Option<&'a serde_json::Value> {
    entries(definitions, "users").iter().find(|u| u["name"] == user)
}

/// The one entry of `kind` (permissions or topic permissions) that `user` has on the vhost "/".
fn rabbit_grant<'a>(definitions: &'a serde_json::Value, kind: &str, user: &str) -> &'a serde_json::Value {
    let found: Vec<&serde_json::Value> = entries(definitions, kind)
        .iter()
        .filter(|e| e["user"] == user && e["vhost"] == "/")
        .collect();
    assert_eq!(
        found.len(),
        1,
        "RabbitMQ's definitions give {user} {} entries of {kind} on \"/\"",
        found.len()
    );
    found[0]
}

/// The user of a URL that carries no password: the process reads it from the file its
/// `TASKER_*_PASSWORD_FILE` names.
fn url_user(name: &str, url: &str) -> String {
    let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("service `{name}`: {url} is not a URL: {e}"));
    assert_eq!(
        parsed.password(),
        None,
        "service `{name}`: {url} carries a password, which belongs in its password file"
    );
    assert!(
        !parsed.username().is_empty(),
        "service `{name}`: {url} names no user"
    );
    parsed.username().to_owned()
}

/// The Tasker services of a compose file: those it builds.
fn tasker_services(compose: &Value) -> BTreeMap<String, Value> {
    let mut services = services(compose);
    services.retain(|_, service| service.get("build").is_some());
    services
}

/// The namespace and service a worker serves, read from its `OTEL_SERVICE_NAME`:
/// `worker-microservices-<service>`, or `worker-<namespace>` for a namespace that is one service of
/// its own name (as `DEV_SERVICES` of deploy/dev.d/security.sh has them), dashes read as
/// underscores. The service its command names, if it names one, must be the same.
fn served(name: &str, service: &Value) -> (String, String) {
    let otel = environment(service)
        .remove("OTEL_SERVICE_NAME")
        .unwrap_or_else(|| panic!("service `{name}` sets no OTEL_SERVICE_NAME"));
    let rest = otel
        .strip_prefix("worker-")
        .unwrap_or_else(|| panic!("service `{name}`: OTEL_SERVICE_NAME {otel} is not worker-…"));
    let (namespace, served) = match rest.strip_prefix("microservices-") {
        Some(served) => ("microservices".to_owned(), served.to_owned()),
        None => (rest.replace('-', "_"), rest.replace('-', "_")),
    };
    let command = words(
        service
            .get("command")
            .unwrap_or_else(|| panic!("service `{name}` has no command")),
    );
    // `--service S`, `python -m MODULE S`, `node PROGRAM S`, `ruby PROGRAM S`.
    let position = match command[0].as_str() {
        program if program.starts_with("python") => 3,
        "node" | "ruby" => 2,
        _ => usize::MAX,
    };
    let named = flag_value(&command, "--service")
        .or_else(|| command.get(position).filter(|w| !w.starts_with('-')).cloned());
    if let Some(named) = named {
        assert_eq!(
            named, served,
            "service `{name}`: its command serves {named}, its OTEL_SERVICE_NAME is {otel}"
        );
    }
    for part in [&namespace, &served] {
        assert!(
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "service `{name}`: `{part}` is no namespace or service name"
        );
    }
    (namespace, served)
}

#[test]
fn every_tasker_service_reaches_rabbitmq_as_a_user_of_its_own() {
    let compose = compose();
    let definitions = rabbit_definitions(&compose);
    // Who connects as each user, and as whom each service connects.
    let mut serves: BTreeMap<String, String> = BTreeMap::new();
    let mut users: BTreeMap<String, String> = BTreeMap::new();
    for (name, service) in tasker_services(&compose) {
        let env = environment(&service);
        let url = env
            .get("TASKER_AMQP_URL")
            .unwrap_or_else(|| panic!("service `{name}` does not set TASKER_AMQP_URL"));
        let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("service `{name}`: {url}: {e}"));
        assert_eq!(
            (parsed.scheme(), parsed.host_str(), parsed.port()),
            ("amqp", Some("rabbitmq"), Some(5672)),
            "service `{name}`: TASKER_AMQP_URL must reach rabbitmq, is {url}"
        );
        let user = url_user(&name, url);
        let what = if name == "coordinator" {
            assert_eq!(user, "tasker-coordinator", "the coordinator connects as {user}");
            "the coordinators".to_owned()
        } else {
            let (namespace, served) = served(&name, &service);
            assert_eq!(
                user,
                format!("tasker-{served}"),
                "service `{name}` serves {namespace}.{served}, but connects as {user}"
            );
            // Its user may not declare tasker.steps, which its queue is bound to.
            assert_eq!(
                service["depends_on"]["coordinator"]["condition"].as_str(),
                Some("service_healthy"),
                "worker `{name}` must wait for the coordinator, which declares what the workers share"
            );
            format!("{namespace}.{served}")
        };
        if let Some(other) = serves.insert(user.clone(), what.clone()) {
            assert_eq!(other, what, "{user} is the user of both {other} and {what}");
        }
        if let Some(other) = users.insert(what.clone(), user.clone()) {
            assert_eq!(other, user, "{what} connects as both {other} and {user}");
        }

        let known = rabbit_user(&definitions, &user).unwrap_or_else(|| {
            panic!("service `{name}` connects as {user}, whom RabbitMQ's definitions lack")
        });
        assert_eq!(
            known["tags"],
            serde_json::json!([]),
            "{user}, a Tasker process's user, has tags: an administrator may do anything"
        );
        let password = known["password"]
            .as_str()
            .unwrap_or_else(|| panic!("{user} has no password in RabbitMQ's definitions"));
        assert!(
            !env.contains_key("TASKER_AMQP_PASSWORD"),
            "service `{name}`: its password belongs in a file"
        );
        let file = env
            .get("TASKER_AMQP_PASSWORD_FILE")
            .unwrap_or_else(|| panic!("service `{name}` sets no TASKER_AMQP_PASSWORD_FILE"));
        assert_eq!(
            mounted_content(&[&compose], &name, &service, file).trim_end_matches('\n'),
            password,
            "service `{name}`: {file} does not hold the password of {user}"
        );
        assert_eq!(
            service["depends_on"]["rabbitmq"]["condition"].as_str(),
            Some("service_healthy"),
            "service `{name}` must wait for rabbitmq to be healthy"
        );
    }
    assert!(
        serves.len() > 5,
        "{COMPOSE}: the Tasker services' users are {serves:?}"
    );
}

#[test]
fn no_worker_has_a_redis_url() {
    let mut workers = 0;
    for (name, service) in tasker_services(&compose()) {
        if name == "coordinator" {
            continue;
        }
        workers += 1;
        let env = environment(&service);
        for var in [
            "TASKER_REDIS_URL",
            "TASKER_REDIS_PASSWORD",
            "TASKER_REDIS_PASSWORD_FILE",
        ] {
            assert!(
                !env.contains_key(var),
                "worker `{name}` has {var}: workers have no business with Redis (docs/security.md)"
            );
        }
    }
    assert!(workers > 5, "{COMPOSE} has {workers} workers");
}

/// What a worker's user may do in RabbitMQ, as deploy/dev.d/security.sh gives it
/// (`rabbit_definitions`): configure and read its own queues, `tasker.steps.N.S`, or `.0`… and
/// its exchange when split, and no one else's; bind from its namespace's steps exchange,
/// `tasker.steps.N`, only; publish results of its namespace only. The
/// expressions as RabbitMQ reads them, after JSON.
fn worker_grants(namespace: &str, service: &str) -> [(&'static str, &'static str, String); 5] {
    let own = format!(r"tasker\.steps\.{namespace}\.{service}(\.[0-9]+)?");
    [
        ("permissions", "configure", format!(r"^({own}|amq\.gen-.*)$")),
        (
            "permissions",
            "write",
            format!(r"^({own}|tasker\.events|tasker\.dead_letter|tasker\.requests|amq\.gen-.*)$"),
        ),
        (
            "permissions",
            "read",
            format!(r"^({own}|tasker\.steps\.{namespace}|amq\.gen-.*)$"),
        ),
        (
            "topic_permissions",
            "write",
            format!(r"^(step\.result\.{namespace}|worker\.announce)$"),
        ),
        ("topic_permissions", "read", "^$".to_owned()),
    ]
}

#[test]
fn each_workers_user_may_configure_and_read_only_its_own_step_queues() {
    let compose = compose();
    let definitions = rabbit_definitions(&compose);
    let mut checked = BTreeMap::new();
    for (name, service) in tasker_services(&compose) {
        if name == "coordinator" {
            continue;
        }
        let (namespace, served) = served(&name, &service);
        let user = url_user(&name, &environment(&service)["TASKER_AMQP_URL"]);
        for (kind, right, expected) in worker_grants(&namespace, &served) {
            let grant = rabbit_grant(&definitions, kind, &user);
            if kind == "topic_permissions" {
                assert_eq!(grant["exchange"], "tasker.events", "{user}: {grant}");
            }
            assert_eq!(
                grant[right].as_str(),
                Some(expected.as_str()),
                "{user} (service `{name}`, of {namespace}.{served}): its {kind} to {right}"
            );
        }
        checked.insert(user, name);
    }
    assert!(checked.len() > 5, "workers' users: {checked:?}");
}

#[test]
fn rabbitmq_knows_the_coordinators_the_client_an_administrator_and_the_services() {
    let compose = compose();
    let definitions = rabbit_definitions(&compose);
    assert!(
        entries(&definitions, "vhosts").iter().any(|v| v["name"] == "/"),
        "RabbitMQ's definitions declare no vhost \"/\""
    );
    let expected: [(&str, &str, [&str; 5]); 3] = [
        (
            "tasker-coordinator",
            "the coordinators may do anything to Tasker's objects",
            [
                r"^(tasker\..*|amq\.gen-.*)$",
                r"^(tasker\..*|amq\.gen-.*|amq\.default)$",
                r"^(tasker\..*|amq\.gen-.*)$",
                ".*",
                ".*",
            ],
        ),
        (
            "tasker-client",
            "a client submits tasks and hears of them on a private reply queue",
            [
                r"^amq\.gen-.*$",
                r"^(tasker\.requests|amq\.gen-.*)$",
                r"^amq\.gen-.*$",
                "^$",
                "^$",
            ],
        ),
        (
            "tasker",
            "the operators' administrator",
            [".*", ".*", ".*", "", ""],
        ),
    ];
    for (user, why, [configure, write, read, topic_write, topic_read]) in expected {
        assert!(
            rabbit_user(&definitions, user).is_some(),
            "RabbitMQ has no user {user}"
        );
        let grant = rabbit_grant(&definitions, "permissions", user);
        for (right, value) in [("configure", configure), ("write", write), ("read", read)] {
            assert_eq!(grant[right].as_str(), Some(value), "{user}'s {right}: {why}");
        }
        if user == "tasker" {
            continue;
        }
        let topic = rabbit_grant(&definitions, "topic_permissions", user);
        assert_eq!(topic["exchange"], "tasker.events", "{user}: {topic}");
        for (right, value) in [("write", topic_write), ("read", topic_read)] {
            assert_eq!(
                topic[right].as_str(),
                Some(value),
                "{user}'s topic {right}: {why}"
            );
        }
    }
    assert!(
        rabbit_user(&definitions, "tasker")
            .is_some_and(|u| u["tags"] == serde_json::json!(["administrator"])),
        "the operators' user tasker is an administrator"
    );

    // No one else: every other user is a Tasker service's, and every grant is a user's.
    let mut known: BTreeSet<String> = expected.iter().map(|(user, ..)| (*user).to_owned()).collect();
    for (name, service) in tasker_services(&compose) {
        known.insert(url_user(&name, &environment(&service)["TASKER_AMQP_URL"]));
    }
    for user in entries(&definitions, "users") {
        let user = user["name"].as_str().expect("a user has a name");
        assert!(
            known.contains(user),
            "RabbitMQ's user {user} is no Tasker service's"
        );
    }
    for kind in ["permissions", "topic_permissions"] {
        for grant in entries(&definitions, kind) {
            let user = grant["user"].as_str().expect("a grant names its user");
            assert!(
                rabbit_user(&definitions, user).is_some(),
                "{kind} for no user: {grant}"
            );
        }
    }
}

/// Redis's users, from the ACL file a Redis service loads (`--aclfile`): each one's rules.
fn redis_acl(files: &[&Value], name: &str, redis: &Value) -> BTreeMap<String, Vec<String>> {
    let command = words(
        redis
            .get("command")
            .unwrap_or_else(|| panic!("{name} has no command")),
    );
    let path = flag_value(&command, "--aclfile")
        .unwrap_or_else(|| panic!("{name} loads no ACL file (--aclfile): {command:?}"));
    let mut users = BTreeMap::new();
    for line in mounted_content(files, name, redis, &path).lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            None => continue,
            Some("user") => {}
            Some(_) => panic!("{name}'s ACL file: not a user: {line}"),
        }
        let user = words
            .next()
            .unwrap_or_else(|| panic!("{name}'s ACL file: no user name: {line}"));
        let rules = words.map(str::to_owned).collect();
        assert!(
            users.insert(user.to_owned(), rules).is_none(),
            "{name}'s ACL file has {user} twice"
        );
    }
    users
}

/// The password of a user of an ACL file, and its rules without it.
fn acl_login(acl: &BTreeMap<String, Vec<String>>, user: &str) -> (String, Vec<String>) {
    let rules = acl
        .get(user)
        .unwrap_or_else(|| panic!("the ACL file has no user {user}"));
    let passwords: Vec<&str> = rules.iter().filter_map(|r| r.strip_prefix('>')).collect();
    assert_eq!(
        passwords.len(),
        1,
        "{user}'s passwords in the ACL file: {passwords:?}"
    );
    let rest = rules.iter().filter(|r| !r.starts_with('>')).cloned().collect();
    (passwords[0].to_owned(), rest)
}

/// The user and password a `redis-cli` command line logs in with.
fn redis_cli_login(words: &[String]) -> Option<(String, String)> {
    let user = flag_value(words, "--user")?;
    let password = flag_value(words, "--pass").or_else(|| flag_value(words, "-a"))?;
    Some((user, password))
}

/// Checks that `words`, a redis-cli command line, logs in as a user of `acl`, with its password,
/// and gives that user.
fn logs_in(acl: &BTreeMap<String, Vec<String>>, what: &str, words: &[String]) -> String {
    let (user, password) = redis_cli_login(words)
        .unwrap_or_else(|| panic!("{what} must log in (--user, --pass): the default user is off; {words:?}"));
    assert_eq!(
        acl_login(acl, &user).0,
        password,
        "{what} logs in as {user} with a password not {user}'s"
    );
    user
}

/// The rules of deploy/dev's Redis users (`redis_acl_file` of deploy/dev.d/security.sh), after
/// `on` and the password.
const REDIS_COORDINATOR_RULES: &str = "~tasker:* resetchannels -@all +@read +@write +@scripting \
    +@connection +@transaction -@dangerous +info +wait +cluster|info +cluster|nodes +cluster|slots \
    +cluster|shards +cluster|myid";
const REDIS_OPERATOR_RULES: &str = "~tasker:* resetchannels -@all +@read +@connection -@dangerous +info \
    +cluster|info +cluster|nodes +cluster|slots +cluster|shards +evalsha +eval +script|load";

#[test]
fn the_coordinator_reaches_redis_as_its_acl_user_and_the_default_user_is_off() {
    let compose = compose();
    let redis = service(&compose, "redis");
    let acl = redis_acl(&[&compose], "redis", &redis);
    assert_eq!(
        acl.get("default").map(Vec::as_slice),
        Some(["off".to_owned()].as_slice()),
        "the ACL file must turn the default user off, which otherwise has every right and no password"
    );
    for (user, rules) in [
        ("tasker-coordinator", REDIS_COORDINATOR_RULES),
        ("tasker-operator", REDIS_OPERATOR_RULES),
    ] {
        let (_, actual) = acl_login(&acl, user);
        let expected: Vec<&str> = ["on"].into_iter().chain(rules.split_whitespace()).collect();
        assert_eq!(actual, expected, "{user}'s rules are not deploy/dev's");
    }
    logs_in(&acl, "redis's healthcheck", &words(&redis["healthcheck"]["test"]));

    let coordinator = service(&compose, "coordinator");
    let env = environment(&coordinator);
    let url = &env["TASKER_REDIS_URL"];
    let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("the coordinator's {url}: {e}"));
    assert_eq!(
        (parsed.scheme(), parsed.host_str(), parsed.port()),
        ("redis", Some("redis"), Some(6379)),
        "the coordinator's TASKER_REDIS_URL must reach redis, is {url}"
    );
    assert_eq!(url_user("coordinator", url), "tasker-coordinator");
    let file = env
        .get("TASKER_REDIS_PASSWORD_FILE")
        .expect("the coordinator sets TASKER_REDIS_PASSWORD_FILE");
    assert_eq!(
        mounted_content(&[&compose], "coordinator", &coordinator, file).trim_end_matches('\n'),
        acl_login(&acl, "tasker-coordinator").0,
        "the coordinator's {file} does not hold tasker-coordinator's password"
    );
    assert_eq!(
        coordinator["depends_on"]["redis"]["condition"].as_str(),
        Some("service_healthy"),
        "the coordinator must wait for redis to be healthy"
    );
}

const CLUSTER_COMPOSE: &str = "deploy/compose.cluster.yaml";

/// compose.cluster.yaml with its `<<:` merge keys applied.
fn cluster_compose() -> Value {
    let mut cluster: Value = serde_yaml::from_str(&read(&repo_root().join(CLUSTER_COMPOSE)))
        .unwrap_or_else(|e| panic!("{CLUSTER_COMPOSE} is not valid YAML: {e}"));
    cluster
        .apply_merge()
        .unwrap_or_else(|e| panic!("{CLUSTER_COMPOSE}: bad merge key: {e}"));
    cluster
}

#[test]
fn the_cluster_file_gives_each_service_its_user_of_compose_yaml_on_every_node() {
    let base = compose();
    let overrides = services(&cluster_compose());
    for (name, service) in tasker_services(&base) {
        let base_env = environment(&service);
        let user = url_user(&name, &base_env["TASKER_AMQP_URL"]);
        let env = environment(
            overrides
                .get(&name)
                .unwrap_or_else(|| panic!("{CLUSTER_COMPOSE} leaves out {name}")),
        );
        let urls = env
            .get("TASKER_AMQP_URL")
            .unwrap_or_else(|| panic!("{CLUSTER_COMPOSE}: {name} has no TASKER_AMQP_URL"));
        let users: Vec<String> = urls.split(',').map(|url| url_user(&name, url)).collect();
        assert_eq!(
            users,
            vec![user.clone(); 3],
            "{CLUSTER_COMPOSE}: {name} connects to compose.yaml's RabbitMQ as {user}, and to the nodes \
             as {users:?}"
        );
        // The password file, and the config mounted there, are compose.yaml's.
        for var in ["TASKER_AMQP_PASSWORD_FILE", "TASKER_AMQP_PASSWORD"] {
            assert_eq!(
                env.get(var).or(base_env.get(var)),
                base_env.get(var),
                "{CLUSTER_COMPOSE}: {name} changes {var}"
            );
        }
        assert!(
            overrides[&name].get("configs").is_none(),
            "{CLUSTER_COMPOSE}: {name} mounts other configs than compose.yaml's"
        );
        match env.get("TASKER_REDIS_URL") {
            Some(urls) => {
                assert_eq!(
                    name, "coordinator",
                    "{CLUSTER_COMPOSE}: the worker {name} has a Redis URL"
                );
                let users: Vec<String> = urls.split(',').map(|url| url_user(&name, url)).collect();
                assert_eq!(users, vec!["tasker-coordinator"; 6], "{CLUSTER_COMPOSE}: {name}");
            }
            None => assert_ne!(
                name, "coordinator",
                "{CLUSTER_COMPOSE}: the coordinator has no Redis URL"
            ),
        }
    }
}

#[test]
fn every_node_of_the_cluster_loads_the_users_of_compose_yaml() {
    let base = compose();
    let cluster = cluster_compose();
    let files = [&base, &cluster];
    let overrides = services(&cluster);

    let definitions = mounted_config(&service(&base, "rabbitmq"), DEFINITIONS)
        .expect("compose.yaml's rabbitmq mounts its definitions");
    let rabbit_nodes: Vec<(&String, &Value)> = overrides
        .iter()
        .filter(|(name, _)| name.starts_with("rabbitmq"))
        .collect();
    assert_eq!(
        rabbit_nodes.len(),
        3,
        "{CLUSTER_COMPOSE}: rabbitmq, rabbitmq-2 and rabbitmq-3"
    );
    for (name, node) in rabbit_nodes {
        assert_eq!(
            mounted_config(node, DEFINITIONS).as_ref(),
            Some(&definitions),
            "{CLUSTER_COMPOSE}: {name} must mount compose.yaml's definitions at {DEFINITIONS}"
        );
        assert!(
            loads_definitions(&files, node),
            "{CLUSTER_COMPOSE}: {name} does not load {DEFINITIONS}"
        );
        let env = environment(node);
        assert!(
            !env.contains_key("RABBITMQ_DEFAULT_USER") && !env.contains_key("RABBITMQ_DEFAULT_PASS"),
            "{CLUSTER_COMPOSE}: {name} sets a default user, which loading definitions makes dead"
        );
    }

    let base_redis = service(&base, "redis");
    let acl = redis_acl(&[&base], "redis", &base_redis);
    let acl_path = flag_value(&words(&base_redis["command"]), "--aclfile").expect("checked by redis_acl");
    let acl_source = mounted_config(&base_redis, &acl_path).expect("checked by redis_acl");
    // A user with every right, for what forms and runs the cluster.
    let admin = |user: &str, what: &str| {
        let (_, rules) = acl_login(&acl, user);
        assert!(
            ["~*", "+@all"].iter().all(|r| rules.iter().any(|rule| rule == r)),
            "{what} logs in as {user}, who has not every right: {rules:?}"
        );
    };
    let redis_nodes: Vec<(&String, &Value)> = overrides
        .iter()
        .filter(|(name, _)| name.starts_with("redis-") && *name != "redis-cluster-create")
        .collect();
    assert_eq!(redis_nodes.len(), 6, "{CLUSTER_COMPOSE}: redis-1 to redis-6");
    for (name, node) in redis_nodes {
        let command = words(&node["command"]);
        let path = flag_value(&command, "--aclfile")
            .unwrap_or_else(|| panic!("{CLUSTER_COMPOSE}: {name} loads no ACL file"));
        assert_eq!(
            mounted_config(node, &path).as_ref(),
            Some(&acl_source),
            "{CLUSTER_COMPOSE}: {name} must load compose.yaml's ACL file"
        );
        assert_eq!(redis_acl(&files, name, node), acl, "{CLUSTER_COMPOSE}: {name}");
        // A replica logs in to its master.
        let user = flag_value(&command, "--masteruser")
            .unwrap_or_else(|| panic!("{CLUSTER_COMPOSE}: {name} has no --masteruser for its replication"));
        assert_eq!(
            flag_value(&command, "--masterauth"),
            Some(acl_login(&acl, &user).0),
            "{CLUSTER_COMPOSE}: {name}'s --masterauth is not {user}'s password"
        );
        admin(&user, &format!("{name}'s replication"));
        logs_in(
            &acl,
            &format!("{name}'s healthcheck"),
            &words(&node["healthcheck"]["test"]),
        );
    }

    let create = words(&overrides["redis-cluster-create"]["command"]).join(" ");
    let calls: Vec<Vec<String>> = create
        .split("redis-cli")
        .skip(1)
        .map(|call| call.split_whitespace().map(str::to_owned).collect())
        .collect();
    assert!(calls.len() >= 2, "redis-cluster-create: {create}");
    for call in calls {
        let user = logs_in(&acl, "each redis-cli of redis-cluster-create", &call);
        admin(&user, "redis-cluster-create");
    }
}

/// The hosts of a list of URLs separated by commas.
fn url_hosts(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(|u| {
            url::Url::parse(u)
                .unwrap_or_else(|e| panic!("{CLUSTER_COMPOSE}: {u} is not a URL: {e}"))
                .host_str()
                .unwrap_or_else(|| panic!("{CLUSTER_COMPOSE}: {u} names no host"))
                .to_owned()
        })
        .collect()
}

#[test]
fn the_cluster_file_points_every_tasker_process_at_every_node() {
    let base = compose();
    let cluster = cluster_compose();
    let base_services = services(&base);
    let overrides = services(&cluster);
    let defined = |name: &str| base_services.contains_key(name) || overrides.contains_key(name);

    // Three RabbitMQ nodes and six Redis nodes in cluster mode, each
    // restarted and health-checked, and the one-shot service that forms
    // the Redis Cluster names all six.
    let redis_nodes: Vec<&String> = overrides
        .keys()
        .filter(|n| n.starts_with("redis-") && *n != "redis-cluster-create")
        .collect();
    assert_eq!(
        redis_nodes.len(),
        6,
        "{CLUSTER_COMPOSE}: the Redis nodes are {redis_nodes:?}"
    );
    for name in &redis_nodes {
        let node = &overrides[*name];
        let command = words(node.get("command").expect("a Redis node's command"));
        assert_eq!(
            flag_value(&command, "--cluster-enabled").as_deref(),
            Some("yes"),
            "{name}"
        );
        assert_eq!(
            flag_value(&command, "--appendonly").as_deref(),
            Some("yes"),
            "{name}"
        );
        assert!(
            node.get("healthcheck").is_some() && node.get("restart").is_some(),
            "{name}"
        );
    }
    let create = words(
        overrides["redis-cluster-create"]
            .get("command")
            .expect("its command"),
    )
    .join(" ");
    for name in &redis_nodes {
        assert!(
            create.contains(&format!("hosts {name} ")),
            "redis-cluster-create leaves out {name}: {create}"
        );
    }
    assert!(create.contains("--cluster-replicas 1"), "{create}");

    // Every Tasker process of compose.yaml gets every RabbitMQ node, and the coordinator every
    // Redis node; the workers have no Redis URL.
    let tasker: Vec<&String> = base_services
        .iter()
        .filter(|(_, s)| s.get("build").is_some())
        .map(|(name, _)| name)
        .collect();
    assert!(tasker.len() > 5, "compose.yaml's Tasker services: {tasker:?}");
    for name in tasker {
        let service = overrides
            .get(name)
            .unwrap_or_else(|| panic!("{CLUSTER_COMPOSE} does not point {name} at the clusters"));
        let env = environment(service);
        let amqp = url_hosts(&env["TASKER_AMQP_URL"]);
        let redis = env
            .get("TASKER_REDIS_URL")
            .map(|urls| url_hosts(urls))
            .unwrap_or_default();
        assert_eq!(amqp.len(), 3, "{name}: {amqp:?}");
        let nodes = if name == "coordinator" { 6 } else { 0 };
        assert_eq!(redis.len(), nodes, "{name}: {redis:?}");
        for host in amqp.iter().chain(&redis) {
            assert!(
                defined(host),
                "{name} names {host}, which neither compose file defines"
            );
        }
        assert!(
            redis.iter().all(|h| redis_nodes.contains(&h)),
            "{name}'s Redis URL names a node outside the cluster: {redis:?}"
        );
    }
}

/// The content of the top-level config `name` of either compose file.
fn config_content(files: &[&Value], name: &str) -> Option<String> {
    files
        .iter()
        .find_map(|f| f.get("configs")?.get(name)?.get("content"))
        .map(scalar)
}

#[test]
fn every_rabbitmq_node_enables_the_consistent_hash_exchange() {
    let base = compose();
    let cluster = cluster_compose();
    let nodes = [(COMPOSE, services(&base))]
        .into_iter()
        .chain([(CLUSTER_COMPOSE, services(&cluster))])
        .flat_map(|(file, services)| {
            services
                .into_iter()
                .filter(|(name, _)| name.starts_with("rabbitmq"))
                .map(move |(name, service)| (format!("{file}: {name}"), service))
        });
    let mut checked = 0;
    for (name, node) in nodes {
        let plugins = node
            .get("configs")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .find(|c| c.get("target").map(scalar).as_deref() == Some("/etc/rabbitmq/enabled_plugins"))
            .and_then(|c| c.get("source").map(scalar))
            .and_then(|source| config_content(&[&base, &cluster], &source))
            .unwrap_or_else(|| panic!("{name} mounts no enabled_plugins config"));
        assert!(
            plugins.contains("rabbitmq_consistent_hash_exchange") && plugins.contains("rabbitmq_management"),
            "{name}: {plugins}"
        );
        checked += 1;
    }
    assert_eq!(checked, 4, "rabbitmq of each file, rabbitmq-2 and rabbitmq-3");
}
