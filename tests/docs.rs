//! The documentation against the tree and the binary: every relative link and anchor in
//! the project's Markdown resolves, and the README's tour prints what the README says.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

#[path = "support/files.rs"]
mod files;

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every Markdown file of the project: README.md, docs/ and the READMEs beside the code.
/// Build output, the fuzz crate's corpora and git's store hold no docs of ours.
fn markdown_files() -> Vec<PathBuf> {
    files::under(
        root(),
        &["target", ".git", "corpus", "artifacts"],
        &|path| path.extension().is_some_and(|e| e == "md"),
    )
}

/// GitHub's anchor for a heading, as github-slugger makes it: lower case, every character
/// that is not a letter, digit, space, `-` or `_` dropped, each space a `-` (so
/// "`mutate --check` in CI" is `mutate---check-in-ci`); a repeated anchor gets `-1`, `-2`.
fn slug(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

struct Page {
    anchors: BTreeSet<String>,
    /// (line, destination) of every link and image.
    links: Vec<(usize, String)>,
}

fn read_page(path: &Path) -> Page {
    let text = std::fs::read_to_string(path).unwrap();
    let line_of = |offset: usize| text[..offset].lines().count().max(1);
    let mut anchors = BTreeSet::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut links = Vec::new();
    let mut heading: Option<String> = None;
    let parser = Parser::new_ext(&text, Options::ENABLE_TABLES).into_offset_iter();
    for (event, range) in parser {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let base = slug(&heading.take().unwrap());
                let n = seen.entry(base.clone()).or_insert(0);
                anchors.insert(if *n == 0 {
                    base.clone()
                } else {
                    format!("{base}-{n}")
                });
                *n += 1;
            }
            Event::Start(Tag::Link { dest_url, .. })
            | Event::Start(Tag::Image { dest_url, .. }) => {
                links.push((line_of(range.start), dest_url.to_string()));
            }
            _ => {}
        }
    }
    Page { anchors, links }
}

