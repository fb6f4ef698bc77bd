//! Remote write: the wire format of Prometheus Remote-Write 1.0 ([`wire`]),
//! shared by the receiver (`/api/v1/write`, in `api::write`) and the sender
//! ([`sender`]) that forwards appended samples to `remote_write` receivers.

pub mod sender;
pub mod wire;
