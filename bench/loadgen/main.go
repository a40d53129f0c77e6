// loadgen: an open-loop HTTPS load generator for the webhook benchmark (bench/areas/webhook).
//
// It sends one POST every 1/rate seconds on a schedule fixed in advance and measures each
// request's latency from the time it was *meant* to be sent, not from when a connection became
// free, so a server that stalls is charged for every request queued behind the stall (no
// coordinated omission, as in wrk2 and HdrHistogram's load generators). Requests that find all
// connections busy wait for one, and that wait counts.
//
// The schedule is paced by a Linux timerfd read through Go's network poller: Go's own timers
// round sub-millisecond sleeps up to a millisecond, which would add more to every latency
// than the servers under test take to answer.
//
// Several targets (-target name=url, each with its own keep-alive connections) are measured in
// turns of -slice each, A B B A A B ..., until each has had -duration, and each target's samples
// are pooled: on a shared machine, whatever slows one slice slows the next one too, so the
// targets see the same conditions far more closely than in separate runs.
//
// Standard library only; the benchmark builds it with the local Go toolchain and caches the
// binary by source hash. Output: one JSON object on stdout.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

type timespec struct{ Sec, Nsec int64 }
type itimerspec struct{ Interval, Value timespec }

// ticker delivers the number of timer periods elapsed since the last read.
type ticker struct{ f *os.File }

func newTicker(period time.Duration) (*ticker, error) {
	const clockMonotonic = 1
	fd, _, errno := syscall.RawSyscall(syscall.SYS_TIMERFD_CREATE, clockMonotonic, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errno != 0 {
		return nil, fmt.Errorf("timerfd_create: %w", errno)
	}
	ts := timespec{Sec: int64(period / time.Second), Nsec: int64(period % time.Second)}
	spec := itimerspec{Interval: ts, Value: ts}
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_TIMERFD_SETTIME, fd, 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0); errno != 0 {
		syscall.Close(int(fd))
		return nil, fmt.Errorf("timerfd_settime: %w", errno)
	}
	// A non-blocking descriptor makes os.File wait in the runtime's poller, not in a thread.
	return &ticker{f: os.NewFile(fd, "timerfd")}, nil
}

