//! Sockets (UDP, TCP) that feed bytes to [`crate::sip`] and send what it emits.
