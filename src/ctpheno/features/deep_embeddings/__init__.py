"""3D CNN embeddings: self-supervised encoder, pretrained I3ResNet, user checkpoints."""
