//! The YAML loader and manifest reader that `probegate mutate` uses, then the offline run.
#![no_main]

#[path = "../../tests/support/cases.rs"]
mod cases;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cases::check_yaml(data);
});
