// admission-load: the client half of benches/admission-latency.sh. CLIENTS concurrent
// clients, each with its own HTTP/2 connection to the API server (as many independent
// client-go clients would have), share COUNT Pod creates between them (k6's
// "shared-iterations": each takes the next index until none are left) and POST them
// straight to /api/v1/namespaces/NS/pods with the bearer token.
//
// Each client opens its connection with one GET before the clock starts, so the times are
// of creates, not of TLS handshakes. Writes one line per create to -out:
// "START_US LATENCY_US STATUS MUTATED" (MUTATED is 1 when the stored Pod that comes back
// carries the probegate.io/injected annotation), and prints one JSON summary line on
// stdout: wall seconds, this process's own CPU seconds, and the count of non-201 answers.
// Progress goes to stderr once a second. Standard library only.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type result struct {
	start   time.Duration
	latency time.Duration
	status  int
	mutated bool
}

func main() {
	server := flag.String("server", "", "API server URL, https://127.0.0.1:PORT")
	caFile := flag.String("ca", "", "PEM file of the CA the API server's certificate chains to")
	tokenFile := flag.String("token", "", "file holding the bearer token")
	namespace := flag.String("namespace", "", "namespace to create the Pods in")
	count := flag.Int("count", 1000, "Pod creates in all")
	clients := flag.Int("clients", 100, "concurrent clients, one connection each")
	prefix := flag.String("prefix", "p", "Pod names are PREFIX-INDEX")
	out := flag.String("out", "", "file for one line per create")
	flag.Parse()
	if *server == "" || *caFile == "" || *tokenFile == "" || *namespace == "" || *out == "" {
		log.Fatal("admission-load: -server, -ca, -token, -namespace and -out are required")
	}
	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		log.Fatalf("admission-load: no certificate in %s", *caFile)
	}
	tokenBytes, err := os.ReadFile(*tokenFile)
	if err != nil {
		log.Fatal(err)
	}
	token := "Bearer " + strings.TrimSpace(string(tokenBytes))
	podsURL := fmt.Sprintf("%s/api/v1/namespaces/%s/pods", *server, *namespace)
	marker := []byte(`"probegate.io/injected"`)

	results := make([]result, *count)
	var next, done, failed atomic.Int64
	var ready, finished sync.WaitGroup
	begin := make(chan struct{})
	var t0 time.Time

	client := func() {
		defer finished.Done()
		transport := &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots},
			ForceAttemptHTTP2: true,
		}
		hc := &http.Client{Transport: transport, Timeout: 60 * time.Second}
		// Open the connection (TLS, HTTP/2 settings) before the clock starts.
		req, _ := http.NewRequest("GET", podsURL+"?limit=1", nil)
		req.Header.Set("Authorization", token)
		if resp, err := hc.Do(req); err != nil {
			log.Fatalf("admission-load: opening a connection: %v", err)
		} else {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		ready.Done()
		<-begin
		for {
			i := int(next.Add(1) - 1)
			if i >= *count {
				return
			}
			body := fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"%s-%d","labels":{"app":"web"}},`+
				`"spec":{"containers":[{"name":"web","image":"example.com/web:1",`+
				`"ports":[{"name":"http","containerPort":8080}]}]}}`, *prefix, i)
			req, _ := http.NewRequestWithContext(context.Background(), "POST", podsURL, strings.NewReader(body))
			req.Header.Set("Authorization", token)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json")
			started := time.Now()
			resp, err := hc.Do(req)
			var status int
			var data []byte
			if err == nil {
				data, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				status = resp.StatusCode
			}
			took := time.Since(started)
			if err != nil || status != http.StatusCreated {
				if failed.Add(1) <= 5 {
					log.Printf("admission-load: create %d: status %d, error %v, body %.300s", i, status, err, data)
				}
			}
			results[i] = result{started.Sub(t0), took, status, bytes.Contains(data, marker)}
			done.Add(1)
		}
	}

	ready.Add(*clients)
	finished.Add(*clients)
	for c := 0; c < *clients; c++ {
		go client()
	}
	ready.Wait()
	t0 = time.Now()
	close(begin)
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				n := done.Load()
				el := time.Since(t0).Seconds()
				fmt.Fprintf(os.Stderr, "  %6d / %d creates, %.0f/s, %d failed\n", n, *count, float64(n)/el, failed.Load())
			}
		}
	}()
	finished.Wait()
	wall := time.Since(t0)
	close(stop)

	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	for _, r := range results {
		m := 0
		if r.mutated {
			m = 1
		}
		fmt.Fprintf(&buf, "%d %d %d %d\n", r.start.Microseconds(), r.latency.Microseconds(), r.status, m)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		log.Fatal(err)
	}
	f.Close()
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"wall_seconds": wall.Seconds(),
		"cpu_seconds":  cpu.Seconds(),
		"failed":       failed.Load(),
	})
}
