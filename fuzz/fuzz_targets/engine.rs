//! Structure-aware: the bytes drive the workload generator of `tests/support/cases.rs`
//! (kinds, containers, ports, flags, probes, `probegate.io/` settings, Services), then the
//! engine and the admission layer are checked on the result.
#![no_main]

#[path = "../../tests/support/cases.rs"]
mod cases;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cases::check_fuzz_case(data);
});
