"""The analyzer: the Python engine (``features``, ``decode``, ``engine``) and the bus worker."""
