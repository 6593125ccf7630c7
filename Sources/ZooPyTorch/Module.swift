// ZooPyTorch: the PyTorch importer (torch.save zip and legacy formats, TorchScript). See docs/formats-pytorch.md.
