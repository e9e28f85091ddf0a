//! Fuzz target `log_line`: see [`edgeship_fuzz::log_line`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeship_fuzz::log_line(data));
