// The runtime is part of the public umbrella: `import ModelZoo` gives Classifier and Backbone.
@_exported import ZooRuntime
