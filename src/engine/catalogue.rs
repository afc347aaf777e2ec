//! The catalogue: what well-known software serves, kept as data (`catalogue/*.yaml`,
//! compiled in; docs/catalogue.md), and the table that finds a container's entry by its
//! image. Built once, at start-up or when a user's catalogue is (re)loaded; matching a
//! container is a hash lookup on its image's last path segment.

// Ordered maps: a few string comparisons per lookup cost less than hashing the key.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, LazyLock};

use super::object::Container;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;

use super::command_line::{self, Flag};
use super::protocols::Protocol;
use crate::policy::{Scheme, values};

mod image;
pub use image::{Image, Version};

/// The built-in entries, one file per family of software.
const BUILTIN: &[(&str, &str)] = &[
    (
        "catalogue/data.yaml",
        include_str!("../../catalogue/data.yaml"),
    ),
    (
        "catalogue/observability-network.yaml",
        include_str!("../../catalogue/observability-network.yaml"),
    ),
    (
        "catalogue/platform-apps.yaml",
        include_str!("../../catalogue/platform-apps.yaml"),
    ),
    (
        "catalogue/kubernetes-addons.yaml",
        include_str!("../../catalogue/kubernetes-addons.yaml"),
    ),
    (
        "catalogue/web-apps.yaml",
        include_str!("../../catalogue/web-apps.yaml"),
    ),
    (
        "catalogue/official-images.yaml",
        include_str!("../../catalogue/official-images.yaml"),
    ),
    (
        "catalogue/kubernetes-addons-2.yaml",
        include_str!("../../catalogue/kubernetes-addons-2.yaml"),
    ),
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CatalogueError {
    #[error("{file}: not valid YAML: {why}")]
    Yaml { file: String, why: String },
    #[error("{file}: expected one YAML document holding a list of entries")]
    NotAList { file: String },
    #[error("{file}: entry {entry}: {field}: {why}")]
    Entry {
        file: String,
        entry: String,
        field: String,
        why: String,
    },
    #[error(
        "{file}: entries {first:?} and {second:?} both match image {image:?} without a condition; give one a `when` or remove one"
    )]
    Tie {
        file: String,
        first: String,
        second: String,
        image: String,
    },
}

/// One piece of software: how to recognise it and what its maintainers probe.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    pub images: Vec<ImagePattern>,
    pub when: When,
    pub ports: Vec<PortSpec>,
    pub readiness: Check,
    pub liveness: Option<Check>,
    pub startup_seconds: Option<i32>,
    /// How long one check may take, where the software's check is slower than the default.
    pub timeout_seconds: Option<i32>,
    pub source: String,
    /// The file it came from, for `probegate catalogue` and errors.
    pub file: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ImagePattern {
    /// `bitnami/redis`: the repository path ends with these segments.
    Path(String),
    /// `registry.corp/payments/`: the reference, as written, starts with this.
    Under(String),
}

impl ImagePattern {
    fn matches(&self, image: &Image<'_>) -> bool {
        match self {
            ImagePattern::Path(segments) => image.ends_with(segments),
            ImagePattern::Under(prefix) => image.is_under(prefix),
        }
    }

    /// More segments is more specific: `registry.corp/team/app` over `registry.corp/team/*`.
    fn weight(&self) -> usize {
        match self {
            ImagePattern::Path(s) | ImagePattern::Under(s) => {
                s.split('/').filter(|segment| !segment.is_empty()).count()
            }
        }
    }