func (t *ticker) wait() (uint64, error) {
	var buf [8]byte
	if _, err := io.ReadFull(t.f, buf[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(buf[:]), nil
}

func (t *ticker) close() { t.f.Close() }

type result struct {
	latency time.Duration
	status  int
	err     error
	bytes   int
}

type phase struct {
	Sent        int                `json:"sent"`
	OK          int                `json:"ok"`
	Errors      int                `json:"errors"`
	ErrorSample []string           `json:"errorSample"`
	Statuses    map[string]int     `json:"statuses"`
	Quantiles   [][2]float64       `json:"quantiles"`
	Percentiles map[string]float64 `json:"percentilesMicros"`
	MaxMicros   float64            `json:"maxMicros"`
	MeanMicros  float64            `json:"meanMicros"`
	LateMicros  map[string]float64 `json:"sendLatenessMicros"`
	Seconds     float64            `json:"seconds"`
	RespBytes   int                `json:"responseBytes"`
}

// The quantiles reported for the latency chart, up to the largest a run of this length resolves.
var quantiles = []float64{0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// Nearest rank: the smallest sample with at least q of the samples at or below it.
	rank := int(q*float64(len(sorted))+0.999999999) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(sorted) {
		rank = len(sorted) - 1
	}
	return sorted[rank]
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// fire sends at `rate` for `dur` and returns each request's outcome and how late the client
// itself was at each intended send time.
func fire(client *http.Client, url string, body []byte, rate float64, dur time.Duration) ([]result, []time.Duration, error) {
	period := time.Duration(float64(time.Second) / rate)
	total := int(dur / period)
	t, err := newTicker(period)
	if err != nil {
		return nil, nil, err
	}
	defer t.close()
	start := time.Now()
	results := make([]result, total)
	late := make([]time.Duration, 0, total)
	var wg sync.WaitGroup
	sent := 0
	for sent < total {
		n, err := t.wait()
		if err != nil {
			return nil, nil, err
		}
		now := time.Now()
		for k := uint64(0); k < n && sent < total; k++ {
			// Period i of the timer ends at start + (i+1)·period (approximately: the timer was armed
			// just before start was read, so intended times are at most microseconds late).
			intended := start.Add(time.Duration(sent+1) * period)
			late = append(late, now.Sub(intended))
			i := sent
			sent++
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				if err != nil {
					results[i] = result{err: err}
					return
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					results[i] = result{latency: time.Since(intended), err: err}
					return
				}
				nb, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				results[i] = result{latency: time.Since(intended), status: resp.StatusCode, err: err, bytes: int(nb)}
			}()
		}
	}
	// The next slice starts once this one's answers are in, so slices never overlap.
	wg.Wait()
	return results, late, nil
}

func summarize(results []result, late []time.Duration, seconds float64) phase {
	p := phase{Sent: len(results), Statuses: map[string]int{}, Seconds: seconds, ErrorSample: []string{}}
	lat := make([]time.Duration, 0, len(results))
	var sum time.Duration
	for _, r := range results {
		switch {
		case r.err != nil:
			p.Errors++
			if len(p.ErrorSample) < 5 {
				p.ErrorSample = append(p.ErrorSample, r.err.Error())
			}
		case r.status != http.StatusOK:
			p.Errors++
			p.Statuses[fmt.Sprint(r.status)]++
		default:
			p.OK++
			p.Statuses["200"]++
			p.RespBytes = r.bytes
		}
		// Failed requests keep their latency too: a server that fails fast must not look fast.
		lat = append(lat, r.latency)
		sum += r.latency
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	sort.Slice(late, func(a, b int) bool { return late[a] < late[b] })
	for _, q := range quantiles {
		// A quantile needs at least ten samples beyond it to mean anything.
		if float64(len(lat))*(1-q) >= 10 {
			p.Quantiles = append(p.Quantiles, [2]float64{q, micros(quantile(lat, q))})
		}
	}
	p.Percentiles = map[string]float64{
		"p50":  micros(quantile(lat, 0.5)),
		"p90":  micros(quantile(lat, 0.9)),
		"p99":  micros(quantile(lat, 0.99)),
		"p999": micros(quantile(lat, 0.999)),
	}
	if len(lat) > 0 {
		p.MaxMicros = micros(lat[len(lat)-1])
		p.MeanMicros = micros(sum) / float64(len(lat))
	}
	p.LateMicros = map[string]float64{"p50": micros(quantile(late, 0.5)), "p99": micros(quantile(late, 0.99))}
	return p
}

type target struct {
	name    string
	url     string
	client  *http.Client
	results []result
	late    []time.Duration
	seconds float64
}

// order gives the target index of slice i: A B B A A B B A ... for two targets (each pair of
// slices in both orders, so a trend over the run favours neither), round-robin for more.
func order(i, n int) int {
	if n != 2 {
		return i % n
	}
	if (i/2)%2 == 0 {
		return i % 2
	}
	return 1 - i%2
}

type targetFlags []string

func (t *targetFlags) String() string     { return strings.Join(*t, ",") }
func (t *targetFlags) Set(v string) error { *t = append(*t, v); return nil }

func main() {
	var targetArgs targetFlags
	flag.Var(&targetArgs, "target", "name=https URL to POST to (repeat to interleave several)")
	caFile := flag.String("ca", "", "PEM file of the CA that signed the servers' certificates")
	bodyFile := flag.String("body", "", "request body file")
	rate := flag.Float64("rate", 1000, "requests per second")
	duration := flag.Duration("duration", 10*time.Second, "measured time per target")
	slice := flag.Duration("slice", time.Second, "how long each turn of a target lasts")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured run per target at the same rate before measuring")
	conns := flag.Int("conns", 16, "keep-alive connections per target at most")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request timeout (the apiserver's webhook default)")
	flag.Parse()
	if len(targetArgs) == 0 || *caFile == "" || *bodyFile == "" || *rate <= 0 || *slice <= 0 {
		fmt.Fprintln(os.Stderr, "usage: loadgen -target name=https://... [-target ...] -ca ca.pem -body file [-rate N -duration D -slice D -warmup D -conns N]")
		os.Exit(2)
	}
	die := func(err error) {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	caPem, err := os.ReadFile(*caFile)
	if err != nil {
		die(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPem) {
		die(fmt.Errorf("no certificate in %s", *caFile))
	}
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		die(err)
	}
	targets := make([]*target, 0, len(targetArgs))
	for _, arg := range targetArgs {
		name, url, ok := strings.Cut(arg, "=")
		if !ok || name == "" || url == "" {
			die(fmt.Errorf("-target wants name=url, got %q", arg))
		}
		targets = append(targets, &target{name: name, url: url, client: &http.Client{
			Timeout: *timeout,
			Transport: &http.Transport{
				TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
				MaxConnsPerHost:     *conns,
				MaxIdleConnsPerHost: *conns,
				IdleConnTimeout:     90 * time.Second,
				DisableCompression:  true,
				// HTTP/1.1, as Node's https server speaks.
				TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
			},
		}})
	}
	if *warmup > 0 {
		for _, t := range targets {
			if _, _, err := fire(t.client, t.url, body, *rate, *warmup); err != nil {
				die(err)
			}
		}
	}
	slices := int((*duration + *slice - 1) / *slice)
	for i := 0; i < slices*len(targets); i++ {
		t := targets[order(i, len(targets))]
		begin := time.Now()
		results, late, err := fire(t.client, t.url, body, *rate, *slice)
		if err != nil {
			die(err)
		}
		t.seconds += time.Since(begin).Seconds()
		t.results = append(t.results, results...)
		t.late = append(t.late, late...)
	}
	out := map[string]any{"rate": *rate, "conns": *conns, "bodyBytes": len(body), "sliceSeconds": slice.Seconds()}
	phases := map[string]phase{}
	for _, t := range targets {
		phases[t.name] = summarize(t.results, t.late, t.seconds)
	}
	out["targets"] = phases
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		die(err)
	}
}
