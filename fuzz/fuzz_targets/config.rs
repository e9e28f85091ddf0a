//! Fuzz target `config`: see [`edgeship_fuzz::config`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeship_fuzz::config(data));
