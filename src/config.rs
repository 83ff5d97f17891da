//! The operator's config file (placeholder until the config issue lands).
