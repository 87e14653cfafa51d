//! libFuzzer entry point for [`omsup_fuzz::config_yaml`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| omsup_fuzz::config_yaml(data));
