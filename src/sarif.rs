//! `probegate mutate -o sarif`: its findings as SARIF 2.1.0, for code scanning (GitHub,
//! GitLab) to show on the lines of a pull request. One rule per kind of finding, with the
//! help docs/ci.md's "settle it with" table gives; each result at the file and line where
//! its object's document starts.

use serde_sarif::sarif::{
    ArtifactLocation, Location, Message, MultiformatMessageString, PhysicalLocation, Region,
    ReportingConfiguration, ReportingDescriptor, Result as SarifResult, ResultLevel, Run, Sarif,
    Tool, ToolComponent,
};

use crate::findings::{Check, Finding, Level};
use crate::manifest::Origin;

/// The schema the log names (SARIF 2.1.0's, as OASIS publishes it).
const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
const INFORMATION_URI: &str = "https://github.com/probegate/probegate";

/// The SARIF log of `findings`, from a run of probegate `version`.
pub fn render(findings: &[Finding], version: &str) -> Result<String, serde_json::Error> {
    let mut rules: Vec<ReportingDescriptor> = Vec::new();
    for check in Check::ALL {
        let (id, short, help, level) = check.describe();
        rules.push(
            ReportingDescriptor::builder()
                .id(id)
                .name(id)
                .short_description(MultiformatMessageString::builder().text(short).build())
                .help(MultiformatMessageString::builder().text(help).build())
                .default_configuration(
                    ReportingConfiguration::builder()
                        .level(serde_json::to_value(result_level(level))?)
                        .build(),
                )
                .build(),
        );
    }
    let results: Vec<SarifResult> = findings
        .iter()
        .map(|finding| {
            let (id, _, _, level) = finding.check.describe();
            let result = SarifResult::builder()
                .rule_id(id)
                .rule_index(finding.check.index() as i64)
                .level(result_level(level))
                .message(Message::builder().text(finding.text()).build());
            match location(&finding.origin) {
                Some(location) => result.locations(vec![location]).build(),
                None => result.build(),
            }
        })
        .collect();
    let driver = ToolComponent::builder()
        .name("probegate")
        .version(version)
        .information_uri(INFORMATION_URI)
        .rules(rules)
        .build();
    let log = Sarif::builder()
        .schema(SCHEMA)
        .version(serde_json::Value::from("2.1.0"))
        .runs(vec![
            Run::builder()
                .tool(Tool::builder().driver(driver).build())
                .results(results)
                .build(),
        ])
        .build();
    let mut out = serde_json::to_string_pretty(&log)?;
    out.push('\n');
    Ok(out)
}

fn result_level(level: Level) -> ResultLevel {
    match level {
        Level::Note => ResultLevel::Note,
        Level::Warning => ResultLevel::Warning,
        Level::Error => ResultLevel::Error,
    }
}

/// The file and line of a document; none for standard input, which has no file to name.
fn location(origin: &Origin) -> Option<Location> {
    if origin.source == "-" {
        return None;
    }
    let path = origin.source.replace('\\', "/");
    // A relative path is relative to where the scan ran, as code scanning expects; an
    // absolute one is a file URI.
    let uri = if path.starts_with('/') {
        format!("file://{}", path.replace(' ', "%20"))
    } else {
        path.replace(' ', "%20")
    };
    let physical = PhysicalLocation::builder()
        .artifact_location(ArtifactLocation::builder().uri(uri).build())
        .region(
            Region::builder()
                .start_line(i64::try_from(origin.line).unwrap_or(i64::MAX))
                .build(),
        )
        .build();
    Some(Location::builder().physical_location(physical).build())
}
