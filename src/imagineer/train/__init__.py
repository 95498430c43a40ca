"""Training of the embedded models (resumable, with progress and logs)."""
