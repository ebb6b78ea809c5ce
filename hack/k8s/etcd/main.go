// Command etcd is etcd's own server entry point, built at the version k8s.io/kubernetes v1.35.4 tests with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
