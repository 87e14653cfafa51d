//! omsup-journal's integration tests: real SQLite files in temporary directories, real child
//! processes for durability and the lock.

mod durability;
mod lock;
mod secrets;
mod shared_lock;
mod state_machine;
mod support;
