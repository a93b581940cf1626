//! The shell examples of README.md and docs/*.md, run as written against a
//! fresh demo, so that they cannot rot.
//!
//! The convention (docs/contributing.md, "Examples that cannot rot"):
//!
//! - Fenced blocks marked `sh`, `bash` or `console` run; any other block
//!   (`text`, `json`, `toml`, `python`, …) is only read.
//! - A runnable block whose first line is `# not run: <reason>` is skipped,
//!   and the reason shows on the page (PostgreSQL, brokers, Supabase, a
//!   loop that never ends).
//! - The blocks of one file run in order in one bash session
//!   (`set -euo pipefail`), in an empty directory where a demo server runs
//!   on a free port, with `$BASE` (its URL) and `$TOKEN` (the token it
//!   printed) set and this build's `commandes` first on the `PATH`.
//! - `sh` and `bash` blocks must succeed; their output is not compared, so
//!   every `curl` in them uses `--fail` (or `--fail-with-body`) to fail on
//!   an HTTP error.
//! - `console` blocks are `$ command` lines (continued by a line ending in
//!   `\`, or by lines starting with `> `), each followed by the output it
//!   shows, which must be what the command prints (stdout and stderr
//!   together). `…` in a shown line stands for any text; a line holding
//!   only `…` for any number of lines.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{commandes, serve, terminate};

/// The languages whose blocks run.
const RUNNABLE: [&str; 3] = ["sh", "bash", "console"];
/// The first line of a runnable block that is not run.
const NOT_RUN: &str = "# not run:";
/// The longest one file's examples may take.
const FILE_TIMEOUT: Duration = Duration::from_secs(300);

/// A fenced code block: where it starts (its fence line, 1-based), its
/// language and its lines.
#[derive(Debug)]
struct Block {
    line: usize,
    lang: String,
    lines: Vec<String>,
}

/// One thing to run: a whole `sh`/`bash` block, or one command of a
/// `console` block with the output it shows.
#[derive(Debug)]
enum Unit {
    Script {
        at: String,
        text: String,
    },
    Console {
        at: String,
        command: String,
        shown: Vec<String>,
    },
}

