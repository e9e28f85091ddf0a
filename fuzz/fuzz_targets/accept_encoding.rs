//! Fuzz target `accept_encoding`: see [`edgeship_fuzz::accept_encoding`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeship_fuzz::accept_encoding(data));
