"""The analyzer: takes FileEvents off the bus, chooses an engine per file (``engines``), publishes results."""
