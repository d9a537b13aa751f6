"""Time and memory: training throughput, the GPU step, restarts and the study stacked,
prediction memory."""
