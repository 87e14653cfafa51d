//! oms-sim
fn main() {}
