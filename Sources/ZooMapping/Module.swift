// ZooMapping: source tensor names and layouts (torchvision, Keras) -> canonical names. See docs/models.md.
