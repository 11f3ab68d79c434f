//! The command line: flags, the `mount` and `validate` subcommands.

pub mod args;
pub mod class_file;
pub mod validate;

#[cfg(test)]
mod docs_check;

pub use args::{normalize_go_flags, Cli, Command, Flags, MountArgs, ValidateArgs};
