// etcd built from go.etcd.io/etcd/server/v3 at the version Kubernetes pins. A plain
// `go install go.etcd.io/etcd/v3` fails on etcd's own replace directives; calling
// etcdmain.Main from a tiny module of our own avoids them.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
