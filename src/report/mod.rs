//! What people read: pictures of labs, and (later) run reports. Functions return text; only the
//! CLI prints.

pub mod topology;
