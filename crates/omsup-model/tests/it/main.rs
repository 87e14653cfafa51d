//! Integration tests of the plan model: the checked-in example plans and the generated schema.

mod examples;
mod repo_rules;
