"""The pure core: models, validation, planning and rendering. No database, network or terminal."""
