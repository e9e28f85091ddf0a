//! Fuzz target `log_file`: see [`edgeship_fuzz::log_file`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeship_fuzz::log_file(data));
