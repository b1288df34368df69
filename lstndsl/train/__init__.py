"""The shared trainer. Its data layer is `lstndsl.train.data` (import that; this file imports
nothing, so `import lstndsl.train` stays free of torch)."""
