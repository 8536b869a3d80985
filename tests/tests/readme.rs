//! README's shell blocks walked as far as this machine allows (no Docker, Kind or AWS here):
//! every `bosun`, `bosun-agent` and `bosun-control-plane` command line parses with the
//! binary's own flags, every repository path a command names exists (following `cd`), every
//! `cp X.example` copies a file that exists and sets only variables the example declares, and
//! every `terraform output NAME` is an output the example has. A renamed flag, file or variable
//! fails here instead of in a user's terminal. (CI runs the demo and the test command itself;
//! tests/tests/install.rs applies the Kind and EKS objects; tests/tests/terraform.rs reads the
//! HCL.)

use std::path::{Path, PathBuf};

use clap::Parser;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The `sh` blocks of README.md, each as logical lines (continuations joined, comments and
/// blank lines dropped), with the line number each starts at.
fn shell_lines(readme: &str) -> Vec<Vec<(usize, String)>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<(usize, String)>> = None;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in readme.lines().enumerate() {
        let n = i + 1;
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```sh") => current = Some(Vec::new()),
            (Some(_), l) if l.starts_with("```") => blocks.push(current.take().unwrap()),
            (Some(block), l) => {
                let code = strip_comment(l);
                let (start, mut text) = pending.take().unwrap_or((n, String::new()));
                text.push_str(code.trim_end_matches('\\').trim());
                text.push(' ');
                if code.trim_end().ends_with('\\') {
                    pending = Some((start, text));
                } else if !text.trim().is_empty() {
                    block.push((start, text.trim().to_string()));
                }
            }
            _ => {}
        }
    }
    blocks
}

/// The line without a trailing `# comment` (a `#` that starts a word outside quotes).
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

/// The simple commands of a line: split at `|`, `&&`, `||`, `;`, with `$(...)` substitutions
/// as commands of their own; redirections and what follows them dropped.
fn commands(line: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = line.to_string();
    while let Some(start) = rest.find("$(") {
        let Some(len) = rest[start..].find(')') else { break };
        let inner = rest[start + 2..start + len].to_string();
        out.extend(commands(&inner));
        rest.replace_range(start..start + len + 1, "SUBSTITUTED");
    }
    for part in rest.split(['|', ';']).flat_map(|p| p.split("&&")) {
        let Some(words) = shlex::split(part) else { continue };
        let words: Vec<String> =
            words.into_iter().take_while(|w| !w.starts_with('>') && !w.starts_with('<') && w != "2>&1").collect();
        // Leading `NAME=value` assignments and `export`, `eval` set the scene only.
        let words: Vec<String> = words
            .into_iter()
            .skip_while(|w| w == "export" || w == "eval" || (w.contains('=') && !w.starts_with('-')))
            .collect();
        if !words.is_empty() {
            out.push(words);
        }
    }
    out
}

/// Which of our binaries a command runs, and its arguments (`cargo run -p bosun-cli --`
/// included).
fn ours(words: &[String]) -> Option<(&'static str, Vec<String>)> {
    let name = |w: &str| w.rsplit('/').next().unwrap_or_default().to_string();
    if words[0] == "cargo" && words.get(1).map(String::as_str) == Some("run") {
        let package = words.iter().position(|w| w == "-p").and_then(|i| words.get(i + 1))?;
        let args: Vec<String> = words.iter().skip_while(|w| *w != "--").skip(1).cloned().collect();
        let bin = match package.as_str() {
            "bosun-cli" => "bosun",
            "bosun-agent" => "bosun-agent",
            "bosun-control-plane" => "bosun-control-plane",
            _ => return None,
        };
        return Some((bin, args));
    }
    let bin = match name(&words[0]).as_str() {
        "bosun" => "bosun",
        "bosun-agent" => "bosun-agent",
        "bosun-control-plane" => "bosun-control-plane",
        _ => return None,
    };
    Some((bin, words[1..].to_vec()))
}

