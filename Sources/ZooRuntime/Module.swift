// ZooRuntime: runs an architecture from a native checkpoint (classifier, backbone).
