"""The pure core: typed records in, grant facts and grant state out. Nothing here does I/O."""
