"""Developer tools that run outside the test suite (the local Kubernetes clusters); not shipped."""