    pub fn text(&self) -> String {
        match self {
            ImagePattern::Path(s) => s.clone(),
            ImagePattern::Under(s) => format!("{s}*"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct When {
    pub tag: Option<(Op, Version, String)>,
    /// Normalised as `command_line::flags` names flags.
    pub flag: Option<String>,
    /// A variable's name, and the value it must have (`None`: any literal value).
    pub env: Option<(String, Option<String>)>,
    /// The program the container runs (the last path segment of the command's first word,
    /// or of the args' when there is no command): one image, several servers.
    pub command: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

impl When {
    fn is_empty(&self) -> bool {
        self.tag.is_none() && self.flag.is_none() && self.env.is_none() && self.command.is_none()
    }

    fn holds(&self, image: &Image<'_>, container: &ContainerFacts<'_>) -> bool {
        let tag = self.tag.as_ref().is_none_or(|(op, wanted, _)| {
            image.version().is_some_and(|v| match op {
                Op::Ge => v >= *wanted,
                Op::Gt => v > *wanted,
                Op::Le => v <= *wanted,
                Op::Lt => v < *wanted,
                Op::Eq => v == *wanted,
            })
        });
        let flag = self
            .flag
            .as_ref()
            .is_none_or(|wanted| container.flags.iter().any(|f| &f.name == wanted));
        let env = self.env.as_ref().is_none_or(|(name, value)| {
            command_line::env(container.container)
                .any(|(n, v)| n == name && value.as_ref().is_none_or(|want| want == v))
        });
        let command = self.command.as_ref().is_none_or(|wanted| {
            program(container.container).is_some_and(|program| program == wanted)
        });
        tag && flag && env && command
    }
}

/// The program a container runs, as `when.command` names it.
fn program<'c>(container: &'c Container<'_>) -> Option<&'c str> {
    let first = container
        .command
        .as_ref()
        .filter(|c| !c.is_empty())
        .or(container.args.as_ref())?
        .first()?;
    let word = first.split_whitespace().next()?;
    word.rsplit('/').next()
}

#[derive(Debug, Clone, PartialEq)]
pub struct PortSpec {
    pub port: i32,
    pub protocol: Protocol,
    /// Flags that move the port, normalised as `command_line::flags` names them.
    pub flags: Vec<String>,
}

/// A probe's handler, as the catalogue states it.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Http {
        port: IntOrString,
        path: String,
        scheme: Scheme,
    },
    Tcp {
        port: IntOrString,
    },
    Grpc {
        port: i32,
        service: Option<String>,
    },
    Exec {
        command: Vec<String>,
    },
}

impl Check {
    pub fn port(&self) -> Option<&IntOrString> {
        match self {
            Check::Http { port, .. } | Check::Tcp { port } => Some(port),
            Check::Grpc { .. } | Check::Exec { .. } => None,
        }
    }

    /// One line, for `probegate catalogue` and `--explain`.
    pub fn describe(&self) -> String {
        let port = |p: &IntOrString| match p {
            IntOrString::Int(n) => n.to_string(),
            IntOrString::String(s) => s.clone(),
        };
        match self {
            Check::Http {
                port: p,
                path,
                scheme,
            } => {
                format!("{} {}:{path}", scheme.as_str(), port(p))
            }
            Check::Tcp { port: p } => format!("tcp {}", port(p)),
            Check::Grpc { port, service } => match service {
                Some(s) => format!("grpc {port} {s}"),
                None => format!("grpc {port}"),
            },
            Check::Exec { command } => format!("exec {}", command.join(" ")),
        }
    }
}

/// What the catalogue reads of a container besides its image.
pub struct ContainerFacts<'a> {
    pub flags: &'a [Flag<'a>],
    /// For its literal variables, read only when an entry's condition names one.
    pub container: &'a Container<'a>,
}

/// The entries and the table that finds them.
#[derive(Debug, Default)]
pub struct Catalogue {
    entries: Vec<Entry>,
    /// Entry indexes by the last segment of each `Path` pattern (lower case).
    by_last_segment: Vec<(Box<str>, Vec<usize>)>,
    /// Entries with an `Under` pattern, checked for every image.
    under: Vec<usize>,
    /// Publishers of the entries' images (`bitnami`, `prometheus`, `fluxcd`): the path
    /// segment before the last.
    publishers: Vec<Box<str>>,
    /// The variables the entries' `when.env` name, sorted, and a filter over them: the webhook
    /// asks about every variable of every container, and nearly all fail the filter.
    variables: Vec<Box<str>>,
    variable_filter: u128,
}

/// Registries that hold only the Kubernetes project's own images
/// (<https://kubernetes.io/blog/2022/11/28/registry-k8s-io-faster-cheaper-ga/>).
const PROJECT_REGISTRIES: [&str; 2] = ["registry.k8s.io", "k8s.gcr.io"];

static BUILTIN_CATALOGUE: LazyLock<Arc<Catalogue>> = LazyLock::new(|| {
    let mut entries = Vec::new();
    for (file, text) in BUILTIN {
        // `cargo test` holds every built-in file valid (`every_builtin_file_validates`); the
        // engine does no I/O, so it has nowhere to say more.
        if let Ok(parsed) = parse(file, text) {
            entries.extend(parsed);
        }
    }
    Arc::new(Catalogue::from_entries(entries).unwrap_or_default())
});

impl Catalogue {
    /// The entries compiled into probegate.
    pub fn builtin() -> &'static Catalogue {
        &BUILTIN_CATALOGUE
    }

