// Command kube-apiserver-e2e is the control plane of probegate's end-to-end
// suite: an embedded single-member etcd plus the real kube-apiserver, in one
// process, listening on loopback only.
//
// Usage:
//
//	kube-apiserver-e2e --etcd-data-dir DIR [--etcd-log-level LEVEL]
//	                   [--etcd-unsafe-no-fsync] [kube-apiserver flags...]
//
// The --etcd-* flags above are consumed here; every other argument is handed
// unchanged to the kube-apiserver command, with --etcd-servers added so that
// it talks to the embedded etcd. etcd listens on free loopback ports found
// at start-up, so several instances can run side by side.
//
// Stopping: SIGTERM or SIGINT makes kube-apiserver shut down; etcd is closed
// after it returns. Everything runs in this one process, there are no
// children to reap.
package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // CronJob time zones, as in the upstream binary

	"go.etcd.io/etcd/server/v3/embed"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // --logging-format=json
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

// wrapperOpts are the flags this wrapper consumes itself.
type wrapperOpts struct {
	dataDir     string
	logLevel    string
	noFsync     bool
	readyWithin time.Duration
}

func main() {
	opts, rest, err := splitArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "kube-apiserver-e2e: %v\n", err)
		os.Exit(2)
	}

	etcd, clientURL, err := startEtcd(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kube-apiserver-e2e: embedded etcd: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "kube-apiserver-e2e: embedded etcd ready at %s\n", clientURL)

	// If etcd dies underneath the apiserver there is nothing to recover.
	go func() {
		if err, ok := <-etcd.Err(); ok && err != nil {
			fmt.Fprintf(os.Stderr, "kube-apiserver-e2e: embedded etcd failed: %v\n", err)
			os.Exit(1)
		}
	}()

	cmd := app.NewAPIServerCommand()
	cmd.SetArgs(append(rest, "--etcd-servers="+clientURL))
	code := cli.Run(cmd)

	fmt.Fprintf(os.Stderr, "kube-apiserver-e2e: kube-apiserver exited with code %d; stopping embedded etcd\n", code)
	etcd.Close()
	os.Exit(code)
}

// splitArgs takes this wrapper's own flags out of args and returns the rest
// in their original order. Both "--flag=value" and "--flag value" forms are
// accepted.
func splitArgs(args []string) (wrapperOpts, []string, error) {
	opts := wrapperOpts{logLevel: "warn", readyWithin: 60 * time.Second}
	var rest []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		name, value, hasValue := strings.Cut(arg, "=")
		// value fetches the flag's value from "=..." or the next argument.
		next := func() (string, error) {
			if hasValue {
				return value, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("flag %s needs a value", name)
			}
			i++
			return args[i], nil
		}
		var err error
		switch name {
		case "--etcd-data-dir":
			opts.dataDir, err = next()
		case "--etcd-log-level":
			opts.logLevel, err = next()
		case "--etcd-ready-timeout":
			var v string
			if v, err = next(); err == nil {
				opts.readyWithin, err = time.ParseDuration(v)
			}
		case "--etcd-unsafe-no-fsync":
			opts.noFsync = true
			if hasValue {
				opts.noFsync = value == "true"
			}
		case "--etcd-servers":
			err = fmt.Errorf("--etcd-servers is set by this wrapper (embedded etcd); do not pass it")
		default:
			rest = append(rest, arg)
		}
		if err != nil {
			return opts, nil, err
		}
	}
	if opts.dataDir == "" {
		return opts, nil, fmt.Errorf("--etcd-data-dir is required")
	}
	return opts, rest, nil
}

// startEtcd starts a single-member etcd on free loopback ports and returns it
// once it serves, with the URL its clients should use.
//
// etcd cannot simply be given port 0: it dials its own listen address for
// the gRPC gateway, so it needs the real port up front. The ports are found
// by asking the kernel for free ones; should another process take one in
// the short window before etcd binds it, the start is retried with new
// ports (a failed bind happens before etcd touches the data dir).
func startEtcd(opts wrapperOpts) (*embed.Etcd, string, error) {
	if err := os.MkdirAll(opts.dataDir, 0o700); err != nil {
		return nil, "", err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		e, clientURL, err := startEtcdOnce(opts)
		if err == nil {
			return e, clientURL, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) && !strings.Contains(err.Error(), "address already in use") {
			return nil, "", err
		}
		lastErr = err
	}
	return nil, "", lastErr
}

func startEtcdOnce(opts wrapperOpts) (*embed.Etcd, string, error) {
	clientURL, err := freeLoopbackURL()
	if err != nil {
		return nil, "", err
	}
	peerURL, err := freeLoopbackURL()
	if err != nil {
		return nil, "", err
	}

	cfg := embed.NewConfig()
	cfg.Name = "e2e"
	cfg.Dir = opts.dataDir
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = opts.logLevel
	cfg.LogOutputs = []string{"stderr"}
	cfg.UnsafeNoFsync = opts.noFsync
	// NewConfig leaves this at 0, which would log every request as slow.
	cfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, "", err
	case <-time.After(opts.readyWithin):
		e.Close()
		return nil, "", fmt.Errorf("not ready within %s", opts.readyWithin)
	}
	return e, clientURL.String(), nil
}

// freeLoopbackURL returns http://127.0.0.1:PORT for a port that was free a
// moment ago.
func freeLoopbackURL() (url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{}, err
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return url.URL{}, err
	}
	return url.URL{Scheme: "http", Host: addr}, nil
}
