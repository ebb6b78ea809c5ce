"""The QueueWorker API: the field table the CRD is generated from (fields, podfields, rules, schema),
the spec model that reads manifests by it (spec, walk, values, checks, pod), manifests read the way
kubectl reads them (manifests, kubeyaml), and the routes document producers read (routes)."""
