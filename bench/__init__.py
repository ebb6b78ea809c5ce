"""QueueWorker's benchmarks. `python -m bench` (`make bench`) runs every one; each prints ratios against a
baseline measured in the same run, and the last line is the autoscaling result for the burst trace."""
