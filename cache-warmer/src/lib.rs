//! Cache warming for `cache-core`: startup warmup, scheduled refresh, smart warming.
