//! Fuzz target `archive`: see [`edgeship_fuzz::archive`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeship_fuzz::archive(data));
