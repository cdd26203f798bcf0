//! `deploy/compose.yaml` and `deploy/Dockerfile` agree with each other and with the workspace.
//!
//! No Docker engine runs these files in CI, so this test reads them instead: every service is
//! restarted and health-checked, every built service runs a binary the workspace builds, with
//! flags that binary has, from a Dockerfile target that copies it, and Redis keeps the
//! data-safety settings of `docs/reliability.md`. It needs no servers.

use std::collections::BTreeMap;
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

#[test]
fn built_services_reach_rabbitmq_as_its_configured_user() {
    let compose = compose();
    let rabbit = environment(&service(&compose, "rabbitmq"));
    let user = rabbit
        .get("RABBITMQ_DEFAULT_USER")
        .expect("rabbitmq sets RABBITMQ_DEFAULT_USER: guest may only connect from localhost");
    let pass = rabbit
        .get("RABBITMQ_DEFAULT_PASS")
        .expect("rabbitmq sets RABBITMQ_DEFAULT_PASS");
    for (name, service) in services(&compose) {
        if service.get("build").is_none() {
            continue;
        }
        let url = environment(&service)
            .remove("TASKER_AMQP_URL")
            .unwrap_or_else(|| panic!("service `{name}` does not set TASKER_AMQP_URL"));
        assert!(
            url.starts_with(&format!("amqp://{user}:{pass}@rabbitmq:5672/")),
            "service `{name}`: TASKER_AMQP_URL must use rabbitmq's user and host, is {url}"
        );
        let depends_on = service
            .get("depends_on")
            .unwrap_or_else(|| panic!("service `{name}` has no depends_on"));
        assert_eq!(
            depends_on["rabbitmq"]["condition"].as_str(),
            Some("service_healthy"),
            "service `{name}` must wait for rabbitmq to be healthy"
        );
    }
}

const CLUSTER_COMPOSE: &str = "deploy/compose.cluster.yaml";

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
    let path = repo_root().join(CLUSTER_COMPOSE);
    let mut cluster: Value = serde_yaml::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{CLUSTER_COMPOSE} is not valid YAML: {e}"));
    cluster
        .apply_merge()
        .unwrap_or_else(|e| panic!("{CLUSTER_COMPOSE}: bad merge key: {e}"));
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

    // Every Tasker process of compose.yaml gets every node of both.
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
        let redis = url_hosts(&env["TASKER_REDIS_URL"]);
        assert_eq!(amqp.len(), 3, "{name}: {amqp:?}");
        assert_eq!(redis.len(), 6, "{name}: {redis:?}");
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
    let mut cluster: Value = serde_yaml::from_str(&read(&repo_root().join(CLUSTER_COMPOSE)))
        .unwrap_or_else(|e| panic!("{CLUSTER_COMPOSE} is not valid YAML: {e}"));
    cluster
        .apply_merge()
        .unwrap_or_else(|e| panic!("{CLUSTER_COMPOSE}: bad merge key: {e}"));
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
