// node-cleanup stops and removes every pod sandbox of the local node's containerd through the
// CRI, exactly as the kubelet would: containerd then runs CNI DEL for each Pod (veth pair and
// host-local address released) and unmounts its network namespace. `npm run cluster:down` runs
// it before stopping containerd, so no Pod network is left behind on the machine.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel/trace/noop"
	remote "k8s.io/cri-client/pkg"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: node-cleanup unix:///path/to/containerd.sock")
		os.Exit(2)
	}
	svc, err := remote.NewRemoteRuntimeService(os.Args[1], 10*time.Second, noop.NewTracerProvider(), nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "node-cleanup: %v\n", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	pods, err := svc.ListPodSandbox(ctx, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "node-cleanup: listing pod sandboxes: %v\n", err)
		os.Exit(1)
	}
	failed := 0
	for _, p := range pods {
		name := p.GetMetadata().GetNamespace() + "/" + p.GetMetadata().GetName()
		if err := svc.StopPodSandbox(ctx, p.GetId()); err != nil {
			fmt.Fprintf(os.Stderr, "node-cleanup: stopping %s: %v\n", name, err)
			failed++
			continue
		}
		if err := svc.RemovePodSandbox(ctx, p.GetId()); err != nil {
			fmt.Fprintf(os.Stderr, "node-cleanup: removing %s: %v\n", name, err)
			failed++
		}
	}
	fmt.Printf("node-cleanup: %d pod sandboxes removed, %d failed\n", len(pods)-failed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
