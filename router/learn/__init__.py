"""The cost model: encoding, the Flax ensemble, training, the model file, retraining, drift."""
