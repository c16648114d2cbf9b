//! The Rampart control plane.
