// The umbrella re-exports every stage, so `import ModelZoo` is all a user needs.
@_exported import ZooFetch
@_exported import ZooImages
@_exported import ZooTraining
@_exported import ZooTransfer
