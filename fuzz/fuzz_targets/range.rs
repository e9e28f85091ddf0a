//! Fuzz target `range`: see [`edgeship_fuzz::range`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeship_fuzz::range(data));
