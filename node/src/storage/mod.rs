//! Durable storage: the write-ahead log of entries and the hard state (term, vote, commit).