    /// The built-in catalogue, to hold beside catalogues loaded later.
    pub fn builtin_shared() -> Arc<Catalogue> {
        Arc::clone(&BUILTIN_CATALOGUE)
    }

    /// The built-in entries with a user's file over them: an entry of a built-in's name
    /// replaces it, others are added.
    pub fn with_user_file(file: &str, text: &str) -> Result<Catalogue, CatalogueError> {
        let user = parse(file, text)?;
        // The webhook reads only the variables some rule names; a condition on another
        // could hold in `mutate` and never in the webhook.
        if let Some((entry, name)) = user.iter().find_map(|e| {
            let (name, _) = e.when.env.as_ref()?;
            (!super::reads_variable(name)).then_some((e, name))
        }) {
            return Err(CatalogueError::Entry {
                file: file.to_owned(),
                entry: format!("{:?}", entry.name),
                field: "when.env".to_owned(),
                why: format!(
                    "{name} is not a variable the webhook reads (built-in entries' conditions, metrics switches and framework settings are); use when.flag or when.tag"
                ),
            });
        }
        let mut entries: Vec<Entry> = Catalogue::builtin()
            .entries
            .iter()
            .filter(|e| !user.iter().any(|u| u.name == e.name))
            .cloned()
            .collect();
        // The user's entries first: between equal matches, the earlier entry wins.
        entries.splice(0..0, user);
        Catalogue::from_entries(entries)
    }

    pub fn from_entries(entries: Vec<Entry>) -> Result<Catalogue, CatalogueError> {
        let mut catalogue = Catalogue::default();
        let mut by_last_segment: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut publishers: BTreeSet<String> = BTreeSet::new();
        for (index, entry) in entries.iter().enumerate() {
            if let Some((name, _)) = &entry.when.env {
                catalogue.variables.push(name.as_str().into());
                catalogue.variable_filter |= filter_bit(name);
            }
            for pattern in &entry.images {
                match pattern {
                    ImagePattern::Path(segments) => {
                        if let Some((before, _)) = segments.rsplit_once('/') {
                            let publisher = before.rsplit('/').next().unwrap_or(before);
                            publishers.insert(publisher.to_ascii_lowercase());
                        }
                        let last = segments.rsplit('/').next().unwrap_or(segments);
                        let slot = by_last_segment
                            .entry(last.to_ascii_lowercase())
                            .or_default();
                        if !slot.contains(&index) {
                            slot.push(index);
                        }
                    }
                    ImagePattern::Under(_) => catalogue.under.push(index),
                }
            }
        }
        // Sorted tables, searched by halves: fewer comparisons than a tree's linear nodes.
        catalogue.by_last_segment = by_last_segment
            .into_iter()
            .map(|(k, v)| (k.into_boxed_str(), v))
            .collect();
        catalogue.publishers = publishers.into_iter().map(String::into_boxed_str).collect();
        catalogue.variables.sort();
        catalogue.variables.dedup();
        catalogue.entries = entries;
        catalogue.check_ties()?;
        Ok(catalogue)
    }

