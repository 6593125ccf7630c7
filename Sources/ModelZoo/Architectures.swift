@_exported import ZooArchitectures
@_exported import ZooMapping
