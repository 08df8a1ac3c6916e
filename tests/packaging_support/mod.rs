//! Shared by the packaging tests: a stand-in for the GitHub Actions runner (composite actions)
//! and the release archive the action installs.
#![allow(dead_code)]

pub mod github;
