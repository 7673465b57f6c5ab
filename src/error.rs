//! How `lab` fails: every error carries the exit code its kind promises users.