    /// Two entries of one file without `when` on the same pattern would make the answer
    /// depend on their order. (A user's entry comes before the built-in ones and wins.)
    fn check_ties(&self) -> Result<(), CatalogueError> {
        let mut seen: HashMap<(String, &str), &Entry> = HashMap::new();
        for entry in self.entries.iter().filter(|e| e.when.is_empty()) {
            for pattern in &entry.images {
                let key = (pattern.text().to_ascii_lowercase(), entry.file.as_str());
                if let Some(first) = seen.get(&key)
                    && first.name != entry.name
                {
                    return Err(CatalogueError::Tie {
                        file: entry.file.clone(),
                        first: first.name.clone(),
                        second: entry.name.clone(),
                        image: key.0,
                    });
                }
                seen.insert(key, entry);
            }
        }
        Ok(())
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Whose software `image` is, when the catalogue knows it is someone else's: the entry
    /// it matches but whose conditions the container does not meet (`elasticsearch:7.17`
    /// where the entry needs 8.0), or a publisher whose other software it knows
    /// (`bitnami/haproxy`, which has no entry of its own). A namespace's paths do not
    /// describe other people's endpoints.
    pub fn publisher_of<'s>(&'s self, image: &'s str) -> Option<&'s str> {
        let parsed = Image::parse(image);
        // Software the catalogue has an entry for, whose conditions this container does not
        // meet (an older version, a flag it lacks): still someone else's software.
        if let Some(entry) = self
            .entries_ending(parsed.last_segment())
            .into_iter()
            .flatten()
            .map(|&index| &self.entries[index])
            .find(|entry| entry.images.iter().any(|p| p.matches(&parsed)))
        {
            return Some(&entry.name);
        }
        let registry = parsed.name.len() > parsed.path.len();
        if registry {
            let host = &parsed.name[..parsed.name.len() - parsed.path.len() - 1];
            if PROJECT_REGISTRIES
                .iter()
                .any(|r| host.eq_ignore_ascii_case(r))
            {
                return Some(host);
            }
        }
        let (before, _) = parsed.path.rsplit_once('/')?;
        let publisher = before.rsplit('/').next().unwrap_or(before);
        sorted_contains(&self.publishers, &lower_case(publisher)).then_some(publisher)
    }

    /// The entry for a container running `image`: the most specific pattern that matches;
    /// between equals, one whose `when` holds over one without; then the earlier entry.
    /// Entries whose `when` does not hold are skipped.
    pub fn find(&self, image: &str, container: &ContainerFacts<'_>) -> Option<&Entry> {
        let image = Image::parse(image);
        let by_segment = self.entries_ending(image.last_segment());
        let candidates = by_segment.into_iter().flatten().chain(&self.under);
        let mut best: Option<(usize, bool, usize)> = None;
        for &index in candidates {
            let entry = &self.entries[index];
            let Some(weight) = entry
                .images
                .iter()
                .filter(|p| p.matches(&image))
                .map(ImagePattern::weight)
                .max()
            else {
                continue;
            };
            if !entry.when.holds(&image, container) {
                continue;
            }
            let rank = (weight, !entry.when.is_empty(), usize::MAX - index);
            if best.is_none_or(|b| rank > b) {
                best = Some(rank);
            }
        }
        best.map(|(_, _, inverted)| &self.entries[usize::MAX - inverted])
    }
}

impl Catalogue {
    /// The entries with a pattern whose last segment is `last`, in any case.
    fn entries_ending(&self, last: &str) -> Option<&Vec<usize>> {
        let last = lower_case(last);
        self.by_last_segment
            .binary_search_by(|(key, _)| (**key).cmp(&*last))
            .ok()
            .map(|at| &self.by_last_segment[at].1)
    }

