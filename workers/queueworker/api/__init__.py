"""The QueueWorker API: the spec model and its checks (spec, checks, pod), manifests read the way
kubectl reads them (manifests, kubeyaml), and the routes document producers read (routes)."""
