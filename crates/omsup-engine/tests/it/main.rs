//! The engine on synthetic worlds: which steps a deployment gets, in which order.

mod container;
mod records;
mod steps;
mod synthetic;
