//! libFuzzer entry point for [`omsup_fuzz::plan_file`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| omsup_fuzz::plan_file(data));
