"""The autoscaling policy the operator and local mode share: decide() over an Observation (policy,
wait), the Observation read from the queue statistics (observe), and learned pod start times (startup)."""
