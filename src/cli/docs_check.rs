//! The documentation names only what exists: every relative link (file, and `#anchor`
//! with GitHub's heading slugs) in README.md, CONTRIBUTING.md, CHANGELOG.md and
//! docs/*.md resolves, and every `--flag` written as code in them is a flag of this
//! binary or of another tool the docs run. A renamed flag or a moved heading then fails
//! a test instead of misleading a reader.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

use clap::CommandFactory;

use super::args::Cli;

/// Flags of the other programs the docs show, by program. A flag is checked against
/// the provider's own first, so only what the provider does not have must be here.
const OTHER_TOOLS: &[(&str, &[&str])] = &[
    (
        "cargo",
        &[
            "all-targets",
            "check",
            "lib",
            "locked",
            "manifest-path",
            "no-run",
            "nocapture",
            "profile",
            "release",
            "test",
            "test-threads",
            "tests",
            "workspace",
        ],
    ),
    // The AWS CLI, for an SSO profile's credentials (docs/aws.md).
    ("aws configure export-credentials", &["format", "profile"]),
    ("git", &["branch"]),
    ("helm", &["set"]),
    ("docker buildx", &["platform", "push"]),
    (
        "kube-apiserver",
        &[
            "authorization-mode",
            "service-account-issuer",
            "watch-cache",
        ],
    ),
    (
        "the CSI driver",
        &[
            "enable-secret-rotation",
            "endpoint",
            "nodeid",
            "providers-dir",
            "rotation-poll-interval",
        ],
    ),
    (
        "the sync controller",
        &[
            "leader-elect",
            "rotation-poll-interval",
            "token-request-audience",
        ],
    ),
    (
        "scripts/e2e-cluster, the real node",
        &["keep", "provider-bin"],
    ),
    (
        "storm, the benchmark (bench/)",
        &[
            "intervals",
            "latency-ms",
            "mounts",
            "peer",
            "peer-bin",
            "peer-source",
            "peer-throughput-mounts",
            "provider-bin",
            "rotation-intervals",
            "rotation-pods",
            "rounds",
            "scenario",
            "spread-interval-ms",
            "throughput-mounts",
        ],
    ),
];

/// The documentation files this check reads, relative to the crate's root.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["README.md", "CONTRIBUTING.md", "CHANGELOG.md"]
        .iter()
        .map(PathBuf::from)
        .collect();
    let mut pages: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("docs/ is readable")
        .map(|entry| entry.expect("docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .map(|path| PathBuf::from("docs").join(path.file_name().expect("a file name")))
        .collect();
    pages.sort();
    files.extend(pages);
    files
}

/// What this check reads in one Markdown file.
#[derive(Debug, Default)]
struct Parsed {
    /// Code (fenced blocks and inline spans) with the line it starts on.
    code: Vec<(usize, String)>,
    /// Link targets in prose with their line.
    links: Vec<(usize, String)>,
    /// The anchors of its headings, as GitHub makes them.
    anchors: BTreeSet<String>,
}

fn parse(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let mut slugs_seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut block: Vec<(usize, &str)> = Vec::new();
    let mut in_fence = false;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim_start().starts_with("```") {
            read_block(&mut block, &mut parsed);
            in_fence = !in_fence;
        } else if in_fence {
            parsed.code.push((number, line.to_string()));
        } else if line.trim().is_empty() {
            read_block(&mut block, &mut parsed);
        } else if is_heading(line) {
            // A heading is a block of its own.
            read_block(&mut block, &mut parsed);
            let slug = slug(line.trim_start_matches('#'));
            let seen = slugs_seen.entry(slug.clone()).or_insert(0);
            parsed.anchors.insert(match *seen {
                0 => slug,
                n => format!("{slug}-{n}"),
            });
            *seen += 1;
            block.push((number, line));
            read_block(&mut block, &mut parsed);
        } else {
            block.push((number, line));
        }
    }
    read_block(&mut block, &mut parsed);
    parsed
}

/// An ATX heading: one to six `#` and a space (`#659` in prose is no heading).
fn is_heading(line: &str) -> bool {
    let level = line.len() - line.trim_start_matches('#').len();
    (1..=6).contains(&level) && line[level..].starts_with(' ')
}

/// Splits one block (a paragraph, list or table; inline code never crosses blocks)
/// into code spans and prose, and collects the prose's links.
fn read_block(block: &mut Vec<(usize, &str)>, parsed: &mut Parsed) {
    let Some(&(first_line, _)) = block.first() else {
        return;
    };
    let text = block
        .iter()
        .map(|(_, line)| *line)
        .collect::<Vec<_>>()
        .join("\n");
    block.clear();
    let mut pieces: Vec<&str> = text.split('`').collect();
    // An unmatched backtick is a literal one: what follows it is prose.
    if pieces.len().is_multiple_of(2) {
        let last = pieces.pop().unwrap_or_default();
        let before = pieces.pop().unwrap_or_default();
        parsed.links.extend(links(first_line, before));
        parsed.links.extend(links(first_line, last));
    }
    let mut line = first_line;
    for (index, piece) in pieces.iter().enumerate() {
        if index % 2 == 1 {
            parsed.code.push((line, piece.to_string()));
        } else {
            parsed.links.extend(links(line, piece));
        }
        line += piece.matches('\n').count();
    }
}

/// The targets of `[text](target)` links in prose, with their line.
fn links(first_line: usize, prose: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut rest = prose;
    let mut line = first_line;
    while let Some(start) = rest.find("](") {
        line += rest[..start].matches('\n').count();
        let after = &rest[start + 2..];
        let end = after.find(')').unwrap_or(after.len());
        let target = after[..end].split_whitespace().next().unwrap_or_default();
        found.push((line, target.to_string()));
        rest = &after[end..];
    }
    found
}

