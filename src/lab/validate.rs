//! Lab file -> [`Plan`](super::Plan), collecting every problem with its location.