/// The fenced code blocks of a Markdown text. Fences may be indented (in
/// lists); the indentation is taken off the block's lines.
fn blocks(text: &str) -> Vec<Block> {
    let mut found = Vec::new();
    let mut open: Option<(usize, String, usize, usize, Vec<String>)> = None;
    for (n, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        let ticks = trimmed.chars().take_while(|&c| c == '`').count();
        match open.take() {
            None => {
                if ticks >= 3 {
                    let lang = trimmed[ticks..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    open = Some((n + 1, lang, ticks, indent, Vec::new()));
                }
            }
            Some((start, lang, fence, indent_of, mut lines)) => {
                if ticks >= fence && trimmed[ticks..].trim().is_empty() {
                    found.push(Block {
                        line: start,
                        lang,
                        lines,
                    });
                } else {
                    let cut = line.len() - line.trim_start().len();
                    lines.push(line[cut.min(indent_of)..].to_string());
                    open = Some((start, lang, fence, indent_of, lines));
                }
            }
        }
    }
    assert!(open.is_none(), "an unclosed code fence");
    found
}

/// Lines ending in `\` joined with the next: one logical command each.
fn logical_lines(lines: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in lines {
        current.push_str(line);
        if line.trim_end().ends_with('\\') {
            current.push('\n');
        } else {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// What runs of a file, or the reasons its examples break the convention.
/// Also returns the blocks that are not run, with their reasons.
fn units(file: &str, text: &str) -> Result<(Vec<Unit>, Vec<String>), Vec<String>> {
    let mut units = Vec::new();
    let mut skipped = Vec::new();
    let mut problems = Vec::new();
    for block in blocks(text) {
        if !RUNNABLE.contains(&block.lang.as_str()) {
            continue;
        }
        let at = format!("{file}:{}", block.line);
        if let Some(first) = block.lines.first() {
            if let Some(reason) = first.trim().strip_prefix(NOT_RUN) {
                if reason.trim().is_empty() {
                    problems.push(format!("{at}: `{NOT_RUN}` needs a reason"));
                }
                skipped.push(format!("{at}:{}", reason.trim_end()));
                continue;
            }
        }
        for logical in logical_lines(&block.lines) {
            if logical.contains("localhost:8001") || logical.contains("127.0.0.1:8001") {
                problems.push(format!(
                    "{at}: a runnable example names the port; use $BASE: {logical}"
                ));
            }
        }
        if block.lang == "console" {
            let mut current: Option<(String, Vec<String>)> = None;
            let mut continued = false;
            for line in &block.lines {
                let prompt2 = current
                    .as_ref()
                    .is_some_and(|(_, shown)| shown.is_empty())
                    .then(|| line.strip_prefix("> ").or((line == ">").then_some("")))
                    .flatten();
                if continued || prompt2.is_some() {
                    let (command, _) = current.as_mut().expect("a command is open");
                    let line = prompt2.unwrap_or(line);
                    command.push('\n');
                    command.push_str(line);
                    continued = line.trim_end().ends_with('\\');
                } else if let Some(command) = line.strip_prefix("$ ") {
                    if let Some((command, shown)) = current.take() {
                        units.push(Unit::Console {
                            at: at.clone(),
                            command,
                            shown,
                        });
                    }
                    current = Some((command.to_string(), Vec::new()));
                    continued = command.trim_end().ends_with('\\');
                } else if let Some((_, shown)) = current.as_mut() {
                    shown.push(line.clone());
                } else {
                    problems.push(format!(
                        "{at}: a console block starts with `$ command`, not {line:?}"
                    ));
                    break;
                }
            }
            if let Some((command, shown)) = current {
                units.push(Unit::Console {
                    at: at.clone(),
                    command,
                    shown,
                });
            }
        } else {
            for logical in logical_lines(&block.lines) {
                let code = logical.split(" # ").next().unwrap_or("");
                let calls_curl = code
                    .split(|c: char| c.is_whitespace() || "(|;&".contains(c))
                    .any(|word| word == "curl");
                if calls_curl && !code.contains("--fail") {
                    problems.push(format!(
                        "{at}: a curl whose output is not compared must use --fail-with-body: {logical}"
                    ));
                }
            }
            units.push(Unit::Script {
                at,
                text: block.lines.join("\n"),
            });
        }
    }
    if problems.is_empty() {
        Ok((units, skipped))
    } else {
        Err(problems)
    }
}

/// Whether a shown line matches a printed one: `…` stands for any text.
fn line_matches(shown: &str, printed: &str) -> bool {
    let parts: Vec<&str> = shown.split('…').collect();
    if parts.len() == 1 {
        return shown == printed;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !printed.starts_with(first)
        || !printed.ends_with(last)
        || printed.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &printed[first.len()..printed.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Whether shown lines match printed ones: a line holding only `…` stands
/// for any number of lines.
fn output_matches(shown: &[&str], printed: &[&str]) -> bool {
    match shown.split_first() {
        None => printed.is_empty(),
        Some((&"…", rest)) => {
            (0..=printed.len()).any(|skip| output_matches(rest, &printed[skip..]))
        }
        Some((line, rest)) => match printed.split_first() {
            Some((first, others)) => line_matches(line, first) && output_matches(rest, others),
            None => false,
        },
    }
}

/// Lines without trailing white space, without trailing empty lines.
fn normalised<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut lines: Vec<&str> = lines.map(str::trim_end).collect();
    while lines.last() == Some(&"") {
        lines.pop();
    }
    lines
}

/// The bash script of a file's units: each records where it is, console
/// commands write their output to a numbered file.
fn script(units: &[Unit]) -> String {
    let mut s = String::from("set -euo pipefail\n");
    for (n, unit) in units.iter().enumerate() {
        writeln!(s, "printf '%s\\n' {n} > \"$DOCS_AT\"").unwrap();
        match unit {
            Unit::Script { text, .. } => writeln!(s, "{text}").unwrap(),
            Unit::Console { command, .. } => {
                writeln!(s, "{{\n{command}\n}} > \"$DOCS_OUT/{n}\" 2>&1").unwrap()
            }
        }
    }
    s
}

/// The last lines of a text, for a failure message.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Removes the settings of the test's own environment (the suite's
/// PostgreSQL, log levels) so that the examples see what a user sees.
fn clean_env(cmd: &mut Command) {
    for (name, _) in std::env::vars() {
        if name.starts_with("COMMANDES_") || name == "DATABASE_URL" || name == "RUST_LOG" {
            cmd.env_remove(name);
        }
    }
}

/// Runs one file's examples against a fresh demo; returns what failed.
fn run_file(root: &Path, file: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(root.join(file)).unwrap();
    let (units, skipped) = units(file, &text).map_err(|p| p.join("\n"))?;
    let mut report = format!("{file}: {} run, {} not run", units.len(), skipped.len());
    for reason in &skipped {
        write!(report, "\n  not run: {reason}").unwrap();
    }
    if units.is_empty() {
        return Ok(report);
    }

    let dir = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let at_file = out_dir.path().join("at");
    let script_file = out_dir.path().join("script.sh");
    std::fs::write(&script_file, script(&units)).unwrap();

    let mut server = commandes(dir.path());
    clean_env(&mut server);
    let served = serve(&mut server, true);
    let token = served.token.clone().expect("the demo prints its token");

    let bin = PathBuf::from(env!("CARGO_BIN_EXE_commandes"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut bash = Command::new("bash");
    clean_env(&mut bash);
    let mut child = bash
        .arg(&script_file)
        .current_dir(dir.path())
        .env("BASE", served.base())
        .env("TOKEN", &token)
        .env("PATH", path)
        .env("DOCS_AT", &at_file)
        .env("DOCS_OUT", out_dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let (stdout, stderr) = (read(Box::new(stdout)), read(Box::new(stderr)));
    let deadline = Instant::now() + FILE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let (stopped, logs) = terminate(served);

    // The unit that was running when bash stopped (the last one started).
    let current = std::fs::read_to_string(&at_file)
        .ok()
        .and_then(|n| n.trim().parse::<usize>().ok())
        .and_then(|n| units.get(n).map(|unit| (n, unit)));
    let at = match current {
        Some((_, Unit::Script { at, .. } | Unit::Console { at, .. })) => at.as_str(),
        None => file,
    };
    let mut failures = Vec::new();
    match status {
        None => failures.push(format!(
            "{at}: still running after {FILE_TIMEOUT:?} (killed)"
        )),
        Some(status) if !status.success() => {
            let mut failure = format!("{at}: the example failed ({status})");
            if let Some((n, Unit::Console { command, .. })) = current {
                let out =
                    std::fs::read_to_string(out_dir.path().join(n.to_string())).unwrap_or_default();
                write!(failure, "\n$ {command}\n{}", tail(&out, 40)).unwrap();
            }
            write!(
                failure,
                "\n--- stdout (last lines)\n{}\n--- stderr (last lines)\n{}",
                tail(&stdout, 40),
                tail(&stderr, 40)
            )
            .unwrap();
            failures.push(failure);
        }
        Some(_) => {
            for (n, unit) in units.iter().enumerate() {
                if let Unit::Console { at, command, shown } = unit {
                    let printed =
                        std::fs::read_to_string(out_dir.path().join(n.to_string())).unwrap();
                    let shown = normalised(shown.iter().map(String::as_str));
                    if !output_matches(&shown, &normalised(printed.lines())) {
                        failures.push(format!(
                            "{at}: `$ {command}` printed something else than shown.\n--- shown\n{}\n--- printed\n{}",
                            shown.join("\n"),
                            printed.trim_end()
                        ));
                    }
                }
            }
        }
    }
    if !stopped {
        failures.push(format!(
            "{file}: the demo server did not stop cleanly:\n{}",
            tail(&logs, 20)
        ));
    }
    if failures.is_empty() {
        Ok(report)
    } else {
        Err(failures.join("\n\n"))
    }
}

/// README.md, then docs/*.md by name.
fn documents(root: &Path) -> Vec<String> {
    let mut files = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".md"))
                .map(|name| format!("docs/{name}"))
                .collect()
        })
        .unwrap_or_default();
    docs.sort();
    files.extend(docs);
    files
}

/// The tools the examples call, or a message saying how to get them.
fn tools_present() {
    for (tool, arg) in [
        ("bash", "--version"),
        ("curl", "--version"),
        ("jq", "--version"),
    ] {
        let found = Command::new(tool)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "the documentation's examples need `{tool}`, which is not installed here: \
             `apt-get install {tool}` (.ci/run installs it)"
        );
    }
}

#[test]
fn every_shell_example_of_the_documentation_runs_as_written() {
    tools_present();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut reports = Vec::new();
    // `DOCS_EXAMPLES=docs/api.md` (a comma-separated list) runs only those.
    let files = match std::env::var("DOCS_EXAMPLES") {
        Ok(only) => only.split(',').map(str::to_string).collect(),
        Err(_) => documents(root),
    };
    let mut failures = Vec::new();
    for file in files {
        match run_file(root, &file) {
            Ok(report) => reports.push(report),
            Err(failure) => failures.push(failure),
        }
    }
    println!("{}", reports.join("\n"));
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn the_convention_reads_what_it_should() {
    let text = "\
Text.

```sh
echo one \\
  two
```

```console
$ echo 'a b'
a b
$ printf 'x\\ny\\n'
…
```

```sh
# not run: needs PostgreSQL
psql
```

```json
{\"not\": \"run\"}
```

- in a list:

  ```bash
  echo indented
  ```

```console
$ for i in 1 2; do
>   echo $i
> done
1
2
```
";
    let (run, skipped) = units("t.md", text).unwrap();
    assert_eq!(skipped, ["t.md:15: needs PostgreSQL"]);
    assert_eq!(run.len(), 5, "{run:?}");
    assert!(
        matches!(&run[0], Unit::Script { at, text } if at == "t.md:3" && text == "echo one \\\n  two")
    );
    assert!(
        matches!(&run[1], Unit::Console { command, shown, .. } if command == "echo 'a b'" && shown == &["a b"])
    );
    assert!(matches!(&run[3], Unit::Script { text, .. } if text == "echo indented"));
    assert!(
        matches!(&run[4], Unit::Console { command, shown, .. } if command == "for i in 1 2; do\n  echo $i\ndone" && shown == &["1", "2"])
    );

    let bad =
        "```sh\ncurl -s $BASE/stats\n```\n```sh\n# not run:\n```\n```console\noutput first\n```\n";
    assert_eq!(units("b.md", bad).unwrap_err().len(), 3);
    assert!(units(
        "c.md",
        "```sh\ncurl -sS http://localhost:8001/ --fail\n```\n"
    )
    .is_err());

    assert!(line_matches("elapsed: … s", "elapsed: 0.12 s"));
    assert!(!line_matches("elapsed: … s", "elapsed: 0.12 ms"));
    assert!(line_matches("a…c…e", "abcde"));
    assert!(!line_matches("ab…ba", "aba"));
    assert!(output_matches(&["x", "…", "z"], &["x", "y", "y", "z"]));
    assert!(output_matches(&["x", "…"], &["x"]));
    assert!(!output_matches(&["x"], &["x", "y"]));
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces
/// as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code blocks).
fn anchors(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut found = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            found.push(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

/// The relative link targets of a Markdown text: `](target)`.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            if let Some(end) = rest.find(')') {
                let target = &rest[..end];
                if !fenced && !target.contains("://") && !target.starts_with("mailto:") {
                    found.push(target.to_string());
                }
                rest = &rest[end..];
            }
        }
    }
    found
}

#[test]
fn every_link_of_the_documentation_resolves_and_every_page_is_linked_from_the_readme() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = documents(root);
    files.extend(["CHANGELOG.md".into(), "deploy/kubernetes/README.md".into()]);
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let dir = Path::new(file).parent().unwrap_or(Path::new(""));
        for target in links(&text) {
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let resolved = if path.is_empty() {
                PathBuf::from(file)
            } else {
                dir.join(path)
            };
            let full = root.join(&resolved);
            if !full.exists() {
                broken.push(format!("{file}: {target}: no such file"));
            } else if !fragment.is_empty() {
                let page = std::fs::read_to_string(&full).unwrap_or_default();
                if !anchors(&page).iter().any(|a| a == fragment) {
                    broken.push(format!("{file}: {target}: no such heading"));
                }
            }
        }
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for page in documents(root).iter().filter(|f| f.starts_with("docs/")) {
        if !links(&readme)
            .iter()
            .any(|l| l.split('#').next() == Some(page))
        {
            broken.push(format!("README.md does not link to {page}"));
        }
    }
    assert!(broken.is_empty(), "\n{}", broken.join("\n"));
    assert_eq!(
        anchor("Two clerks, one order: `ETag` and `If-Match`"),
        "two-clerks-one-order-etag-and-if-match"
    );
}
