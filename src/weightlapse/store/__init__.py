"""The run store: Zarr layout, background writer, reader."""
