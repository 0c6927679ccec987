"""OpenAI-compatible APIs as backends of the grid: fine-tuning jobs and sampling."""
