"""One job top to bottom: settings, preparation, cells, the dry run and provenance."""
