"""The database edge: schema, reading observed state, writing changes."""
