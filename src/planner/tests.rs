//! Unit tests of the planner against the measured labs.
