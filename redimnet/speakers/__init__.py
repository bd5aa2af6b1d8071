"""Speaker stores, the speaker index and bulk import."""
