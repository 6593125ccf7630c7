// ZooArchitectures: architecture definitions (config -> layer graph) and the zoo catalogue. See docs/models.md.