fn parses(bin: &str, args: &[String]) -> Result<(), String> {
    let argv = std::iter::once(bin.to_string()).chain(args.iter().cloned());
    let result = match bin {
        "bosun" => bosun_cli::Cli::try_parse_from(argv).map(|_| ()),
        "bosun-agent" => bosun_agent::Config::try_parse_from(argv).map(|_| ()),
        _ => bosun_control_plane::Config::try_parse_from(argv).map(|_| ()),
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => {
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Words that name a file or directory of this repository (relative to where the block is);
/// `--path` values are paths in the user's Git repository, not here.
fn repository_paths(words: &[String]) -> Vec<String> {
    const TOP: [&str; 7] = ["k8s/", "scripts/", "terraform/", "docker/", "docs/", "fuzz/", ".ci/"];
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if (i > 0 && words[i - 1] == "--path") || w.starts_with("--path=") {
            continue;
        }
        let value = w.rsplit('=').next().unwrap_or_default();
        if TOP.iter().any(|t| value.starts_with(t)) {
            out.push(value.to_string());
        }
    }
    out
}

/// `name = ...` assignments of a tfvars file.
fn tfvars_names(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .collect()
}

/// Every `.tf` file of a directory, as one text.
fn terraform_text(dir: &Path) -> String {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "tf"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect()
}

#[test]
fn readme_commands_parse_and_name_what_exists() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = shell_lines(&readme);
    assert!(blocks.len() >= 5, "README's shell blocks were found ({})", blocks.len());
    let mut problems = Vec::new();
    let mut checked = 0;
    for block in &blocks {
        let mut cwd = root.clone();
        for (n, line) in block {
            for words in commands(line) {
                let mut problem = |what: String| problems.push(format!("README.md:{n}: {what}\n    {line}"));
                if words[0] == "cd" {
                    let to = cwd.join(&words[1]);
                    if to.is_dir() {
                        cwd = to
                    } else {
                        problem(format!("cd: {} does not exist", words[1]))
                    }
                    continue;
                }
                if let Some((bin, args)) = ours(&words) {
                    checked += 1;
                    if let Err(e) = parses(bin, &args) {
                        problem(format!("{bin} does not accept these arguments: {e}"));
                    }
                }
                for p in repository_paths(&words) {
                    let p = p.trim_end_matches(['.', ',']);
                    if !root.join(p).exists() && !cwd.join(p).exists() {
                        problem(format!("{p} does not exist"));
                    }
                }
                match words[0].as_str() {
                    "cp" if words[1].ends_with(".example") => {
                        let example = cwd.join(&words[1]);
                        match std::fs::read_to_string(&example) {
                            Err(_) => problem(format!("{} does not exist", words[1])),
                            Ok(text) if words[1].contains(".tfvars") => {
                                let tf = terraform_text(&cwd);
                                for name in tfvars_names(&text) {
                                    if !tf.contains(&format!("variable \"{name}\"")) {
                                        problem(format!("{} sets {name}, which is not a variable here", words[1]));
                                    }
                                }
                            }
                            Ok(_) => {}
                        }
                    }
                    "terraform" if words.get(1).map(String::as_str) == Some("output") => {
                        let name = words.last().unwrap();
                        if !terraform_text(&cwd).contains(&format!("output \"{name}\"")) {
                            problem(format!("terraform output {name}: no such output in {}", cwd.display()));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(checked >= 10, "README's own commands were found ({checked})");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_walker_sees_what_it_must() {
    let blocks = shell_lines(
        "text\n```sh\ncd terraform # go\nbosun app create x \\\n  --repo r   # two lines\n```\n```text\nbosun nope\n```\n",
    );
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0][1], (4, "bosun app create x --repo r".to_string()));
    let cmds = commands("export A=$(terraform output -raw admin_endpoint) B=1 && bosun cluster list | tail -1 > out");
    assert_eq!(cmds[0], ["terraform", "output", "-raw", "admin_endpoint"]);
    assert_eq!(cmds[1], ["bosun", "cluster", "list"]);
    assert!(parses("bosun", &["cluster".into(), "list".into()]).is_ok());
    assert!(parses("bosun", &["cluster".into(), "lisst".into()]).is_err(), "a wrong verb fails");
    assert!(parses("bosun-agent", &["--no-such-flag".into()]).is_err());
    assert_eq!(repository_paths(&["apply".into(), "-k".into(), "k8s/overlays/kind/agent".into()]).len(), 1);
    assert!(repository_paths(&["--path".into(), "k8s/backend".into()]).is_empty(), "a path in the user's Git");
    assert_eq!(
        tfvars_names("ca_pem      = <<-PEM\n  x\n  PEM\nregistration_token = \"brt_\"\n"),
        ["ca_pem", "registration_token"]
    );
}
