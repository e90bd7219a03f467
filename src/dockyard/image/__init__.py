"""Reading images: their metadata (`metadata`: inspect, history, layers, base) and their export
(`export`: one streaming pass over `docker save`'s bytes)."""
