//! The credential type lives in the actors crate (the model's trunks hold one); this
//! keeps `crate::secret::Secret` working for the rest of tsps.

pub use tsps_actors::secret::*;
