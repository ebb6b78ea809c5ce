"""QueueWorker's kopf operator. `kopf run -m queueworker_operator` imports this package, which
registers the handlers; builders, the policy and config import without side effects."""
