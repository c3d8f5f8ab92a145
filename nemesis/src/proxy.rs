//! Frame-aware TCP proxies.
