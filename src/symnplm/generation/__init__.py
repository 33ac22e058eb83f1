"""Event generation: Pythia 8 e-mu samples, a parametric detector, NanoAOD-schema output."""
