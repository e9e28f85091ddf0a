//! Fuzz target `pattern`: see [`edgeship_fuzz::pattern`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeship_fuzz::pattern(data));