    /// The entry for `image` alone, as `probegate catalogue --image` shows it: entries with
    /// a condition on flags or variables are passed over, since no container is given.
    pub fn find_image(&self, image: &str) -> Option<&Entry> {
        let container = Container::default();
        self.find(
            image,
            &ContainerFacts {
                flags: &[],
                container: &container,
            },
        )
    }
}

/// One entry in full, for `probegate catalogue --image`.
pub fn describe(entry: &Entry) -> String {
    let mut out = format!("name:       {}\n", entry.name);
    let images: Vec<String> = entry.images.iter().map(ImagePattern::text).collect();
    out += &format!("images:     {}\n", images.join(", "));
    let mut when = Vec::new();
    if let Some((_, _, text)) = &entry.when.tag {
        when.push(format!("tag {text}"));
    }
    if let Some(flag) = &entry.when.flag {
        when.push(format!("flag --{flag}"));
    }
    if let Some(command) = &entry.when.command {
        when.push(format!("command {command}"));
    }
    if let Some((name, value)) = &entry.when.env {
        when.push(match value {
            Some(value) => format!("env {name}={value}"),
            None => format!("env {name}"),
        });
    }
    if !when.is_empty() {
        out += &format!("when:       {}\n", when.join(", "));
    }
    for port in &entry.ports {
        let moved = if port.flags.is_empty() {
            String::new()
        } else {
            format!(" (moved by --{})", port.flags.join(", --"))
        };
        out += &format!("port:       {} {}{moved}\n", port.port, port.protocol);
    }
    out += &format!("readiness:  {}\n", entry.readiness.describe());
    if let Some(liveness) = &entry.liveness {
        out += &format!("liveness:   {}\n", liveness.describe());
    }
    if let Some(seconds) = entry.startup_seconds {
        out += &format!("startup:    {seconds}s\n");
    }
    if let Some(seconds) = entry.timeout_seconds {
        out += &format!("timeout:    {seconds}s\n");
    }
    out += &format!("source:     {}\nfile:       {}\n", entry.source, entry.file);
    out
}

/// Every entry, a line each, for `probegate catalogue`.
pub fn table(catalogue: &Catalogue) -> String {
    let rows: Vec<[String; 4]> = catalogue
        .entries
        .iter()
        .map(|e| {
            let images = match e.images.as_slice() {
                [first] => first.text(),
                [first, rest @ ..] => format!("{} (+{})", first.text(), rest.len()),
                [] => String::new(),
            };
            [
                e.name.clone(),
                images,
                e.readiness.describe(),
                e.liveness
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), Check::describe),
            ]
        })
        .collect();
    let header = ["NAME", "IMAGES", "READINESS", "LIVENESS"].map(str::to_owned);
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count()).min(40);
        }
    }
    // A long exec command would wrap every row: cut to the column, the whole entry is one
    // `--image` away.
    let cut = |cell: &str, width: usize| -> String {
        if cell.chars().count() <= width {
            format!("{cell:width$}")
        } else {
            let kept: String = cell.chars().take(width.saturating_sub(1)).collect();
            format!("{kept}…")
        }
    };
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| cut(cell, width))
            .collect();
        out += line.join("  ").trim_end();
        out.push('\n');
    }
    out += &format!("{} entries\n", catalogue.entries.len());
    out
}

/// Whether a built-in entry's `when.env` names `name`: the webhook's decode reads it then.
pub fn reads_variable(name: &str) -> bool {
    let catalogue = Catalogue::builtin();
    catalogue.variable_filter & filter_bit(name) != 0 && sorted_contains(&catalogue.variables, name)
}

/// Keys are kept in lower case, as most references are written; only others pay for a copy.
fn lower_case(text: &str) -> std::borrow::Cow<'_, str> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        text.to_ascii_lowercase().into()
    } else {
        text.into()
    }
}

fn sorted_contains(sorted: &[Box<str>], wanted: &str) -> bool {
    sorted.binary_search_by(|item| (**item).cmp(wanted)).is_ok()
}

/// One of 128 bits by a name's length and its first and last bytes: names that share all
/// three are rare among a pod's variables.
fn filter_bit(name: &str) -> u128 {
    let bytes = name.as_bytes();
    let (first, last) = match bytes {
        [] => (0, 0),
        [.., last] => (bytes[0], *last),
    };
    let mixed = (bytes.len() as u32)
        .wrapping_mul(31)
        .wrapping_add(u32::from(first).wrapping_mul(7))
        .wrapping_add(u32::from(last));
    1u128 << (mixed % 128)
}

