"""Physics layer: e-mu kinematics, collinear mass, variations, efficiency weights (awkward + vector, no coffea, no torch)."""
