//! omsup-journal's integration tests: real SQLite files in temporary directories and real
//! databases in the test MariaDB (`cargo xtask services`) for the shared backend, real child
//! processes for durability and the lock.

mod durability;
mod lock;
mod migrate;
mod secrets;
mod shared_lock;
mod state_machine;
mod support;
