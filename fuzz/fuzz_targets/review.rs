//! Bytes in, answer out: the admission layer as the server calls it, with every invariant
//! of `tests/support/cases.rs` checked on what it answers.
#![no_main]

#[path = "../../tests/support/cases.rs"]
mod cases;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

static NO_ANNOTATIONS: BTreeMap<String, String> = BTreeMap::new();
static ADMISSION: LazyLock<probegate::admission::Admission> =
    LazyLock::new(|| cases::admission(&NO_ANNOTATIONS));

fuzz_target!(|data: &[u8]| {
    cases::check_review(&ADMISSION, &NO_ANNOTATIONS, data);
});