/// A path with `.` and `..` taken out, so two spellings of one file compare equal.
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Each broken link as "FILE:LINE: DESTINATION: why".
fn broken_links(files: &[PathBuf]) -> Vec<String> {
    let pages: BTreeMap<PathBuf, Page> = files.iter().map(|f| (normal(f), read_page(f))).collect();
    let mut broken = Vec::new();
    for (file, page) in &pages {
        let shown = file.strip_prefix(root()).unwrap_or(file).display();
        for (line, dest) in &page.links {
            if dest.contains("://") || dest.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = dest.split_once('#').unwrap_or((dest, ""));
            let target = if path.is_empty() {
                file.clone()
            } else {
                normal(&file.parent().unwrap().join(path))
            };
            if !target.starts_with(root()) {
                broken.push(format!("{shown}:{line}: {dest}: outside the repository"));
            } else if !target.exists() {
                broken.push(format!("{shown}:{line}: {dest}: no such file"));
            } else if !anchor.is_empty() {
                match pages.get(&target) {
                    Some(p) if p.anchors.contains(anchor) => {}
                    Some(_) => broken.push(format!("{shown}:{line}: {dest}: no such heading")),
                    None => broken.push(format!(
                        "{shown}:{line}: {dest}: an anchor into a file that is no Markdown"
                    )),
                }
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let files = markdown_files();
    for must in [
        "README.md",
        "docs/configuration.md",
        "docs/benchmarks/scale.md",
    ] {
        assert!(files.contains(&root().join(must)), "{must} is read");
    }
    let broken = broken_links(&files);
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The checker itself: each kind of broken link is caught, and good ones pass.
#[test]
fn the_link_check_catches_each_kind_of_broken_link() {
    // Under target/: inside the repository, as the checker requires of a link's target.
    let target = root().join("target");
    std::fs::create_dir_all(&target).unwrap();
    let dir = tempfile::tempdir_in(&target).unwrap();
    let dir = dir.path();
    let page = dir.join("page.md");
    let cases = [
        ("a file that exists", "[ok](other.md)", true),
        (
            "an anchor on the same page",
            "# A `code` title\n[ok](#a-code-title)",
            true,
        ),
        (
            "a repeated heading's anchor",
            "# Twice\n# Twice\n[ok](#twice-1)",
            true,
        ),
        (
            "a heading with punctuation",
            "# Using `mutate --check` in CI\n[ok](#using-mutate---check-in-ci)",
            true,
        ),
        ("a heading in another file", "[ok](other.md#there)", true),
        ("a missing file", "[bad](missing.md)", false),
        ("a missing anchor", "[bad](other.md#nowhere)", false),
        ("a missing anchor on the page", "[bad](#nowhere)", false),
        (
            "a link in a table",
            "| a |\n|---|\n| [bad](gone.md) |",
            false,
        ),
        (
            "an external link is not followed",
            "[ok](https://example.com/x.md#y)",
            true,
        ),
    ];
    std::fs::write(dir.join("other.md"), "# There\n").unwrap();
    for (name, text, good) in cases {
        std::fs::write(&page, text).unwrap();
        let broken = broken_links(&[page.clone(), dir.join("other.md")]);
        assert_eq!(broken.is_empty(), good, "{name}: {broken:?}");
    }
}

/// One `$ probegate ...` line of a `console` block and what follows it.
#[derive(Debug, Default)]
struct Step {
    args: Vec<String>,
    stderr: Vec<String>,
    exit: Option<i32>,
}

/// The `console` blocks of the README as steps. A `$ probegate ARGS > /dev/null` line is a
/// command; the lines after it are its stderr, a line ending in `…` standing for any line
/// it starts; `$ echo $?` (or `; echo $?` on the command's line) gives its exit code on the
/// next line. Other `$` lines (building it) are the reader's, not the test's.
fn tour_steps(readme: &str) -> Vec<Step> {
    let mut blocks = Vec::new();
    let mut inside: Option<String> = None;
    for event in Parser::new(readme) {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) if &*info == "console" => {
                inside = Some(String::new());
            }
            Event::Text(t) => {
                if let Some(b) = inside.as_mut() {
                    b.push_str(&t);
                }
            }
            Event::End(TagEnd::CodeBlock) => blocks.extend(inside.take()),
            _ => {}
        }
    }
    let mut steps: Vec<Step> = Vec::new();
    let mut want_exit = false;
    for line in blocks.iter().flat_map(|b| b.lines()) {
        if want_exit {
            steps.last_mut().unwrap().exit = Some(line.trim().parse().unwrap());
            want_exit = false;
        } else if line == "$ echo $?" {
            want_exit = true;
        } else if let Some(command) = line.strip_prefix("$ probegate ") {
            let (command, echo) = match command.strip_suffix("; echo $?") {
                Some(c) => (c, true),
                None => (command, false),
            };
            let args = command
                .split_whitespace()
                .take_while(|w| !w.starts_with('>') && *w != "2>&1")
                .map(String::from)
                .collect();
            steps.push(Step {
                args,
                ..Step::default()
            });
            want_exit = echo;
        } else if line.starts_with("$ ") {
            continue;
        } else if let Some(step) = steps.last_mut() {
            step.stderr.push(line.to_string());
        }
    }
    steps
}

#[test]
fn the_readmes_tour_prints_what_the_readme_says() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let steps = tour_steps(&readme);
    assert!(
        steps.len() >= 3 && steps.iter().all(|s| s.exit.is_some()),
        "the README's tour: each command with its exit code: {steps:?}"
    );
    assert!(
        steps
            .iter()
            .any(|s| s.stderr.iter().any(|l| l.starts_with("Warning: ")))
            && steps
                .iter()
                .any(|s| s.stderr.iter().any(|l| l.starts_with("Denied: "))),
        "the tour shows a warning and a refusal: {steps:?}"
    );
    for step in &steps {
        let out = Command::new(env!("CARGO_BIN_EXE_probegate"))
            .current_dir(root())
            .args(&step.args)
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        let shown = step.args.join(" ");
        assert_eq!(
            out.status.code(),
            step.exit,
            "probegate {shown}: exit code\n{stderr}"
        );
        if step.exit == Some(0) || !step.stderr.is_empty() {
            let printed: Vec<&str> = stderr.lines().collect();
            assert_eq!(
                printed.len(),
                step.stderr.len(),
                "probegate {shown}: the README shows every line it prints:\n{stderr}"
            );
            for (said, printed) in step.stderr.iter().zip(&printed) {
                let matches = match said.strip_suffix('…') {
                    Some(start) => printed.starts_with(start.trim_end()),
                    None => printed == said,
                };
                assert!(
                    matches,
                    "probegate {shown}:\nREADME: {said}\nprints: {printed}"
                );
            }
        }
    }
}

#[test]
fn tour_steps_read_commands_output_and_exit_codes() {
    let readme = "text\n\n```console\n$ cargo build\n$ probegate mutate -f x/ > /dev/null\nWarning: a …\n$ echo $?\n0\n$ probegate mutate -f x/ --check > /dev/null 2>&1; echo $?\n1\n```\n\n```sh\n$ probegate not-a-tour\n```\n";
    let steps = tour_steps(readme);
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(steps[0].args, ["mutate", "-f", "x/"]);
    assert_eq!(steps[0].stderr, ["Warning: a …"]);
    assert_eq!(steps[0].exit, Some(0));
    assert_eq!(steps[1].args, ["mutate", "-f", "x/", "--check"]);
    assert!(steps[1].stderr.is_empty());
    assert_eq!(steps[1].exit, Some(1));
}

#[test]
fn no_page_is_longer_than_a_reader_reads_at_once() {
    // About 400 lines: beyond that a page holds more than one concern.
    let long: Vec<String> = markdown_files()
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            let shown = f.strip_prefix(root()).unwrap().display().to_string();
            (lines > 400).then(|| format!("{shown}: {lines} lines"))
        })
        .collect();
    assert!(long.is_empty(), "{long:?}");
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.lines().count() <= 200,
        "README.md is the front door: at most about 200 lines"
    );
}
