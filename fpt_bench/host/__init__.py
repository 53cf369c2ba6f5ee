"""The plugin host: entry-point discovery, guarded loading, the registries the plugins fill."""
