"""The simulated GPU node: scenarios, their ground truth, and an NVML that answers for them."""
