"""Saved weights in (checkpoint readers, folder import) and runs out (TensorBoard, .npz)."""
