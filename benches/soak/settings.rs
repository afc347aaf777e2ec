//! What the run is set to: the options from the command line, and the fixed settings the
//! phases and the report share.

use std::path::PathBuf;
use std::time::Duration;

pub const SHUTDOWN_DELAY_SECONDS: u64 = 2;
pub const GRACE_SECONDS: u64 = 5;
pub const NAMESPACE: &str = "soak";
pub const TOGGLE_NAMESPACE: &str = "soak-toggle";
/// The namespace setting the outages change, alternating.
pub const TOGGLE_KEY: &str = "probegate.io/period-seconds";
pub const TOGGLE_VALUES: [&str; 2] = ["15", "25"];

pub struct Options {
    pub duration: Duration,
    pub rate: u32,
    pub held: usize,
    pub outages: usize,
    pub max_rss_mib: u64,
}

pub fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| -> Option<u64> {
        let i = args.iter().position(|a| a == name)?;
        Some(
            args.get(i + 1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} takes a number")),
        )
    };
    let short = args.iter().any(|a| a == "--short");
    Options {
        duration: Duration::from_secs(value("--seconds").unwrap_or(if short { 20 } else { 120 })),
        rate: value("--rate").unwrap_or(500) as u32,
        held: value("--held").unwrap_or(if short { 200 } else { 1000 }) as usize,
        outages: value("--outages").unwrap_or(if short { 1 } else { 2 }) as usize,
        max_rss_mib: value("--max-rss-mib").unwrap_or(512),
    }
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
