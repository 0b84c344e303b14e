//! The Workflow controller (in progress): pure pieces only so far.

pub mod dag;
pub mod params;
