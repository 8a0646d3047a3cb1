"""Settings, errors, logging and shared types used by every layer."""
