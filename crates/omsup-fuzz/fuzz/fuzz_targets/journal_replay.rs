//! libFuzzer entry point for [`omsup_fuzz::journal_replay`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| omsup_fuzz::journal_replay(data));
