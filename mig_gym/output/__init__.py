"""Outputs: TensorBoard scalars and progress bars."""
