// ZooImages: JPEG/PNG decoding and preprocessing.
