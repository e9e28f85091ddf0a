//! Fuzz target `available_dictionary`: see [`edgeship_fuzz::available_dictionary`] for
//! what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeship_fuzz::available_dictionary(data));