/// GitHub's anchor of a heading: lower case, without punctuation, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .trim_end_matches('#')
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every `--flag` in a piece of code: two dashes at the start of a word, then a
/// lower-case letter (a lone `--`, as in `cargo run -- mount`, is no flag).
fn flags_in(code: &str) -> Vec<String> {
    let bytes = code.as_bytes();
    let mut flags = Vec::new();
    let mut at = 0;
    while let Some(found) = code[at..].find("--") {
        let start = at + found;
        let word_start =
            start == 0 || matches!(bytes[start - 1], b' ' | b'\n' | b'\t' | b'(' | b'[' | b'"');
        let name: String = code[start + 2..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            .collect();
        if word_start && name.starts_with(|c: char| c.is_ascii_lowercase()) {
            flags.push(name.trim_end_matches('-').to_string());
        }
        at = start + 2 + name.len();
    }
    flags
}

/// The long flags of the binary and of every subcommand.
fn provider_flags() -> BTreeSet<String> {
    fn collect(command: &clap::Command, flags: &mut BTreeSet<String>) {
        flags.extend(
            command
                .get_arguments()
                .filter_map(|arg| arg.get_long())
                .map(str::to_string),
        );
        for sub in command.get_subcommands() {
            collect(sub, flags);
        }
    }
    let mut flags = BTreeSet::from(["help".to_string(), "version".to_string()]);
    collect(&Cli::command(), &mut flags);
    flags
}

/// `base/target` with `.` and `..` resolved, without touching the file system.
fn join(base: &Path, target: &str) -> PathBuf {
    let mut path = PathBuf::new();
    for component in base.join(target).components() {
        match component {
            Component::ParentDir => {
                path.pop();
            }
            Component::CurDir => {}
            other => path.push(other),
        }
    }
    path
}

/// Every broken link and unknown flag of the given documents (paths relative to
/// `root`, texts as given), one line each.
fn problems(root: &Path, documents: &[(PathBuf, String)]) -> Vec<String> {
    let parsed: BTreeMap<&Path, Parsed> = documents
        .iter()
        .map(|(path, text)| (path.as_path(), parse(text)))
        .collect();
    let ours = provider_flags();
    let others: BTreeSet<&str> = OTHER_TOOLS
        .iter()
        .flat_map(|(_, flags)| flags.iter().copied())
        .collect();
    let mut anchors_on_disk: BTreeMap<PathBuf, Option<BTreeSet<String>>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (path, doc) in &parsed {
        let here = path.display();
        for (line, target) in &doc.links {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target.as_str(), None),
            };
            let linked = if file.is_empty() {
                path.to_path_buf()
            } else {
                join(path.parent().unwrap_or(Path::new("")), file)
            };
            if !parsed.contains_key(linked.as_path()) && !root.join(&linked).exists() {
                problems.push(format!("{here}:{line}: link to a missing file: {target}"));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            let anchors = match parsed.get(linked.as_path()) {
                Some(doc) => Some(&doc.anchors),
                None => anchors_on_disk
                    .entry(linked.clone())
                    .or_insert_with(|| {
                        let markdown = linked.extension().is_some_and(|e| e == "md");
                        markdown.then(|| {
                            parse(&fs::read_to_string(root.join(&linked)).unwrap_or_default())
                                .anchors
                        })
                    })
                    .as_ref(),
            };
            match anchors {
                Some(anchors) if anchors.contains(anchor) => {}
                Some(_) => problems.push(format!(
                    "{here}:{line}: link to a missing heading: {target}"
                )),
                None => problems.push(format!(
                    "{here}:{line}: an anchor in a file that is not Markdown: {target}"
                )),
            }
        }
        for (line, code) in &doc.code {
            for flag in flags_in(code) {
                if !ours.contains(&flag) && !others.contains(flag.as_str()) {
                    problems.push(format!(
                        "{here}:{line}: `--{flag}` is no flag of the provider (nor of a tool in OTHER_TOOLS)"
                    ));
                }
            }
        }
    }
    problems
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_link_and_flag_in_the_docs_exists() {
    let root = root();
    let documents: Vec<(PathBuf, String)> = documents(&root)
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(root.join(&path))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, text)
        })
        .collect();
    let problems = problems(&root, &documents);
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn a_broken_link_a_missing_heading_and_an_unknown_flag_are_caught() {
    let doc = "# Title\n\n## A `code` heading: here\n\n\
        [ok](#a-code-heading-here), [self](page.md#title), [gone](missing.md),\n\
        [no heading](#nowhere), [web](https://example.com/x#y).\n\n\
        Run `cargo run -- mount --class c.yaml --no-such-flag` or\n\
        ```sh\nhelm install x --set a=b --made-up\n```\n";
    let problems = problems(&root(), &[(PathBuf::from("page.md"), doc.to_string())]);
    assert_eq!(
        problems,
        [
            "page.md:5: link to a missing file: missing.md",
            "page.md:6: link to a missing heading: #nowhere",
            "page.md:8: `--no-such-flag` is no flag of the provider (nor of a tool in OTHER_TOOLS)",
            "page.md:10: `--made-up` is no flag of the provider (nor of a tool in OTHER_TOOLS)",
        ],
        "{problems:#?}"
    );
}

#[test]
fn slugs_are_githubs() {
    assert_eq!(
        slug(" Load: N providers on one API server, and 5,000 nodes on paper"),
        "load-n-providers-on-one-api-server-and-5000-nodes-on-paper"
    );
    assert_eq!(
        slug(" Clusters outside EKS: credentials from the volume's secret"),
        "clusters-outside-eks-credentials-from-the-volumes-secret"
    );
    assert_eq!(slug(" (e) a + b "), "e-a--b");
}
