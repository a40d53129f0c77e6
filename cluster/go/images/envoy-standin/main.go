// envoy-standin takes Envoy's place in the local node's end-to-end tests, where no registry is
// reachable to pull Envoy from. It accepts Envoy's command line (including the course's
// "--config-path /etc/envoy/envoy.json" written as one argument), reads the configuration file
// the injected volume provides, logs what it read, serves TCP on the proxy port and answers
// GET /ready on the admin port with 200 only while the configuration file is present and not
// empty. An injected Pod is therefore Ready only when the sidecar really started with its
// volume mounted.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
)

func main() {
	// Envoy flags arrive as "--flag value", "--flag=value" or (the course's template) as one
	// argument "--flag value"; normalise to "--flag=value" before parsing.
	var args []string
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "--") && strings.Contains(a, " ") && !strings.Contains(a, "=") {
			a = strings.Replace(a, " ", "=", 1)
		}
		args = append(args, a)
	}
	fs := flag.NewFlagSet("envoy-standin", flag.ContinueOnError)
	configPath := fs.String("config-path", "/etc/envoy/envoy.yaml", "Envoy configuration file")
	listen := fs.String("listen", ":15001", "proxy (TCP) listen address")
	admin := fs.String("admin", ":15000", "admin listen address (/ready, /config)")
	// Envoy flags the stand-in accepts and ignores.
	for _, name := range []string{"concurrency", "log-level", "mode", "service-cluster", "service-node", "base-id", "drain-time-s", "parent-shutdown-time-s"} {
		fs.String(name, "", "accepted for Envoy compatibility; ignored")
	}
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}
	log.SetFlags(0)
	log.SetPrefix("envoy-standin: ")

	read := func() (string, int, error) {
		data, err := os.ReadFile(*configPath)
		if err != nil {
			return "", 0, err
		}
		if len(data) == 0 {
			return "", 0, fmt.Errorf("%s is empty", *configPath)
		}
		sum := sha256.Sum256(data)
		return hex.EncodeToString(sum[:8]), len(data), nil
	}
	if hash, size, err := read(); err != nil {
		log.Printf("configuration not readable: %v (not ready until it is)", err)
	} else {
		log.Printf("read configuration %s (%d bytes, sha256 %s)", *configPath, size, hash)
	}

	proxy, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("proxy listen %s: %v", *listen, err)
	}
	go func() {
		for {
			conn, err := proxy.Accept()
			if err != nil {
				return
			}
			_, _ = conn.Write([]byte("envoy-standin\n"))
			_ = conn.Close()
		}
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if hash, _, err := read(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		} else {
			fmt.Fprintf(w, "LIVE %s\n", hash)
		}
	})
	mux.HandleFunc("/config", func(w http.ResponseWriter, _ *http.Request) {
		data, err := os.ReadFile(*configPath)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		_, _ = w.Write(data)
	})
	log.Printf("proxy on %s, admin on %s", *listen, *admin)
	log.Fatal(http.ListenAndServe(*admin, mux))
}
