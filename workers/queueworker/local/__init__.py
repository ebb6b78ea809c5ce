"""Local mode: `qw up` runs QueueWorker manifests on one machine with a process backend in place of
Kubernetes (supervisor, embedded Redis, control loop, live view); `qw status` and `qw enqueue` talk to it."""
