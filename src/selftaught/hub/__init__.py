"""What a run publishes: model cards, the dataset and lm-eval export, pushes to the Hugging Face Hub."""
