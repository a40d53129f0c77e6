// pause is the sandbox process of every Pod on the local node, as registry.k8s.io/pause is on a
// real one: it holds the Pod's namespaces, reaps orphaned children (it is PID 1 of the Pod when
// the process namespace is shared) and exits on SIGINT or SIGTERM. Built here because no
// registry is reachable from the test machine.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