// The schema as written: every field checked, unknown ones refused.

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawEntry {
    name: String,
    images: Vec<String>,
    #[serde(default)]
    when: Option<RawWhen>,
    #[serde(default)]
    ports: Vec<RawPort>,
    #[serde(default)]
    readiness: Option<RawCheck>,
    #[serde(default)]
    liveness: Option<RawCheck>,
    #[serde(default)]
    startup_seconds: Option<i64>,
    #[serde(default)]
    timeout_seconds: Option<i64>,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWhen {
    tag: Option<String>,
    flag: Option<String>,
    env: Option<String>,
    command: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    port: i64,
    protocol: String,
    #[serde(default)]
    flags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCheck {
    http_get: Option<RawHttp>,
    tcp_socket: Option<RawPortOnly>,
    grpc: Option<RawGrpc>,
    exec: Option<RawExec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    port: IntOrString,
    path: String,
    #[serde(default)]
    scheme: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPortOnly {
    port: IntOrString,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrpc {
    port: i64,
    #[serde(default)]
    service: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExec {
    command: Vec<String>,
}

/// An entry's name alone, to say which entry failed to decode.
#[derive(Deserialize)]
struct NameOnly {
    name: Option<String>,
}

/// Reads and checks one catalogue file.
pub fn parse(file: &str, text: &str) -> Result<Vec<Entry>, CatalogueError> {
    let documents = crate::yaml::load_all(text).map_err(|e| CatalogueError::Yaml {
        file: file.to_owned(),
        why: e.to_string(),
    })?;
    let items: Vec<serde_json::Value> = match documents.as_slice() {
        [list] => Vec::deserialize(list).map_err(|_| CatalogueError::NotAList {
            file: file.to_owned(),
        })?,
        _ => {
            return Err(CatalogueError::NotAList {
                file: file.to_owned(),
            });
        }
    };
    let mut entries: Vec<Entry> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let label = NameOnly::deserialize(item)
            .ok()
            .and_then(|n| n.name)
            .map_or_else(|| format!("{}", index + 1), |name| format!("{name:?}"));
        let fail = |field: &str, why: String| CatalogueError::Entry {
            file: file.to_owned(),
            entry: label.clone(),
            field: field.to_owned(),
            why,
        };
        // The path names the field, `readiness.httpGet.port`, where serde alone names none.
        let raw: RawEntry = serde_path_to_error::deserialize(item).map_err(|e| {
            let field = match e.path().to_string() {
                path if path == "." => "(entry)".to_owned(),
                path => path,
            };
            fail(&field, e.into_inner().to_string())
        })?;
        let entry = check_entry(file, raw).map_err(|(field, why)| fail(&field, why))?;
        if entries.iter().any(|e| e.name == entry.name) {
            return Err(fail(
                "name",
                "another entry of this file has this name".into(),
            ));
        }
        entries.push(entry);
    }
    Ok(entries)
}

type Invalid = (String, String);

fn invalid(field: &str, why: impl Into<String>) -> Invalid {
    (field.to_owned(), why.into())
}

fn check_entry(file: &str, raw: RawEntry) -> Result<Entry, Invalid> {
    let name_ok = !raw.name.is_empty()
        && raw.name.len() <= 63
        && raw
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !raw.name.starts_with('-')
        && !raw.name.ends_with('-');
    if !name_ok {
        return Err(invalid(
            "name",
            "must be 1-63 lower-case letters, digits and dashes, not starting or ending with a dash",
        ));
    }
    if raw.images.is_empty() {
        return Err(invalid("images", "at least one image is needed"));
    }
    let images = raw
        .images
        .iter()
        .map(|image| image_pattern(image))
        .collect::<Result<Vec<_>, _>>()?;
    if !raw.source.starts_with("https://") && !raw.source.starts_with("http://") {
        return Err(invalid(
            "source",
            "must be the address of the documentation or chart that states these facts",
        ));
    }
    let ports = raw
        .ports
        .into_iter()
        .enumerate()
        .map(|(i, p)| check_port(i, p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut liveness = raw
        .liveness
        .map(|l| check_handler("liveness", l, &ports))
        .transpose()?;
    // Software whose maintainers check only liveness: ready once that listener accepts. A
    // port check alone is one check: it is readiness, and a liveness probe would repeat it.
    let readiness = match (raw.readiness, liveness.take()) {
        (Some(readiness), given) => {
            liveness = given;
            check_handler("readiness", readiness, &ports)?
        }
        (None, Some(tcp @ Check::Tcp { .. })) => tcp,
        (None, Some(given)) => {
            let port = given.port().cloned().ok_or_else(|| {
                invalid(
                    "readiness",
                    "is needed when liveness has no port to check readiness on",
                )
            })?;
            liveness = Some(given);
            Check::Tcp { port }
        }
        (None, None) => return Err(invalid("readiness", "an entry needs readiness or liveness")),
    };
    if liveness.as_ref() == Some(&readiness) {
        return Err(invalid(
            "liveness",
            "is the same check as readiness: a liveness probe that repeats readiness restarts pods that are only busy; leave it out",
        ));
    }
    let startup_seconds = raw
        .startup_seconds
        .map(|s| {
            i32::try_from(s)
                .ok()
                .filter(|s| (1..=86_400).contains(s))
                .ok_or_else(|| invalid("startupSeconds", "must be 1 to 86400"))
        })
        .transpose()?;
    let timeout_seconds = raw
        .timeout_seconds
        .map(|s| {
            i32::try_from(s)
                .ok()
                .filter(|s| (1..=60).contains(s))
                .ok_or_else(|| invalid("timeoutSeconds", "must be 1 to 60"))
        })
        .transpose()?;
    Ok(Entry {
        name: raw.name,
        images,
        when: raw.when.map(check_when).transpose()?.unwrap_or_default(),
        ports,
        readiness,
        liveness,
        startup_seconds,
        timeout_seconds,
        source: raw.source,
        file: file.to_owned(),
    })
}

fn image_pattern(image: &str) -> Result<ImagePattern, Invalid> {
    let field = "images";
    if let Some(prefix) = image.strip_suffix('*') {
        if !prefix.ends_with('/') || prefix.len() < 2 {
            return Err(invalid(
                field,
                format!("{image:?}: a prefix pattern ends with /*, as registry.corp/team/*"),
            ));
        }
        return Ok(ImagePattern::Under(prefix.to_owned()));
    }
    let parsed = Image::parse(image);
    if parsed.tag.is_some() || image.contains('@') {
        return Err(invalid(
            field,
            format!(
                "{image:?}: name the repository without a tag or digest (use when.tag for versions)"
            ),
        ));
    }
    let ok = !image.is_empty()
        && image.split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    if !ok {
        return Err(invalid(
            field,
            format!("{image:?} is not an image repository"),
        ));
    }
    Ok(ImagePattern::Path(image.to_owned()))
}

fn check_port(index: usize, raw: RawPort) -> Result<PortSpec, Invalid> {
    let field = format!("ports[{index}]");
    let port = i32::try_from(raw.port)
        .ok()
        .filter(|p| (1..=65535).contains(p))
        .ok_or_else(|| invalid(&format!("{field}.port"), "must be 1 to 65535"))?;
    let protocol = Protocol::named(&raw.protocol).ok_or_else(|| {
        invalid(
            &format!("{field}.protocol"),
            format!(
                "{:?} is not a protocol probegate knows: http, https, h2c, grpc or one of {}",
                raw.protocol,
                super::protocols::WIRE.join(", ")
            ),
        )
    })?;
    let flags = raw
        .flags
        .iter()
        .map(|f| {
            flag_name(f)
                .ok_or_else(|| invalid(&format!("{field}.flags"), format!("{f:?} is not a flag")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PortSpec {
        port,
        protocol,
        flags,
    })
}

/// `--web.listen-address` as `command_line::flags` names it.
fn flag_name(written: &str) -> Option<String> {
    let body = written
        .strip_prefix("--")
        .or_else(|| written.strip_prefix('-'))?;
    (!body.is_empty() && !body.contains(['=', ' '])).then(|| command_line::normalize(body))
}

fn check_handler(field: &str, raw: RawCheck, ports: &[PortSpec]) -> Result<Check, Invalid> {
    let given = [
        raw.http_get.is_some(),
        raw.tcp_socket.is_some(),
        raw.grpc.is_some(),
        raw.exec.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(invalid(
            field,
            "needs exactly one of httpGet, tcpSocket, grpc and exec",
        ));
    }
    let port = |sub: &str, port: IntOrString| -> Result<IntOrString, Invalid> {
        let at = format!("{field}.{sub}.port");
        match &port {
            IntOrString::Int(n) if !(1..=65535).contains(n) => {
                Err(invalid(&at, "must be 1 to 65535"))
            }
            IntOrString::Int(n) if !ports.iter().any(|p| p.port == *n) => Err(invalid(
                &at,
                format!("{n} is not one of the entry's ports, so no flag could move it"),
            )),
            IntOrString::String(name) if !values::is_port_name(name) => {
                Err(invalid(&at, format!("{name:?} is not a port name")))
            }
            _ => Ok(port),
        }
    };
    if let Some(http) = raw.http_get {
        let path = values::parse_path(&http.path)
            .map_err(|why| invalid(&format!("{field}.httpGet.path"), why))?;
        let scheme = match http.scheme.as_deref() {
            None => Scheme::Http,
            Some(s) => values::parse_scheme(s)
                .map_err(|why| invalid(&format!("{field}.httpGet.scheme"), why))?,
        };
        let port = port("httpGet", http.port)?;
        // The entry's own ports say what they speak: no HTTP check on a database's port.
        if let Some(spec) = declared(ports, &port) {
            let fits = match scheme {
                Scheme::Http => matches!(spec.protocol, Protocol::Http | Protocol::H2c),
                Scheme::Https => spec.protocol == Protocol::Https,
            };
            if !fits {
                return Err(invalid(
                    &format!("{field}.httpGet"),
                    format!(
                        "an {} check on port {}, which speaks {}",
                        scheme.as_str(),
                        spec.port,
                        spec.protocol
                    ),
                ));
            }
        }
        return Ok(Check::Http { port, path, scheme });
    }
    if let Some(tcp) = raw.tcp_socket {
        return Ok(Check::Tcp {
            port: port("tcpSocket", tcp.port)?,
        });
    }
    if let Some(grpc) = raw.grpc {
        let number = port(
            "grpc",
            IntOrString::Int(i32::try_from(grpc.port).unwrap_or(0)),
        )?;
        let IntOrString::Int(number) = number else {
            return Err(invalid(&format!("{field}.grpc.port"), "must be a number"));
        };
        if let Some(spec) = declared(ports, &IntOrString::Int(number))
            && spec.protocol != Protocol::Grpc
        {
            return Err(invalid(
                &format!("{field}.grpc"),
                format!(
                    "a gRPC check on port {number}, which speaks {}",
                    spec.protocol
                ),
            ));
        }
        return Ok(Check::Grpc {
            port: number,
            service: grpc.service.filter(|s| !s.is_empty()),
        });
    }
    let command = raw.exec.map(|e| e.command).unwrap_or_default();
    if command
        .first()
        .is_none_or(|program| program.trim().is_empty())
    {
        return Err(invalid(
            &format!("{field}.exec.command"),
            "needs a program to run",
        ));
    }
    Ok(Check::Exec { command })
}

/// The entry's port a handler names by number.
fn declared<'p>(ports: &'p [PortSpec], port: &IntOrString) -> Option<&'p PortSpec> {
    match port {
        IntOrString::Int(n) => ports.iter().find(|p| p.port == *n),
        IntOrString::String(_) => None,
    }
}

fn check_when(raw: RawWhen) -> Result<When, Invalid> {
    let tag = raw
        .tag
        .map(|text| {
            let trimmed = text.trim();
            let (op, rest) = [
                (">=", Op::Ge),
                ("<=", Op::Le),
                (">", Op::Gt),
                ("<", Op::Lt),
                ("=", Op::Eq),
            ]
            .into_iter()
            .find_map(|(sign, op)| trimmed.strip_prefix(sign).map(|rest| (op, rest)))
            .ok_or_else(|| invalid("when.tag", "starts with >=, >, <=, < or ="))?;
            let version = Version::parse(rest.trim())
                .filter(|_| {
                    rest.trim()
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'v')
                })
                .ok_or_else(|| {
                    invalid(
                        "when.tag",
                        format!("{:?} is not a dotted version", rest.trim()),
                    )
                })?;
            Ok::<_, Invalid>((op, version, trimmed.to_owned()))
        })
        .transpose()?;
    let flag = raw
        .flag
        .map(|f| flag_name(&f).ok_or_else(|| invalid("when.flag", format!("{f:?} is not a flag"))))
        .transpose()?;
    let env = raw
        .env
        .map(|text| {
            let (name, value) = match text.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (text.clone(), None),
            };
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
            if ok {
                Ok((name, value))
            } else {
                Err(invalid(
                    "when.env",
                    format!("{text:?} is not NAME or NAME=VALUE"),
                ))
            }
        })
        .transpose()?;
    let command = raw
        .command
        .map(|c| {
            if c.is_empty() || c.contains(['/', ' ']) {
                Err(invalid(
                    "when.command",
                    format!("{c:?}: name the program alone, as argocd-server"),
                ))
            } else {
                Ok(c)
            }
        })
        .transpose()?;
    Ok(When {
        tag,
        flag,
        env,
        command,
    })
}

#[cfg(test)]
mod tests;
